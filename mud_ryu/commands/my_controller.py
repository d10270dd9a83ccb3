"""``mud-ryu my-controller [--url URL (--set ADDR [ADDR...] | --clear)]``: the my-controller abstraction per MUD URL.

RFC 8520 s8: ``my-controller`` is the controller(s) the local network configured for a MUD URL. Without options the
command lists the settings' default and every per-URL entry (settings or operator); ``--set`` stores an operator
entry that replaces the settings for that URL (durably, and the devices of that URL get the new flows at once);
``--clear`` drops it, so the settings apply again. Changing an entry needs the API token.
"""

from __future__ import annotations

import argparse
import sys

from mud_ryu.commands.devices import EXIT_USAGE, add_api_arguments, call

NAME = "my-controller"
HELP = "list, set (--url U --set ADDR...) or clear (--url U --clear) the my-controller addresses of a MUD URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL", help="the MUD URL whose entry to set or clear")
    change = parser.add_mutually_exclusive_group()
    change.add_argument(
        "--set", nargs="+", metavar="ADDR", help="addresses or prefixes (1 to 16) that my-controller means for --url"
    )
    change.add_argument("--clear", action="store_true", help="drop the operator entry for --url (settings apply)")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api import client as rest_client

    if (args.set is not None or args.clear) != (args.url is not None):
        print("error: --url goes with --set ADDR... or --clear (and they need --url)", file=sys.stderr)
        return EXIT_USAGE
    if args.set is not None:
        addresses = list(args.set)
        return call(args, lambda c: rest_client.set_my_controller(c, args.url, addresses), rest_client.action_text,
                    changes_state=True)  # fmt: skip
    if args.clear:
        return call(args, lambda c: rest_client.clear_my_controller(c, args.url), rest_client.action_text,
                    changes_state=True)  # fmt: skip
    return call(args, rest_client.list_my_controller, rest_client.my_controller_text)
