"""Property: no compiled flow matches a packet its ACE does not match.

ACEs are generated as RFC 8519 JSON (any mix of eth, ipv4/ipv6, tcp/udp/icmp and ietf-mud
containers, contradictory ones included), put in a MUD file and fed through the real validator
(:func:`mud_ryu.mudfile.reader.parse`) and compiler (:func:`mud_ryu.compiler.compile.compile_profile`). A file
either is refused (with a reason) or compiles; then, for packets drawn around the ACE's own
values, every flow that matches a packet must belong to an ACE that matches it too, by the
independent reading of :mod:`tests.ace_reference`. Every abstraction the ACE may name is
resolved in the context, so no drop ACE is broadened for an unknown set (a deliberate widening,
tested elsewhere).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from mud_ryu.compiler.compile import CompileError, compile_profile
from mud_ryu.compiler.context import NetworkContext
from mud_ryu.compiler.pipeline import SRC_MANAGED_BIT, SRC_PROFILE_SHIFT
from mud_ryu.mudfile import reader as mudfile
from tests.ace_reference import Abstractions, ace_matches, flow_matches
from tests.hostile_mud import ACLS, MUD
from tests.packets import ETH_IPV4, ETH_IPV6, Packet

URL = "https://things.example.com/prop.json"
PID = 7
METADATA = (PID << SRC_PROFILE_SHIFT) | SRC_MANAGED_BIT  # what the device's classification flow writes
HUB = "urn:example:hub"
NAMES = Abstractions(
    dns={"cloud.example.com": ("192.0.2.10", "2001:db8::10")},
    local_networks=("10.0.0.0/8", "fd00::/8"),
    controllers={HUB: ("198.51.100.7", "2001:db8:7::7")},
)
CTX = NetworkContext(dns=NAMES.dns, controllers=NAMES.controllers, local_networks=NAMES.local_networks)
ACL_TYPES = (
    None,
    "ipv4-acl-type",
    "ipv6-acl-type",
    "eth-acl-type",
    "mixed-eth-ipv4-acl-type",
    "mixed-eth-ipv6-acl-type",
    "mixed-eth-ipv4-ipv6-acl-type",
)
ETHERTYPES = (ETH_IPV4, ETH_IPV6, 0x0806, 0x888E, "arp", "ipv4", "ipv6")
PROTOCOLS = (1, 6, 17, 58, 47)
MACS = ("00:00:5e:00:53:01", "00:00:5e:00:53:02", "02:00:00:00:00:01")
ADDRESSES = {
    4: ("192.0.2.10", "192.0.2.99", "10.1.2.3", "198.51.100.7", "203.0.113.5"),
    6: ("2001:db8::10", "2001:db8::99", "fd00::3", "2001:db8:7::7", "2001:db8:ffff::5"),
}
NETWORKS = {4: ("192.0.2.0/24", "10.1.2.3/32", "203.0.113.0/25"), 6: ("2001:db8::/64", "fd00::3/128")}
L4_PROTOCOLS = {4: {"tcp": 6, "udp": 17, "icmp": 1}, 6: {"tcp": 6, "udp": 17, "icmp": 58}}
PORT_EDGES = (0, 1, 52, 53, 54, 442, 443, 444, 1023, 1024, 65534, 65535)


@st.composite
def _port(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        lower = draw(st.sampled_from(PORT_EDGES))
        return {"lower-port": lower, "upper-port": draw(st.sampled_from([p for p in PORT_EDGES if p >= lower]))}
    return {"operator": draw(st.sampled_from(("eq", "neq", "lte", "gte"))), "port": draw(st.sampled_from(PORT_EDGES))}


def _maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    return draw(strategy) if draw(st.booleans()) else None


@st.composite
def _ip(draw: st.DrawFn, version: int) -> dict[str, Any]:
    ip: dict[str, Any] = {}
    for key, value in (
        ("protocol", _maybe(draw, st.sampled_from(PROTOCOLS))),
        (f"source-ipv{version}-network", _maybe(draw, st.sampled_from(NETWORKS[version]))),
        (f"destination-ipv{version}-network", _maybe(draw, st.sampled_from(NETWORKS[version]))),
        ("ietf-acldns:dst-dnsname", "cloud.example.com" if draw(st.integers(0, 3)) == 0 else None),
    ):
        if value is not None:
            ip[key] = value
    return ip


@st.composite
def aces(draw: st.DrawFn) -> dict[str, Any]:
    """One ACE as JSON: each container present or not, independently (so contradictions occur). Weighted
    towards an eth match without an ipv4/ipv6 one: the region where the ethertype alone says "not IP"."""
    m: dict[str, Any] = {}
    if draw(st.integers(0, 2)):
        eth: dict[str, Any] = {}
        if draw(st.integers(0, 3)):
            eth["ethertype"] = draw(st.sampled_from(ETHERTYPES))
        if draw(st.integers(0, 2)) == 0:
            eth["source-mac-address"] = draw(st.sampled_from(MACS))
        m["eth"] = eth
    version = draw(st.sampled_from((None, None, 4, 6)))
    if version is not None:
        m[f"ipv{version}"] = draw(_ip(version))
    l4 = draw(st.sampled_from((None, "tcp", "udp", "icmp")))
    if l4 == "icmp":
        m["icmp"] = {k: v for k, v in (("type", _maybe(draw, st.sampled_from((0, 8, 128)))),) if v is not None}
    elif l4 is not None:
        m[l4] = {k: draw(_port()) for k in ("source-port", "destination-port") if draw(st.booleans())}
    abstraction = draw(st.sampled_from((None, None, "local-networks", "controller")))
    if abstraction == "local-networks":
        m["ietf-mud:mud"] = {"local-networks": [None]}
    elif abstraction == "controller":
        m["ietf-mud:mud"] = {"controller": HUB}
    return {"name": "a0", "matches": m, "actions": {"forwarding": draw(st.sampled_from(("accept", "drop")))}}


def mud_json(ace: dict[str, Any], acl_type: str | None) -> bytes:
    acl: dict[str, Any] = {"name": "fr", "aces": {"ace": [ace]}}
    if acl_type is not None:
        acl["type"] = acl_type
    tree = {
        MUD: {
            "mud-version": 1,
            "mud-url": URL,
            "last-update": "2024-01-01T00:00:00+00:00",
            "cache-validity": 48,
            "is-supported": True,
            "systeminfo": "property test",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
        },
        ACLS: {"acl": [acl]},
    }
    return json.dumps(tree).encode()


def _ace_values(ace: dict[str, Any], key: str) -> list[Any]:
    """Every value of leaves named ``key`` in the ACE (for drawing packets close to it)."""
    found: list[Any] = []
    stack: list[Any] = [ace]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.extend(v for k, v in node.items() if k == key)
            stack.extend(node.values())
    return found


def _addresses(ace: dict[str, Any]) -> dict[int, list[str]]:
    out = {v: list(a) for v, a in ADDRESSES.items()}
    for version in (4, 6):
        for key in (f"source-ipv{version}-network", f"destination-ipv{version}-network"):
            for text in _ace_values(ace, key):
                net = ipaddress.ip_network(text)
                out[version] += [str(net.network_address), str(net.broadcast_address)]
    return out


@st.composite
def packets(draw: st.DrawFn, ace: dict[str, Any]) -> Packet:
    """A packet made of the ACE's own values and near misses (and a few unrelated ones)."""
    eth_types = [ETH_IPV4, ETH_IPV6, 0x0806, 0x888E, *(e for e in _ace_values(ace, "ethertype") if isinstance(e, int))]
    eth_type = draw(st.sampled_from(eth_types))
    src, dst = draw(st.sampled_from(MACS)), draw(st.sampled_from(MACS))
    addresses = _addresses(ace)
    if eth_type == 0x0806:
        return Packet.arp(1, src, dst, draw(st.sampled_from(addresses[4])), draw(st.sampled_from(addresses[4])))
    if eth_type not in (ETH_IPV4, ETH_IPV6):
        return Packet(1, src, dst, eth_type)
    version = 4 if eth_type == ETH_IPV4 else 6
    ip_src, ip_dst = draw(st.sampled_from(addresses[version])), draw(st.sampled_from(addresses[version]))
    # Twice the weight for the protocols the ACE names or implies: most flows only match those.
    l4 = L4_PROTOCOLS[version]
    implied = [*_ace_values(ace, "protocol"), *(l4[k] for k in ace["matches"] if k in l4)]
    proto = draw(st.sampled_from((*PROTOCOLS, *implied, *implied)))
    ports = (*PORT_EDGES, *_ace_values(ace, "port"), *_ace_values(ace, "lower-port"), *_ace_values(ace, "upper-port"))
    if proto in (6, 17):
        sport, dport = draw(st.sampled_from(ports)), draw(st.sampled_from(ports))
        make = Packet.tcp if proto == 6 else Packet.udp
        return make(1, src, dst, ip_src, ip_dst, sport, dport)
    if (proto, version) in ((1, 4), (58, 6)):
        return Packet.icmp(1, src, dst, ip_src, ip_dst, draw(st.sampled_from((0, 8, 128, 129))))
    return Packet.ip(1, src, dst, ip_src, ip_dst, proto)


def _admits(acl_type: str | None, ace: dict[str, Any]) -> bool:
    """RFC 8519 section 4.1: which match containers an ACL type is made of (the YANG ``when`` of eth, ipv4
    and ipv6 needs a type, so an untyped ACL holds L4 and ietf-mud matches only)."""
    present = set(ace["matches"]) - {"ietf-mud:mud"}
    if acl_type is None:
        return present <= {"tcp", "udp", "icmp"}
    allowed = {"tcp", "udp", "icmp"} if "ipv" in acl_type else set()
    allowed |= {"eth"} if "eth" in acl_type else set()
    allowed |= {f"ipv{v}" for v in (4, 6) if f"ipv{v}" in acl_type}
    return present <= allowed


@st.composite
def acl_types(draw: st.DrawFn, ace: dict[str, Any]) -> str | None:
    """Mostly a type that admits the ACE's containers (a mismatch is refused before anything else is checked)."""
    fitting = [t for t in ACL_TYPES if _admits(t, ace)]
    one_in_five = draw(st.integers(0, 4)) == 0
    pool = ACL_TYPES if one_in_five or not fitting else tuple(fitting)
    return draw(st.sampled_from(pool))


Case = tuple[dict[str, Any], str | None, list[Packet]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    ace = draw(aces())
    return ace, draw(acl_types(ace)), draw(st.lists(packets(ace), min_size=4, max_size=16))


def _case(matches: dict[str, Any], acl_type: str, pkt: Packet) -> Case:
    return {"name": "a0", "matches": matches, "actions": {"forwarding": "accept"}}, acl_type, [pkt]


EAPOL_TO_LOCAL = {"eth": {"ethertype": 0x888E}, "ietf-mud:mud": {"local-networks": [None]}}
TCP_PKT = Packet.tcp(1, MACS[0], MACS[1], "192.0.2.10", "10.1.2.3", 1024, 80)


# The widenings found before the fix, always tried: an ARP ACE with a TCP port became IPv4+IPv6 TCP on that
# port; the upgraded UNSW files' EAPOL ACE with local-networks became any IP to the local networks.
@example(case=_case({"eth": {"ethertype": "arp"}, "tcp": {}}, "mixed-eth-ipv4-ipv6-acl-type", TCP_PKT))
@example(case=_case(EAPOL_TO_LOCAL, "eth-acl-type", TCP_PKT))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_no_flow_matches_a_packet_its_ace_does_not(case: Case) -> None:
    ace, acl_type, pkts = case
    try:
        parsed = mudfile.parse(mud_json(ace, acl_type))
        rules = compile_profile(parsed.mud, CTX, PID).rules
    except (mudfile.MudFileError, CompileError) as refused:
        event(f"refused: {refused.reason}")  # refused with a reason: nothing is enforced, nothing widened
        return
    event("compiled" if rules else "compiled to no flows")
    for pkt in pkts:
        if ace_matches(ace, pkt, NAMES):
            continue
        wider = [r.match for r in rules if flow_matches(r, pkt, METADATA)]
        assert not wider, f"{acl_type} ACE {json.dumps(ace['matches'])} does not match {pkt}, flows {wider} do"
