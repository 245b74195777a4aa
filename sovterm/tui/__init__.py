"""`sovterm tui`: a Textual client of the daemon's control socket (it imports `sovterm.control.client` and
`sovterm.control.protocol`, never the daemon's parts).

- `app.py` is the entry point (`run_tui`) and the only module that knows the app class; no other module of
  the TUI imports it. It owns the `connection.Connection` to the daemon and builds every screen with a
  `session.Session`: the screens' only way to the daemon, the `state.DaemonState`, the log buffer and the
  app's moves (show a screen, run a daemon action, open the setup wizard at a step).
- `screens/` holds one module per screen (its dialogs with it); the setup wizard is the package
  `screens/wizard/`, one module per step.
- Styles, one convention: a file per screen. `app.tcss` holds only what every screen shares (the
  `.actions-line`, `.problem`, `.hint` and `.intro` lines and the `.dialog` box); each screen module has a
  `.tcss` file of the same name beside it, named by `CSS_PATH` on each screen class in that module (its
  dialogs too). No widget or screen carries inline `CSS`/`DEFAULT_CSS`.
"""
