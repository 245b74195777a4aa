export * from "https://deno.land/x/embassyd_sdk@v0.3.3.0.11/mod.ts";
export * from "https://deno.land/x/embassyd_sdk@v0.3.3.0.11/util.ts";
