"""``mud-ryu approve MAC [--url URL]``: approve a device's pending or refused URL change (or a given URL)."""

from __future__ import annotations

import argparse

from mud_ryu.commands.devices import add_api_arguments, call

NAME = "approve"
HELP = "approve the URL a device is pending on or was refused for (or --url URL); needs the API token"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mac", metavar="MAC", help="the device's MAC address")
    parser.add_argument("--url", help="the MUD URL to approve (default: the one the device is pending on)")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.rest_client import action_text, mac_path

    body = {"url": args.url} if args.url is not None else None
    return call(args, lambda client: client.post(mac_path(args.mac, "approve"), body), action_text, changes_state=True)
