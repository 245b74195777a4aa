// No data-format migrations between wrapper versions yet: the daemon migrates its
// own database at start.
import { compat, types as T } from "../deps.ts";

export const migration: T.ExpectedExports.migration = compat.migrations
  .fromMapping({}, "0.1.0");
