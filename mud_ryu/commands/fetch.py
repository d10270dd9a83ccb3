"""``mud-ryu fetch URL [--ca CA.pem] [--allow-host HOST] ...``: resolve one MUD URL the way the enforcer does.

The same code path as the controller (URL gate, SSRF guard, hardened fetch, validation, signature, cache), so an
operator can check a device's URL before plugging it in. Prints the verdict and a summary of the validated file;
exit 0 iff a verified file resulted (fresh, renewed or from the cache).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime

from mud_ryu.commands.verify import _printable

NAME = "fetch"
HELP = "fetch, validate and verify a MUD file from its URL; exit 0 iff a verified file resulted"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the MUD URL (https only)")
    parser.add_argument("--ca", action="append", default=[], metavar="CA.pem", help="MUD signer trust anchor(s)")
    parser.add_argument("--tls-ca", metavar="BUNDLE.pem", help="TLS roots for the MUD server (default: system store)")
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST", help="lab: accept any address HOST resolves to"
    )
    parser.add_argument(
        "--allow-network", action="append", default=[], metavar="CIDR", help="lab: accept addresses in CIDR"
    )
    parser.add_argument(
        "--resolve", action="append", default=[], metavar="HOST:ADDR", help="lab: resolve HOST to ADDR (like curl)"
    )
    parser.add_argument(
        "--signatures", choices=("required", "if-present", "off"), default="required", help="signature policy"
    )
    parser.add_argument("--lenient-content-type", action="store_true", help="lab: accept any Content-Type")
    parser.add_argument("--max-redirects", type=int, default=0, metavar="N", help="same-host https hops (default 0)")
    parser.add_argument("--deadline", type=float, default=10.0, metavar="SECONDS", help="total deadline per fetch")
    parser.add_argument("--cache", metavar="FILE", help="SQLite cache to use and update (default: a throw-away one)")


def _resolver(pairs: list[str]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for pair in pairs:
        host, sep, address = pair.rpartition(":") if pair.count(":") == 1 else pair.partition(":")
        if not sep or not host or not address:
            raise ValueError(f"--resolve wants HOST:ADDR, got {pair!r}")
        table.setdefault(host.lower(), []).append(address.strip("[]"))
    return table


def _summary(resolution: object) -> list[str]:
    from mud_ryu.fetch.manager import MudResolution

    assert isinstance(resolution, MudResolution)
    lines = [f"url            {resolution.url}"]
    if resolution.mud is not None:
        mud = resolution.mud.mud
        acl_from = sum(len(a.aces) for a in mud.from_device)
        acl_to = sum(len(a.aces) for a in mud.to_device)
        lines += [
            f"systeminfo     {mud.systeminfo or '-'}",
            f"manufacturer   {mud.mfg_name or '-'}  model {mud.model_name or '-'}",
            f"policies       from-device {len(mud.from_device)} ACLs / {acl_from} ACEs, "
            f"to-device {len(mud.to_device)} ACLs / {acl_to} ACEs",
            f"signer         {resolution.signer or 'unsigned'}",
            f"sha256         {resolution.sha256}",
            f"cache-validity {mud.cache_validity} h"
            + (f", expires {datetime.fromtimestamp(resolution.expires_at, UTC):%Y-%m-%dT%H:%M:%SZ}"
               if resolution.expires_at else ""),
        ]  # fmt: skip
        lines += [f"warning        {w.reason} {w.path}: {w.message}" for w in resolution.mud.warnings]
    if resolution.reason:
        lines.append(f"reason         {resolution.reason}: {resolution.message}")
    return [_printable(line) for line in lines]


def run(args: argparse.Namespace) -> int:
    from mud_ryu.fetch.cache import MudCache
    from mud_ryu.fetch.fetcher import Fetcher, system_resolver
    from mud_ryu.fetch.manager import ManagerSettings, MudManager, MudRequest, SignaturePolicy
    from mud_ryu.fetch.netguard import parse_networks
    from mud_ryu.fetch.refresh import Outcome
    from mud_ryu.fetch.signature import load_anchor_files
    from mud_ryu.fetch.types import FetchLimits, FetchOptions

    try:
        table = _resolver(args.resolve)
        options = FetchOptions(
            limits=FetchLimits(deadline_s=args.deadline, max_redirects=args.max_redirects),
            ca_bundle=args.tls_ca,
            require_content_type=not args.lenient_content_type,
            allowed_networks=parse_networks(args.allow_network),
            allowed_hosts=frozenset(h.lower() for h in args.allow_host),
        )
        anchors = load_anchor_files(args.ca)
    except (ValueError, OSError) as exc:
        print(f"REFUSED usage: {_printable(str(exc))}")
        return 2
    policy = SignaturePolicy(args.signatures)
    if policy is SignaturePolicy.REQUIRED and not anchors:
        print("REFUSED usage: signatures are required: give the signer's CA with --ca (or --signatures off)")
        return 2

    def resolve(host: str, port: int) -> list[str]:
        return table.get(host) or system_resolver(host, port)

    fetcher = Fetcher(options, resolver=resolve)
    with (
        tempfile.TemporaryDirectory(prefix="mud-ryu-fetch-") as scratch,
        MudCache.open(args.cache or f"{scratch}/cache.sqlite3") as cache,
    ):
        manager = MudManager(fetcher, cache, ManagerSettings(signature_policy=policy, trust_anchors=anchors))
        resolution = manager.resolve(MudRequest(args.url), time.time())
    fetcher.close()
    verified = resolution.mud is not None and resolution.outcome in (Outcome.FRESH, Outcome.RENEWED, Outcome.CACHED)
    verdict = "ACCEPTED" if verified else "REFUSED"
    print(f"{verdict} {resolution.outcome.value}")
    for line in _summary(resolution):
        print(line)
    return 0 if verified else 1
