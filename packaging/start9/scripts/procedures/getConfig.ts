// The Config page: where BTCPay Server is and the public address of the listener.
// docker_entrypoint.sh reads the saved values from /data/start9/config.yaml.
import { compat, types as T } from "../deps.ts";

export const getConfig: T.ExpectedExports.getConfig = compat.getConfig({
  "btcpay-url": {
    type: "string",
    name: "BTCPay Server URL",
    description:
      "Address of BTCPay Server's API as seen from inside StartOS. The default is the BTCPay Server service on this server.",
    nullable: false,
    default: "http://btcpayserver.embassy:23000",
    pattern: "^https?://[^\\s]+$",
    "pattern-description": "An http:// or https:// URL without spaces.",
  },
  "public-url": {
    type: "string",
    name: "Public URL",
    description:
      "Public HTTPS address of Sovterm's web interface, used in pay links and as the QuickBooks redirect URI (<public URL>/oauth/qbo/callback). Leave empty until you have one.",
    nullable: true,
    pattern: "^https://[^\\s]+$",
    "pattern-description": "An https:// URL without spaces.",
  },
});
