"""`sovterm` command line: the daemon, the TUI, the demo, and every action as a scriptable command.

Commands other than `daemon`, `demo`, `config check` and `version` talk to the running daemon over the
control socket with the same methods the TUI uses. Exit status: 0 ok, 1 the action failed, 2 bad
configuration or usage, 3 the daemon cannot be reached. Each part adds its commands from its own module.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from sovterm import __version__
from sovterm.cli import btcpay, core, links, mints, notify, ops, payouts, qbo, sync
from sovterm.cli.core import CommandError
from sovterm.errors import UserFacingError

# One module per part; each has `add_commands(sub, add)`.
COMMAND_MODULES = [
    core,
    btcpay,
    qbo,
    sync,
    links,
    payouts,
    ops,
    notify,
    mints,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sovterm", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", "-c", help="config file (default: $SOVTERM_CONFIG or /etc/sovterm/sovterm.toml)")
    parser.add_argument("--version", action="version", version=f"sovterm {__version__}")
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
