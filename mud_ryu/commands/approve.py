"""``mud-ryu approve MAC [--url URL --sha256 DIGEST [--chosen]]``: approve a device's pending URL change -- exactly
the file reviewed.

An approval names the URL and the SHA-256 of the file (what ``mud-ryu device MAC`` shows as the pending change),
so a device that replaces its pending change while the operator reviews it gets ``pending-changed``, not the
approval. Without ``--url``/``--sha256`` the command shows the device's current pending URL and digest and asks
y/N on the terminal (never from a pipe: a script must name what it approves). ``--chosen`` approves a URL of the
operator's own choosing (e.g. after a revoke), still bound to its digest (``mud-ryu fetch URL`` prints it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mud_ryu.commands.devices import EXIT_USAGE, Refused, add_api_arguments, call

if TYPE_CHECKING:
    from mud_ryu.api.client import ApiClient

NAME = "approve"
HELP = "approve the file a device's pending URL change names (URL + SHA-256, or confirm on the terminal)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mac", metavar="MAC", help="the device's MAC address")
    parser.add_argument("--url", help="the pending URL as `mud-ryu device MAC` shows it (with --chosen: your own)")
    parser.add_argument(
        "--sha256", metavar="DIGEST", help="the SHA-256 of the file approved, as `mud-ryu device MAC` shows it"
    )
    parser.add_argument(
        "--chosen", action="store_true", help="approve --url/--sha256 as your own choice, not the device's pending one"
    )
    add_api_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api.client import action_text, mac_path

    if (args.url is None) != (args.sha256 is None) or (args.chosen and args.url is None):
        print("error: give --url and --sha256 together (--chosen needs both), or neither to confirm the pending "
              "change on the terminal", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.url is None:
        if not sys.stdin.isatty():
            print("error: stdin is not a terminal to confirm on: give --url and --sha256 as `mud-ryu device MAC` "
                  "shows them", file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        return call(args, lambda client: _confirm_and_approve(client, args.mac), action_text, changes_state=True)
    body: dict[str, object] = {"url": args.url, "sha256": args.sha256}
    if args.chosen:
        body["chosen"] = True
    return call(args, lambda client: client.post(mac_path(args.mac, "approve"), body), action_text, changes_state=True)


def _confirm_and_approve(client: ApiClient, mac: str) -> dict[str, Any]:
    """Show the pending change as the controller holds it now, ask, and approve exactly what was shown (the server
    checks it again: a replacement between the two calls is a 409 ``pending-changed``)."""
    from mud_ryu.api.client import mac_path, printable

    url, sha256, status, reason = _reviewable(mac, client.get(mac_path(mac)).get("pending"))
    print(f"device {printable(mac)} pending change:\n  url     {printable(url)}\n  sha256  {printable(sha256, 64)}\n"
          f"  status  {printable(status)} ({printable(reason)})", file=sys.stderr)  # fmt: skip
    print("approve this file for this device? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Refused("not-confirmed", "nothing approved")
    return client.post(mac_path(mac, "approve"), {"url": url, "sha256": sha256})


def _reviewable(mac: str, pending: object) -> tuple[str, str, object, object]:
    """The pending change's URL, digest, status and reason, or why there is nothing to confirm."""
    from mud_ryu.api.client import printable

    if not isinstance(pending, Mapping):
        raise Refused("nothing-to-approve", f"{mac} has no pending URL change (--chosen approves a URL of your own)")
    url, sha256, status = pending.get("url"), pending.get("sha256"), pending.get("status")
    if status == "fetching":
        raise Refused("pending-fetching", f"{printable(url)} is being fetched under the policy; wait for it")
    if not isinstance(url, str) or not isinstance(sha256, str):
        why = "was refused on its URL alone and never fetched: review the file (`mud-ryu fetch URL` prints its sha256)"
        raise Refused("pending-not-fetched", f"{printable(url)} {why}, then give --url and --sha256")
    return url, sha256, status, pending.get("reason")
