"""``mud-ryu check-update PINNED_URL NEW_URL``: would the acceptable-URL rule let a device move between two URLs?

URL part only (draft-ietf-iotops-mud-acceptable-urls s5.1): no fetch, no signer, no history. Both URLs go through
the MUD URL gate first, exactly as the enforcer's. Prints ``ACCEPT`` (exit 0) or ``REJECT <reason-code>`` (exit 3);
a URL the gate refuses is ``REJECT bad-url:<gate-reason>``. Standard output is exactly that one line, for
scripts; the explanation for people goes to standard error.
"""

from __future__ import annotations

import argparse
import sys

NAME = "check-update"
HELP = "check whether NEW_URL is an acceptable update of PINNED_URL (URL rule only); exit 0 ACCEPT, 3 REJECT"
EXIT_REJECT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pinned", metavar="PINNED_URL", help="the canonical MUD URL trusted for the device")
    parser.add_argument("new", metavar="NEW_URL", help="the MUD URL the device now announces")
    parser.add_argument(
        "--allow-ip-literals", action="store_true", help="lab switch: admit canonical IP literal hosts (as the gate)"
    )


def _printable(text: str) -> str:
    """Attacker-controlled URLs end up in messages: one line, no control characters."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)[:600]


def run(args: argparse.Namespace) -> int:
    from mud_ryu.fetch.urlgate import GateOptions, MudUrl, UrlRejected, check_mud_url
    from mud_ryu.policy.rules import check_url_change

    options = GateOptions(allow_ip_literals=bool(args.allow_ip_literals))
    gated: list[MudUrl] = []
    for role, raw in (("pinned", args.pinned), ("new", args.new)):
        try:
            gated.append(check_mud_url(raw, options))
        except UrlRejected as exc:
            print(f"REJECT bad-url:{exc.reason}")
            print(f"{role} URL: {_printable(exc.message)}", file=sys.stderr)
            return EXIT_REJECT
    change = check_url_change(gated[0], gated[1])
    if change.acceptable:
        print("ACCEPT")
        print(f"{change.kind.value} change to {gated[1].url}", file=sys.stderr)
        return 0
    print(f"REJECT {change.reason}")
    print(_printable(change.message), file=sys.stderr)
    return EXIT_REJECT
