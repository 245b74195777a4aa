"""Numbered SQL migrations, NNNN_name.sql, applied in order; see sovterm.store.db."""
