"""The setup wizard: BTCPay, stores, QuickBooks, mode, accounts, backfill, summary.

`screen.WizardScreen` holds the step list, the navigation and the progress read back from the daemon;
each step is its own widget in its own module (`btcpay`, `stores`, `qbo`, `mode`, `accounts`, `backfill`,
`summary`), built on `step.Step`, with its buttons bound by `@on(Button.Pressed, "#id")`.
"""

from sovterm.tui.screens.wizard.screen import WizardScreen

__all__ = ["WizardScreen"]
