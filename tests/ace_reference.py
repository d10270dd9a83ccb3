"""Two independent answers to "is this packet matched?", for the ACE property test.

* :func:`ace_matches` reads an ACE as JSON and applies RFC 8519 / RFC 8520 literally: every match
  container present must hold, a container implies its header (``ipv4`` an IPv4 packet, ``tcp`` a
  TCP segment in IPv4 or IPv6, ``icmp`` ICMP in IPv4 or ICMPv6 in IPv6, the ietf-mud address
  abstractions an IP packet). It knows nothing of the compiler, the model or OpenFlow, and it
  ignores the ACL type: the compiler may read a type as narrowing an ACE, never as widening it,
  so the literal reading is the right upper bound for "a flow must not match more than its ACE".
* :func:`flow_matches` evaluates one compiler flow record over a packet as an OpenFlow 1.3
  switch would: a field the packet does not carry (``tcp_dst`` of an ARP frame) cannot match,
  and a flow whose fields lack their prerequisites is refused outright (``tests.ofsim``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mud_ryu.compiler.flowrule import FlowRule
from tests.ofsim import normalize_match
from tests.packets import ETH_IPV4, ETH_IPV6, Packet, mac_to_int

ETHERTYPE_NAMES = {"ipv4": ETH_IPV4, "ipv6": ETH_IPV6, "arp": 0x0806}
PROTO_TCP, PROTO_UDP = 6, 17
ICMP_BY_ETH = {ETH_IPV4: 1, ETH_IPV6: 58}


@dataclass(frozen=True)
class Abstractions:
    """What the ACE's names stand for (the compiler reads the same values from its context)."""

    dns: Mapping[str, tuple[str, ...]]
    local_networks: tuple[str, ...]
    controllers: Mapping[str, tuple[str, ...]]


def _in_any(address: str | None, networks: tuple[str, ...]) -> bool:
    if address is None:
        return False
    addr = ipaddress.ip_address(address)
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)


def _mac_ok(actual: str, want: str | None, mask: str | None) -> bool:
    if want is None:
        return True
    m = mac_to_int(mask.lower()) if mask else (1 << 48) - 1
    return mac_to_int(actual) & m == mac_to_int(want.lower()) & m


def _eth(eth: dict[str, Any], pkt: Packet) -> bool:
    ethertype = eth.get("ethertype")
    if ethertype is not None and ETHERTYPE_NAMES.get(ethertype, ethertype) != pkt.eth_type:
        return False
    return _mac_ok(pkt.eth_src, eth.get("source-mac-address"), eth.get("source-mac-address-mask")) and _mac_ok(
        pkt.eth_dst, eth.get("destination-mac-address"), eth.get("destination-mac-address-mask")
    )


def _ip(ip: dict[str, Any], version: int, pkt: Packet, names: Abstractions) -> bool:
    if pkt.eth_type != (ETH_IPV4 if version == 4 else ETH_IPV6):
        return False
    if "protocol" in ip and ip["protocol"] != pkt.ip_proto:
        return False
    for side, address in (("source", pkt.ip_src), ("destination", pkt.ip_dst)):
        net = ip.get(f"{side}-ipv{version}-network")
        if net is not None and not _in_any(address, (net,)):
            return False
    for side, address in (("src", pkt.ip_src), ("dst", pkt.ip_dst)):
        name = ip.get(f"ietf-acldns:{side}-dnsname")
        if name is not None and not _in_any(address, names.dns.get(name, ())):
            return False
    return True


def _port_ok(spec: dict[str, Any] | None, port: int | None) -> bool:
    if spec is None:
        return True
    assert port is not None
    if "lower-port" in spec:
        return int(spec["lower-port"]) <= port <= int(spec["upper-port"])
    want = int(spec["port"])
    return {"eq": port == want, "neq": port != want, "lte": port <= want, "gte": port >= want}[spec["operator"]]


def _l4(l4: dict[str, Any], proto: int, pkt: Packet) -> bool:
    if not pkt.is_ip or pkt.ip_proto != proto:
        return False
    return _port_ok(l4.get("source-port"), pkt.src_port) and _port_ok(l4.get("destination-port"), pkt.dst_port)


def _icmp(icmp: dict[str, Any], pkt: Packet) -> bool:
    if not pkt.is_ip or ICMP_BY_ETH[pkt.eth_type] != pkt.ip_proto:
        return False
    return all(icmp.get(k) is None or icmp[k] == v for k, v in (("type", pkt.icmp_type), ("code", pkt.icmp_code)))


def _mud(mud: dict[str, Any], remote: str | None, pkt: Packet, names: Abstractions) -> bool:
    sets: list[tuple[str, ...]] = []
    if "local-networks" in mud:
        sets.append(names.local_networks)
    if "controller" in mud:
        sets.append(names.controllers.get(mud["controller"], ()))
    if sets and not pkt.is_ip:
        return False  # the abstractions are sets of IP addresses
    return all(_in_any(remote, s) for s in sets)


def ace_matches(ace: dict[str, Any], pkt: Packet, names: Abstractions, *, from_device: bool = True) -> bool:
    """Does the JSON ACE ``ace`` (in a from-device or to-device ACL) match ``pkt``?"""
    m = ace.get("matches", {})
    checks = (
        "eth" not in m or _eth(m["eth"], pkt),
        "ipv4" not in m or _ip(m["ipv4"], 4, pkt, names),
        "ipv6" not in m or _ip(m["ipv6"], 6, pkt, names),
        "tcp" not in m or _l4(m["tcp"], PROTO_TCP, pkt),
        "udp" not in m or _l4(m["udp"], PROTO_UDP, pkt),
        "icmp" not in m or _icmp(m["icmp"], pkt),
        "ietf-mud:mud" not in m or _mud(m["ietf-mud:mud"], pkt.ip_dst if from_device else pkt.ip_src, pkt, names),
    )
    return all(checks)


def flow_matches(rule: FlowRule, pkt: Packet, metadata: int) -> bool:
    """Does ``rule`` match ``pkt`` (arriving at its table with ``metadata``) on an OpenFlow 1.3 switch?"""
    fields = {**pkt.oxm_fields(), "metadata": metadata}
    for name, value, mask in normalize_match(rule.match):  # SimError: a flow a switch would refuse
        got = fields.get(name)  # absent: the packet does not carry the field (its prerequisite fails)
        if got is None or got & mask != value:
            return False
    return True
