"""Merchant analytics over the invoice ledger (docs/analytics.md)."""
