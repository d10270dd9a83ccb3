"""``mud-ryu alerts [--limit N]``: the controller's newest alerts, newest first."""

from __future__ import annotations

import argparse

from mud_ryu.commands.devices import add_api_arguments, call

NAME = "alerts"
HELP = "list the controller's newest alerts (quarantine, spoofing, refused URLs, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=100, metavar="N", help="at most N alerts, 1..1000 (default 100)")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api.client import alerts_text

    return call(args, lambda client: client.get(f"alerts?limit={int(args.limit)}"), alerts_text)
