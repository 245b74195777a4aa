"""The control API: JSON-RPC 2.0 over a Unix socket, one JSON object per line (docs/control-api.md)."""
