"""BTCPay Server Greenfield API v1 connector: client, models, webhooks, polling, invoice ledger."""
