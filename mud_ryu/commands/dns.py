"""``mud-ryu dns [--name N] [--json]``: the DNS names the enforced profiles use, their addresses and the counters.

Names in MUD ACEs (``ietf-acldns:src-dnsname`` / ``dst-dnsname``) stand for the addresses the configured resolvers
gave in answers to the devices' own queries, until those addresses' TTLs run out. This shows each watched name,
the MUD URLs using it and its bound addresses with the time left, the queries still awaiting their answer, and
every counter of the binding table -- the ignored answers among them (a spoofed answer from another server, a wrong
transaction id, an answer nobody asked for: ignored and counted, never bound).
"""

from __future__ import annotations

import argparse

from mud_ryu.commands.devices import add_api_arguments, call

NAME = "dns"
HELP = "list the watched DNS names, their bound addresses (with time left) and the ignored/spoofed answer counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", metavar="NAME", help="show only this DNS name (case and a trailing dot ignored)")
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api import client as rest_client

    name = args.name
    return call(args, lambda client: rest_client.dns(client, name), rest_client.dns_text)
