"""Turn a YANG-valid, canonicalised MUD JSON tree into the frozen values of :mod:`mud_ryu.mudfile.model`.

Input is the output of :func:`mud_ryu.mudfile.yangcheck.prune` after :func:`~mud_ryu.mudfile.yangcheck.validate`,
so types and mandatory nodes are already guaranteed and member names are in canonical RFC 7951
form. This module only normalises (identities without prefix, ethertype names to numbers,
canonical CIDR text, lower-case MACs and DNS names) and records where each ACL sits in the file
so the semantic rules can report JSON paths.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from mud_ryu.mudfile.model import (
    Ace,
    Acl,
    Direction,
    EthMatch,
    Forwarding,
    IcmpMatch,
    IpMatch,
    Matches,
    MudFile,
    MudMatch,
    PortMatch,
    TcpMatch,
    UdpMatch,
)

MUD = "ietf-mud:mud"
ACLS = "ietf-access-control-list:acls"
ACL_PREFIX = "ietf-access-control-list:"
DEFAULT_CACHE_VALIDITY = 48  # ietf-mud: default "48" (hours)

# Leaves that are valid YANG but that OpenFlow 1.3 cannot match on: listed in ``unsupported`` so
# the compiler refuses the ACE instead of ignoring a condition (which would widen an accept).
_IPV4_UNSUPPORTED = ("length", "ttl", "ihl", "flags", "offset", "identification")
_IPV6_UNSUPPORTED = ("length", "ttl")
_TCP_UNSUPPORTED = (
    "sequence-number",
    "acknowledgement-number",
    "data-offset",
    "reserved",
    "flags",
    "window-size",
    "urgent-pointer",
    "options",
)
_UDP_UNSUPPORTED = ("length",)
_ICMP_UNSUPPORTED = ("rest-of-header",)


@dataclass(frozen=True)
class Built:
    """The model plus the raw facts the semantic rules need."""

    mud: MudFile
    acls: tuple[Acl, ...]  # every ACL of the file, in file order (referenced or not)
    acl_index: dict[str, int]  # ACL name -> index in the acl list (for JSON paths)


def _identity(value: str) -> str:
    """``ietf-access-control-list:accept`` -> ``accept`` (prefix optional in RFC 7951)."""
    return value.removeprefix(ACL_PREFIX)


def _network(value: str | None) -> str | None:
    # inet:ipv4-prefix allows host bits; the canonical form (RFC 6991) zeroes them.
    return None if value is None else str(ipaddress.ip_network(value, strict=False))


def _dnsname(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _mac(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _present(container: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if n in container)


def _port(raw: dict[str, Any] | None) -> PortMatch | None:
    if not raw:
        return None
    if "lower-port" in raw:
        return PortMatch("range", lower=raw["lower-port"], upper=raw["upper-port"])
    if "port" in raw:
        return PortMatch(raw.get("operator", "eq"), port=raw["port"])
    return None


def _ip(raw: dict[str, Any], version: int) -> IpMatch:
    suffix = f"ipv{version}-network"
    return IpMatch(
        version=version,
        protocol=raw.get("protocol"),
        dscp=raw.get("dscp"),
        ecn=raw.get("ecn"),
        src_network=_network(raw.get(f"source-{suffix}")),
        dst_network=_network(raw.get(f"destination-{suffix}")),
        src_dnsname=_dnsname(raw.get("ietf-acldns:src-dnsname")),
        dst_dnsname=_dnsname(raw.get("ietf-acldns:dst-dnsname")),
        flow_label=raw.get("flow-label") if version == 6 else None,
        unsupported=_present(raw, _IPV4_UNSUPPORTED if version == 4 else _IPV6_UNSUPPORTED),
    )


def _mud_match(raw: dict[str, Any]) -> MudMatch:
    return MudMatch(
        manufacturer=_dnsname(raw.get("manufacturer")),
        same_manufacturer="same-manufacturer" in raw,
        model=raw.get("model"),
        local_networks="local-networks" in raw,
        controller=raw.get("controller"),
        my_controller="my-controller" in raw,
    )


def _matches(raw: dict[str, Any], ethertypes: dict[str, int]) -> Matches:
    eth = tcp = udp = icmp = None
    if (e := raw.get("eth")) is not None:
        ethertype = e.get("ethertype")
        eth = EthMatch(
            src_mac=_mac(e.get("source-mac-address")),
            src_mac_mask=_mac(e.get("source-mac-address-mask")),
            dst_mac=_mac(e.get("destination-mac-address")),
            dst_mac_mask=_mac(e.get("destination-mac-address-mask")),
            ethertype=ethertypes[ethertype] if isinstance(ethertype, str) else ethertype,
        )
    if (t := raw.get("tcp")) is not None:
        initiated = t.get("ietf-mud:direction-initiated")
        tcp = TcpMatch(
            src_port=_port(t.get("source-port")),
            dst_port=_port(t.get("destination-port")),
            direction_initiated=None if initiated is None else Direction(initiated),
            unsupported=_present(t, _TCP_UNSUPPORTED),
        )
    if (u := raw.get("udp")) is not None:
        udp = UdpMatch(
            src_port=_port(u.get("source-port")),
            dst_port=_port(u.get("destination-port")),
            unsupported=_present(u, _UDP_UNSUPPORTED),
        )
    if (i := raw.get("icmp")) is not None:
        icmp = IcmpMatch(type=i.get("type"), code=i.get("code"), unsupported=_present(i, _ICMP_UNSUPPORTED))
    return Matches(
        eth=eth,
        ipv4=_ip(raw["ipv4"], 4) if "ipv4" in raw else None,
        ipv6=_ip(raw["ipv6"], 6) if "ipv6" in raw else None,
        tcp=tcp,
        udp=udp,
        icmp=icmp,
        mud=_mud_match(raw[MUD]) if MUD in raw else None,
    )


def _acl(raw: dict[str, Any], ethertypes: dict[str, int]) -> Acl:
    aces = tuple(
        Ace(
            name=ace["name"],
            matches=_matches(ace.get("matches", {}), ethertypes),
            forwarding=Forwarding(_identity(ace["actions"]["forwarding"])),
        )
        for ace in raw.get("aces", {}).get("ace", [])
    )
    acl_type = raw.get("type")
    return Acl(name=raw["name"], type=None if acl_type is None else _identity(acl_type), aces=aces)


def policy_names(mud: dict[str, Any], direction: Direction) -> list[str]:
    """ACL names a policy lists, in order."""
    policy = mud.get(f"{direction.value}-policy", {})
    return [entry["name"] for entry in policy.get("access-lists", {}).get("access-list", [])]


def build(tree: dict[str, Any], ethertypes: dict[str, int]) -> Built:
    """Model of a validated tree. Policy references must already be known to resolve."""
    mud = tree[MUD]
    raw_acls = tree.get(ACLS, {}).get("acl", [])
    acls = tuple(_acl(a, ethertypes) for a in raw_acls)
    by_name = {acl.name: acl for acl in acls}
    index = {acl.name: i for i, acl in enumerate(acls)}
    model = MudFile(
        mud_version=mud["mud-version"],
        mud_url=mud["mud-url"],
        last_update=mud["last-update"],
        cache_validity=mud.get("cache-validity", DEFAULT_CACHE_VALIDITY),
        is_supported=mud["is-supported"],
        systeminfo=mud.get("systeminfo"),
        mfg_name=mud.get("mfg-name"),
        model_name=mud.get("model-name"),
        firmware_rev=mud.get("firmware-rev"),
        software_rev=mud.get("software-rev"),
        documentation=mud.get("documentation"),
        mud_signature=mud.get("mud-signature"),
        extensions=tuple(mud.get("extensions", ())),
        from_device=tuple(by_name[n] for n in policy_names(mud, Direction.FROM_DEVICE)),
        to_device=tuple(by_name[n] for n in policy_names(mud, Direction.TO_DEVICE)),
    )
    return Built(model, acls, index)
