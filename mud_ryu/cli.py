"""The ``mud-ryu`` command line: one subcommand per module in :mod:`mud_ryu.commands`.

Each command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` (the process exit code). Commands import their heavy dependencies
lazily so ``mud-ryu --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Protocol, cast

from mud_ryu import __version__

COMMAND_MODULES = (
    "validate",
    "upgrade",
    "compile",
    "verify",
    "fetch",
    "check_update",
    "devices",
    "device",
    "alerts",
    "approve",
    "revoke",
    "forget",
    "my_controller",
    "dns",
)


class _Command(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(f"mud_ryu.commands.{name}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mud-ryu", description="MUD (RFC 8520) tools of mud_ryu")
    parser.add_argument("--version", action="version", version=f"mud-ryu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = _load(name)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args))
    except BrokenPipeError:  # e.g. `mud-ryu compile ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
