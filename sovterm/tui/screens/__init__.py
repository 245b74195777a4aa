"""The TUI's screens; each renders `DaemonState` and reaches the daemon only through its `Session`."""
