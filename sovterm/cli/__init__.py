"""`sovterm` command line: the daemon, the TUI, the demo, and every action as a scriptable command.

Commands other than `daemon`, `demo`, `config check` and `version` talk to the running daemon over the
control socket with the same methods the TUI uses. Exit status: 0 ok, 1 the action failed, 2 bad
configuration or usage, 3 the daemon cannot be reached. Each part adds its commands from its own module.

Those talking to the daemon load only the blocking control client and their own formatting, so a command
answers at once; `cli.local` holds the commands that need the daemon's stack and imports it inside each
(enforced by an import contract in pyproject.toml and tests/spine/test_cli_weight.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from sovterm.cli import (
    analytics,
    angor,
    books,
    btcpay,
    core,
    crowdfund,
    items,
    links,
    local,
    mints,
    notify,
    ops,
    payouts,
    paywall,
    qbo,
    sync,
    webhooks,
)
from sovterm.cli.core import CommandError
from sovterm.errors import UserFacingError

# One module per part; each has `add_commands(sub, add)`.
COMMAND_MODULES = [
    local,
    core,
    btcpay,
    qbo,
    sync,
    items,
    links,
    payouts,
    books,
    ops,
    analytics,
    crowdfund,
    webhooks,
    notify,
    mints,
    paywall,
    angor,
]


class _PrintVersion(argparse.Action):
    """`--version`, reading the version (40 ms of package metadata) only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from sovterm import __version__

        print(f"sovterm {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sovterm", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", "-c", help="config file (default: $SOVTERM_CONFIG or /etc/sovterm/sovterm.toml)")
    parser.add_argument("--version", action=_PrintVersion, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[..., int], help: str, *, json_flag: bool = False, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        # also accepted after the command (`sovterm config check --config X`)
        p.add_argument("--config", "-c", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        return p

    for module in COMMAND_MODULES:
        module.add_commands(sub, add)
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, environ))
    except CommandError as exc:
        print(f"sovterm: {exc}", file=sys.stderr)
        return exc.code
    except UserFacingError as exc:
        print(f"sovterm: {exc}", file=sys.stderr)
        return core.EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
