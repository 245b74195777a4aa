#!/bin/sh
# StartOS 0.3.5 entrypoint: read the service config, write the Properties page,
# then run the daemon as uid 1000 under tini.
set -eu

DATA=/data
CONFIG="$DATA/start9/config.yaml"

# The config is a flat YAML map written by StartOS (scripts/procedures/setConfig.ts);
# one `key: value` per line is all we read, so sed is enough and the image needs no yq.
config_value() {
    [ -f "$CONFIG" ] || return 0
    sed -n "s/^$1: *//p" "$CONFIG" | head -n 1 \
        | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/" -e 's/^~$//' -e 's/^null$//'
}

BTCPAY_URL=$(config_value btcpay-url)
PUBLIC_URL=$(config_value public-url)
: "${BTCPAY_URL:=http://btcpayserver.embassy:23000}"

export SOVTERM_DATA_DIR="$DATA"
export SOVTERM_LISTENER__HOST=0.0.0.0
export SOVTERM_LISTENER__PORT=8080
export SOVTERM_CONTROL__SOCKET="$DATA/run/control.sock"
export SOVTERM_BTCPAY__URL="$BTCPAY_URL"
# Where BTCPay (another container on the StartOS network) POSTs its webhooks.
export SOVTERM_BTCPAY__WEBHOOK_URL="http://sovterm.embassy:8080"
# LAN (StartOS's nginx) and Tor traffic reach the container from the host's address on the service
# network; rate limits count the client it forwards (X-Forwarded-For), not that address.
export SOVTERM_LISTENER__TRUSTED_PROXIES="${SOVTERM_LISTENER__TRUSTED_PROXIES:-172.18.0.1}"
# The daemon keeps its connections below the open-file limit; take all the container allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ -n "$PUBLIC_URL" ]; then
    export SOVTERM_LISTENER__PUBLIC_URL="$PUBLIC_URL"
fi

mkdir -p "$DATA/start9" "$DATA/run"
# The control socket cannot be backed up and is recreated at start.
printf 'run\n' > "$DATA/.backupignore"

cat > "$DATA/start9/stats.yaml" <<STATS
version: 2
data:
  BTCPay Server URL:
    type: string
    value: "$BTCPAY_URL"
    description: Where Sovterm reaches BTCPay Server's Greenfield API. Change it under Config.
    copyable: true
    qr: false
    masked: false
  BTCPay webhook URL:
    type: string
    value: "$SOVTERM_BTCPAY__WEBHOOK_URL"
    description: The address BTCPay Server sends store webhooks to, inside StartOS.
    copyable: true
    qr: false
    masked: false
  Open the terminal UI:
    type: string
    value: "sudo podman exec -it sovterm.embassy sovterm tui"
    description: Run this after 'ssh start9@<your-server>.local'. See Instructions.
    copyable: true
    qr: false
    masked: false
STATS

# A restore or an older version may have left root-owned files behind.
chown -R 1000:1000 "$DATA"

exec tini -s -- setpriv --reuid=1000 --regid=1000 --clear-groups sovterm daemon
