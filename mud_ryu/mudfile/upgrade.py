"""Rewrite the pre-RFC draft MUD dialect into RFC 8520 / RFC 8519 JSON.

The UNSW IoT profiles (and tools derived from them) were generated against
draft-ietf-opsawg-mud / draft-ietf-netmod-acl-model revisions that differ from the RFCs in a few
mechanical ways. :func:`upgrade` performs exactly those rewrites and reports each kind of change,
so an operator can review what was reinterpreted before deploying the result:

* ``ietf-access-control-list:access-lists`` -> ``ietf-access-control-list:acls``;
* ACL type ``ethernet-acl-type`` -> ``eth-acl-type``;
* EtherType hex strings (``"0x0800"``) -> numbers (RFC 8519 ``ethertype`` is uint16 or a name);
* a port match with ``operator`` *and* ``lower-port``/``upper-port`` -> the RFC ``range`` case
  (the draft tools wrote ``"operator": "eq"`` next to a range; only the bounds are kept);
* a network leaf holding a bare address -> that address with its host prefix (/32, /128); an ACE
  whose ``ipv6`` match holds an IPv4 address (or the reverse) is dropped: it can never match;
* an ACE whose EtherType is not IP but which also matches IP fields (the UNSW files pair EAPOL
  and 802.3 lengths with ``local-networks``) is dropped: it can never match either, and
  :func:`mud_ryu.mudfile.reader.parse` refuses it (``match-protocol-mismatch``);
* an ``ipv4-acl-type``/``ipv6-acl-type`` ACL whose ACEs also match Ethernet fields ->
  ``mixed-eth-ipv4-acl-type``/``mixed-eth-ipv6-acl-type`` (RFC 8519 section 4.1).

Anything else is left as written; the caller validates the result with
:func:`mud_ryu.mudfile.reader.parse`, which rejects what this module does not understand.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from typing import Any

from mud_ryu.mudfile import strictjson
from mud_ryu.mudfile.errors import MudFileError

OLD_ACLS = "ietf-access-control-list:access-lists"
NEW_ACLS = "ietf-access-control-list:acls"
_HEX_ETHERTYPE = re.compile(r"0[xX][0-9a-fA-F]{1,4}")
_MIXED = {"ipv4-acl-type": "mixed-eth-ipv4-acl-type", "ipv6-acl-type": "mixed-eth-ipv6-acl-type"}
_IP_ETHERTYPES = (0x0800, 0x86DD, "ipv4", "ipv6")
_IP_ONLY = ("ipv4", "ipv6", "tcp", "udp", "icmp")
_IP_SETS = ("local-networks", "controller", "my-controller")  # ietf-mud abstractions: IP address sets


def _ports(l4: dict[str, Any], notes: Counter[str]) -> None:
    for leaf in ("source-port", "destination-port"):
        port = l4.get(leaf)
        if isinstance(port, dict) and "operator" in port and ("lower-port" in port or "upper-port" in port):
            op = port.pop("operator")
            notes[f"{leaf} with operator {op!r} and lower-port/upper-port rewritten as a port range"] += 1


def _ethertype(eth: dict[str, Any], notes: Counter[str]) -> None:
    value = eth.get("ethertype")
    if isinstance(value, str) and _HEX_ETHERTYPE.fullmatch(value):
        eth["ethertype"] = int(value, 16)
        extra = " (below 0x0600: an 802.3 length, matches no real EtherType)" if eth["ethertype"] < 0x600 else ""
        notes[f"ethertype {value!r} -> {eth['ethertype']}{extra}"] += 1


def _networks(ip: dict[str, Any], version: int, ace: str, notes: Counter[str]) -> bool:
    """Give bare addresses their host prefix; return False if the ACE can never match."""
    for side in ("source", "destination"):
        leaf = f"{side}-ipv{version}-network"
        value = ip.get(leaf)
        if not isinstance(value, str) or "/" in value:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            continue  # left for validation to reject
        if address.version != version:
            notes[f"ACE {ace!r} dropped: IPv{address.version} address in an ipv{version} {leaf} can never match"] += 1
            return False
        ip[leaf] = f"{value}/{address.max_prefixlen}"
        notes[f"{leaf} without prefix length: host prefix /{address.max_prefixlen} added"] += 1
    return True


def _acl(acl: dict[str, Any], notes: Counter[str]) -> None:
    name = acl.get("name")
    if acl.get("type") == "ethernet-acl-type":
        acl["type"] = "eth-acl-type"
        notes["ACL type 'ethernet-acl-type' -> 'eth-acl-type'"] += 1
    aces = acl.get("aces", {}).get("ace", []) if isinstance(acl.get("aces"), dict) else []
    has_eth = False
    for ace in list(aces) if isinstance(aces, list) else []:
        matches = ace.get("matches") if isinstance(ace, dict) else None
        if not isinstance(matches, dict):
            continue
        if not _can_match(matches, str(ace.get("name")), notes):
            # Removing an ACE that can never match changes nothing that could, and never widens.
            aces.remove(ace)
            continue
        has_eth = has_eth or isinstance(matches.get("eth"), dict)
    if has_eth and acl.get("type") in _MIXED:
        old = acl["type"]
        acl["type"] = _MIXED[old]
        notes[f"ACL {name!r}: type {old!r} -> {acl['type']!r} (its ACEs also match Ethernet fields)"] += 1


def _can_match(matches: dict[str, Any], ace: str, notes: Counter[str]) -> bool:
    """Rewrite one ACE's matches; return False (with a note) if no packet can ever match them."""
    for version in (4, 6):
        ip = matches.get(f"ipv{version}")
        if isinstance(ip, dict) and not _networks(ip, version, ace, notes):
            return False  # an IPv6 packet cannot carry an IPv4 address (and vice versa)
    _l2_l4(matches, notes)
    eth = matches.get("eth")
    ethertype = eth.get("ethertype") if isinstance(eth, dict) else None
    if ethertype is None or ethertype in _IP_ETHERTYPES:
        return True
    mud = matches.get("ietf-mud:mud")
    ip_only = [k for k in _IP_ONLY if k in matches] + [k for k in _IP_SETS if isinstance(mud, dict) and k in mud]
    if not ip_only:
        return True
    shown = f"{ethertype:#06x}" if isinstance(ethertype, int) else repr(ethertype)
    notes[f"ACE {ace!r} dropped: ethertype {shown} is not IP but the ACE matches {ip_only[0]}, it can never match"] += 1
    return False


def _l2_l4(matches: dict[str, Any], notes: Counter[str]) -> None:
    if isinstance(matches.get("eth"), dict):
        _ethertype(matches["eth"], notes)
    for l4 in ("tcp", "udp"):
        if isinstance(matches.get(l4), dict):
            _ports(matches[l4], notes)


def upgrade(data: bytes) -> tuple[bytes, list[str]]:
    """Return (RFC 8520 JSON bytes, human-readable notes, one per kind of rewrite with a count).

    Raises :class:`MudFileError` if ``data`` is not strict JSON (``json-*``) or not in the
    pre-RFC dialect (``upgrade-not-applicable``).
    """
    try:
        tree = strictjson.loads_object(data)
    except strictjson.JSONError as exc:
        raise MudFileError(exc.reason, "/", exc.message) from None
    if OLD_ACLS not in tree:
        raise MudFileError("upgrade-not-applicable", "/", f"no {OLD_ACLS!r}: not the pre-RFC dialect")
    if NEW_ACLS in tree:
        raise MudFileError("upgrade-not-applicable", "/", f"both {OLD_ACLS!r} and {NEW_ACLS!r} present")
    notes: Counter[str] = Counter()
    # Rebuild the top level in the same order, renaming the one member.
    tree = {(NEW_ACLS if k == OLD_ACLS else k): v for k, v in tree.items()}
    notes[f"{OLD_ACLS!r} -> {NEW_ACLS!r}"] += 1
    acls = tree[NEW_ACLS].get("acl", []) if isinstance(tree[NEW_ACLS], dict) else []
    for acl in acls if isinstance(acls, list) else []:
        if isinstance(acl, dict):
            _acl(acl, notes)
    text = json.dumps(tree, indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8"), [f"{note} (x{count})" if count > 1 else note for note, count in notes.items()]
