"""``mud-ryu revoke MAC``: withdraw a device's trust; it is quarantined until an operator approves a URL again."""

from __future__ import annotations

import argparse

from mud_ryu.commands.devices import add_api_arguments, call

NAME = "revoke"
HELP = "revoke a device's trust (re-quarantine until a URL is approved); needs the API token"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mac", metavar="MAC", help="the device's MAC address")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api.client import action_text, mac_path

    return call(args, lambda client: client.post(mac_path(args.mac, "revoke")), action_text, changes_state=True)
