"""MUD rules that YANG cannot express, and the resource caps of THREATS.md row 9.

Each rule exists because breaking it would let a file widen what a device may reach, make the
enforcer guess, or make it do unbounded work. A broken rule rejects the whole file with a stable
reason code and the JSON path of the offending node; over a cap the file is rejected, never
truncated (a truncated ACL is a different policy than the one the manufacturer signed).
Non-fatal observations are returned as warning findings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from mud_ryu.mudfile.build import ACLS, MUD, Built
from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import Ace, Acl, Direction, Finding, Forwarding, MudFile

MAX_ACES = 1000
MAX_ACLS = 32  # real files have 2-8 (v4/v6 x from/to); YANG `when` cost grows with ACLs x ACEs
MAX_DNS_NAMES = 256
MAX_PORT_RANGES = 256  # port matches other than "eq": each can cost many flows
MAX_URL_OCTETS = 255
SUPPORTED_MUD_VERSION = 1

# Which match containers each ACL type admits (RFC 8519 section 4.1 identities). "mud" (the
# ietf-mud augment) is allowed everywhere; an untyped ACL admits everything.
_L3_L4 = frozenset({"tcp", "udp", "icmp"})
_ALLOWED: dict[str, frozenset[str]] = {
    "ipv4-acl-type": frozenset({"ipv4"}) | _L3_L4,
    "ipv6-acl-type": frozenset({"ipv6"}) | _L3_L4,
    "eth-acl-type": frozenset({"eth"}),
    "mixed-eth-ipv4-acl-type": frozenset({"eth", "ipv4"}) | _L3_L4,
    "mixed-eth-ipv6-acl-type": frozenset({"eth", "ipv6"}) | _L3_L4,
    "mixed-eth-ipv4-ipv6-acl-type": frozenset({"eth", "ipv4", "ipv6"}) | _L3_L4,
}
_ETHERTYPE_OF_IP = {4: 0x0800, 6: 0x86DD}
_ICMP_PROTOCOL = {4: 1, 6: 58}
# The IP family a mixed ACL type gives the ACEs that match IP fields without an ipv4/ipv6 container
# (the compiler reads it the same way: mud_ryu.compiler.ace_match.family_of_acl).
_FAMILY_OF_MIXED = {"mixed-eth-ipv4-acl-type": 4, "mixed-eth-ipv6-acl-type": 6}


def _ace_path(built: Built, acl: Acl, i: int) -> str:
    return f"/{ACLS}/acl/{built.acl_index[acl.name]}/aces/ace/{i}"


def _policies(mud: MudFile) -> Iterator[tuple[Direction, Acl]]:
    for direction in Direction:
        for acl in mud.policy(direction):
            yield direction, acl


def _containers(ace: Ace) -> set[str]:
    m = ace.matches
    present = {"eth": m.eth, "ipv4": m.ipv4, "ipv6": m.ipv6, "tcp": m.tcp, "udp": m.udp, "icmp": m.icmp}
    return {name for name, value in present.items() if value is not None}


def _check_header(mud: MudFile) -> None:
    if mud.mud_version != SUPPORTED_MUD_VERSION:
        raise MudFileError(
            "mud-version-unsupported", f"/{MUD}/mud-version", f"mud-version {mud.mud_version} (only 1 exists)"
        )
    for leaf, url in (("mud-url", mud.mud_url), ("mud-signature", mud.mud_signature)):
        if url is None:
            continue
        try:
            parts = urlsplit(url)
            https = parts.scheme.lower() == "https" and bool(parts.hostname)
            # draft-ietf-iotops-mud-acceptable-urls: mud-signature SHOULD be a relative reference, resolved
            # against mud-url (so it stays on the same host; the fetcher checks that again).
            relative = leaf == "mud-signature" and not parts.scheme and not parts.netloc and not url.startswith("/")
        except ValueError:  # e.g. "Invalid IPv6 URL" for an unbalanced bracket
            https = relative = False
        if not (https or relative):
            raise MudFileError("mud-url-not-https", f"/{MUD}/{leaf}", f"{leaf} must be an https URL")
        if len(url.encode()) > MAX_URL_OCTETS:
            raise MudFileError("mud-url-too-long", f"/{MUD}/{leaf}", f"{leaf} longer than {MAX_URL_OCTETS} octets")


def check_size(tree: dict[str, Any]) -> None:
    """ACL and ACE counts, on the raw tree *before* YANG validation so that an oversized file
    costs no schema work. Malformed shapes are left for the YANG pass to report."""
    acls = tree.get(ACLS, {}).get("acl", []) if isinstance(tree.get(ACLS), dict) else []
    if not isinstance(acls, list):
        return
    if len(acls) > MAX_ACLS:
        raise MudFileError("too-many-acls", f"/{ACLS}/acl", f"{len(acls)} ACLs (max {MAX_ACLS})")
    aces = 0
    for acl in acls:
        container = acl.get("aces") if isinstance(acl, dict) else None
        entries = container.get("ace") if isinstance(container, dict) else None
        aces += len(entries) if isinstance(entries, list) else 0
    if aces > MAX_ACES:
        raise MudFileError("too-many-aces", f"/{ACLS}/acl", f"{aces} ACEs (max {MAX_ACES})")


def _check_caps(built: Built) -> None:
    names: set[str] = set()
    ranges = 0
    for acl in built.acls:
        for i, ace in enumerate(acl.aces):
            for ip in (ace.matches.ipv4, ace.matches.ipv6):
                if ip is not None:
                    names.update(n for n in (ip.src_dnsname, ip.dst_dnsname) if n)
            for l4 in (ace.matches.tcp, ace.matches.udp):
                if l4 is not None:
                    ranges += sum(1 for p in (l4.src_port, l4.dst_port) if p and p.operator != "eq")
            if len(names) > MAX_DNS_NAMES:
                raise MudFileError(
                    "too-many-dns-names", _ace_path(built, acl, i), f"more than {MAX_DNS_NAMES} DNS names"
                )
            if ranges > MAX_PORT_RANGES:
                raise MudFileError(
                    "too-many-port-ranges", _ace_path(built, acl, i), f"more than {MAX_PORT_RANGES} port ranges"
                )


def _check_dnsnames(built: Built, acl: Acl, direction: Direction) -> None:
    # RFC 8520 section 8.x (ietf-acldns use in MUD): the Thing is always one end of the flow, so a
    # from-device ACL names the remote side as the destination, a to-device ACL as the source.
    # A name on the Thing's own side would be meaningless, or match the Thing's own traffic broadly.
    wrong = "src" if direction is Direction.FROM_DEVICE else "dst"
    for i, ace in enumerate(acl.aces):
        for ip in (ace.matches.ipv4, ace.matches.ipv6):
            if ip is None:
                continue
            for side, name in (("src", ip.src_dnsname), ("dst", ip.dst_dnsname)):
                if name is None:
                    continue
                leaf = f"{_ace_path(built, acl, i)}/matches/ipv{ip.version}/ietf-acldns:{side}-dnsname"
                if side == wrong:
                    raise MudFileError("dnsname-wrong-direction", leaf, f"{side}-dnsname in a {direction.value} ACL")
                if name == "." or _is_address(name):
                    raise MudFileError("dnsname-invalid", leaf, f"{name!r} is not a DNS name")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_consistency(built: Built, acl: Acl) -> None:
    allowed = _ALLOWED.get(acl.type) if acl.type else None
    for i, ace in enumerate(acl.aces):
        path = _ace_path(built, acl, i)
        present = _containers(ace)
        if allowed is not None and present - allowed:
            extra = ", ".join(sorted(present - allowed))
            raise MudFileError("acl-type-mismatch", f"{path}/matches", f"{extra} match in an ACL of type {acl.type}")
        m = ace.matches
        ip = m.ip
        if ip is None or ip.protocol is None:
            expected = None
        elif m.tcp is not None:
            expected = 6
        elif m.udp is not None:
            expected = 17
        elif m.icmp is not None:
            expected = _ICMP_PROTOCOL[ip.version]
        else:
            expected = None
        if ip is not None and expected is not None and ip.protocol != expected:
            raise MudFileError(
                "match-protocol-mismatch",
                f"{path}/matches/ipv{ip.version}/protocol",
                f"protocol {ip.protocol} with a {sorted(present & _L3_L4)[0]} match (expected {expected})",
            )
        ethertype = m.eth.ethertype if m.eth is not None else None
        if ip is not None and ethertype is not None and ethertype != _ETHERTYPE_OF_IP[ip.version]:
            raise MudFileError(
                "match-protocol-mismatch",
                f"{path}/matches/eth/ethertype",
                f"ethertype {ethertype:#06x} with an ipv{ip.version} match",
            )
        if ethertype is not None:
            _check_ethertype_is_ip(ace, ethertype, acl.type, path)


def _ip_only_matches(ace: Ace) -> list[str]:
    """The matches of ``ace`` that only an IP packet can satisfy, besides an ipv4/ipv6 container."""
    m = ace.matches
    names = [name for name, part in (("tcp", m.tcp), ("udp", m.udp), ("icmp", m.icmp)) if part is not None]
    mud = m.mud
    if mud is not None:  # RFC 8520 section 8: these abstractions stand for sets of IP addresses
        sets = (
            ("local-networks", mud.local_networks),
            ("controller", mud.controller),
            ("my-controller", mud.my_controller),
        )
        names += [leaf for leaf, value in sets if value]
    return names


def _check_ethertype_is_ip(ace: Ace, ethertype: int, acl_type: str | None, path: str) -> None:
    # An ACE matches a packet only if every one of its matches holds, so a non-IP ethertype next to
    # a TCP port, an ICMP type or an IP address set matches nothing. Enforcing either half alone
    # would widen it (an IP flow for an ARP ACE), so the file is refused: its author meant something else.
    needs_ip = _ip_only_matches(ace)
    if not needs_ip:
        return
    leaf = f"{path}/matches/eth/ethertype"
    if ethertype not in _ETHERTYPE_OF_IP.values():
        raise MudFileError(
            "match-protocol-mismatch", leaf, f"ethertype {ethertype:#06x} is not IP, yet the ACE matches {needs_ip[0]}"
        )
    family = _FAMILY_OF_MIXED.get(acl_type or "")
    if family is not None and ethertype != _ETHERTYPE_OF_IP[family]:
        raise MudFileError(
            "match-protocol-mismatch", leaf, f"ethertype {ethertype:#06x} with a {needs_ip[0]} match in a {acl_type}"
        )


def _warnings(built: Built) -> list[Finding]:
    out: list[Finding] = []
    referenced = {acl.name for _d, acl in _policies(built.mud)}
    for acl in built.acls:
        if acl.name not in referenced:
            out.append(
                Finding("acl-unreferenced", f"/{ACLS}/acl/{built.acl_index[acl.name]}", f"ACL {acl.name!r} is not used")
            )
        for i, ace in enumerate(acl.aces):
            path = _ace_path(built, acl, i)
            if ace.forwarding is Forwarding.REJECT:
                out.append(Finding("reject-as-drop", f"{path}/actions/forwarding", "'reject' is enforced as drop"))
            if ace.forwarding.allows and not _containers(ace) and (ace.matches.mud is None or ace.matches.mud.empty):
                out.append(Finding("ace-matches-any", f"{path}/matches", "accept ACE without any match condition"))
    return out


def check(built: Built) -> list[Finding]:
    """Apply every rule; raise :class:`MudFileError` on the first broken one, else return warnings."""
    _check_header(built.mud)
    _check_caps(built)
    for direction, acl in _policies(built.mud):
        _check_dnsnames(built, acl, direction)
    for acl in built.acls:
        _check_consistency(built, acl)
    return _warnings(built)
