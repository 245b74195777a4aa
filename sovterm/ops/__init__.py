"""Operations: backups, config export/import and support bundles.

Headless like the rest of the core: these modules read the store and the configuration but never the
web, control, CLI or TUI layers, so the CLI can also use them offline (a restore runs with the daemon
stopped; a support bundle is still possible when the daemon will not start).
"""
