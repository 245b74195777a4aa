// The procedures StartOS 0.3.5 calls for `type: script` entries in manifest.yaml.
export { getConfig } from "./procedures/getConfig.ts";
export { setConfig } from "./procedures/setConfig.ts";
export { properties } from "./procedures/properties.ts";
export { migration } from "./procedures/migrations.ts";
