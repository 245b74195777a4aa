"""Storage: the SQLite connection, numbered migrations and encrypted secrets."""
