"""The TUI's screens; each renders `DaemonState` and calls the daemon only through `app.daemon`."""
