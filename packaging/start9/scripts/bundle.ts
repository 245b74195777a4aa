// Bundles scripts/embassy.ts into scripts/embassy.js (`deno bundle` is gone in Deno 2).
import { bundle } from "https://deno.land/x/emit@0.40.0/mod.ts";

const result = await bundle(new URL("./embassy.ts", import.meta.url));
await Deno.writeTextFile(new URL("./embassy.js", import.meta.url), result.code);
