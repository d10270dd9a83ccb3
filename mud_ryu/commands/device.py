"""``mud-ryu device MAC``: one device with its URL history, pending URL change and the flows it holds."""

from __future__ import annotations

import argparse

from mud_ryu.commands.devices import add_api_arguments, call

NAME = "device"
HELP = "show one device: identity, URL, state, signer, URL history, pending change and the flows it holds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mac", metavar="MAC", help="the device's MAC address")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api.client import device_text, mac_path

    return call(args, lambda client: client.get(mac_path(args.mac)), device_text)
