"""Fair value of the bitcoin held (ASU 2023-08): pure rules, the ledger reader and the service."""
