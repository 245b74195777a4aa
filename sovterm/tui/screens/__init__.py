"""The TUI's screens; each renders `LinkState` and calls the daemon only through `app.daemon`."""
