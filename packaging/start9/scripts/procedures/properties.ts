// The Properties page: /data/start9/stats.yaml, written by docker_entrypoint.sh
// (BTCPay URL, webhook URL, how to open the terminal UI).
import { compat, types as T } from "../deps.ts";

export const properties: T.ExpectedExports.properties = compat.properties;
