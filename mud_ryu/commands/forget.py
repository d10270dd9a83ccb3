"""``mud-ryu forget MAC``: drop a device, its trust record and its flows; its next announcement is a first use."""

from __future__ import annotations

import argparse

from mud_ryu.commands.devices import add_api_arguments, call

NAME = "forget"
HELP = "forget a device (trust record, history and flows); its next announcement starts from first use; needs the token"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mac", metavar="MAC", help="the device's MAC address")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api.client import action_text, mac_path

    return call(args, lambda client: client.delete(mac_path(args.mac)), action_text, changes_state=True)
