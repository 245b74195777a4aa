// Saves the Config page to /data/start9/config.yaml and declares BTCPay Server as
// the one service this config depends on.
import { compat, types as T } from "../deps.ts";

export const setConfig: T.ExpectedExports.setConfig = async (
  effects: T.Effects,
  newConfig: T.Config,
) => {
  const dependsOn: { [key: string]: string[] } = { btcpayserver: [] };
  return await compat.setConfig(effects, newConfig, dependsOn);
};
