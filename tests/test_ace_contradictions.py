"""ACEs no packet can match (a non-IP EtherType with ports, ICMP with TCP, ...) are refused with a reason,
by the validator (with the JSON path of the contradicting leaf) and, for models built by hand, the compiler.
Enforcing only part of such an ACE would widen it: an ARP ACE with a TCP port used to become IPv4+IPv6 TCP."""

from __future__ import annotations

from typing import Any

import pytest

from mud_ryu.compiler.compile import CompileError, compile_profile
from mud_ryu.compiler.context import NetworkContext
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile.model import (
    Ace,
    Acl,
    EthMatch,
    Forwarding,
    IcmpMatch,
    IpMatch,
    Matches,
    MudMatch,
    TcpMatch,
    UdpMatch,
)
from tests.compiler_helpers import eq
from tests.compiler_helpers import mudfile as model_file
from tests.hostile_mud import ACLS, base_doc, dumps

ACE0 = f"/{ACLS}/acl/0/aces/ace/0"
TCP_80 = {"destination-port": {"operator": "eq", "port": 80}}


def _doc(acl_type: str, matches: dict[str, Any]) -> dict[str, Any]:
    """The base file with its first ACL holding one accept ACE of ``matches``."""
    doc = base_doc()
    acl = doc[ACLS]["acl"][0]
    acl["type"] = acl_type
    acl["aces"]["ace"] = [{"name": "x", "matches": matches, "actions": {"forwarding": "accept"}}]
    return doc


def _refusal(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.parse(dumps(doc))
    return info.value.finding.reason, info.value.finding.path


@pytest.mark.parametrize(
    ("acl_type", "matches", "reason", "leaf"),
    [
        # a non-IP EtherType with matches only an IP packet can meet
        ("mixed-eth-ipv4-ipv6-acl-type", {"eth": {"ethertype": "arp"}, "tcp": TCP_80}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        ("mixed-eth-ipv4-acl-type", {"eth": {"ethertype": 2054}, "udp": {}}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        ("mixed-eth-ipv6-acl-type", {"eth": {"ethertype": 34958}, "icmp": {"type": 128}}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        ("eth-acl-type", {"eth": {"ethertype": 34958}, "ietf-mud:mud": {"local-networks": [None]}},
         "match-protocol-mismatch", "/matches/eth/ethertype"),
        ("eth-acl-type", {"eth": {"ethertype": 6}, "ietf-mud:mud": {"controller": "urn:example:hub"}},
         "match-protocol-mismatch", "/matches/eth/ethertype"),
        ("mixed-eth-ipv4-acl-type", {"eth": {"ethertype": "arp"}, "ipv4": {"protocol": 6}}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        # an IP EtherType of the other family than the ACE's IP matches
        ("mixed-eth-ipv4-acl-type", {"eth": {"ethertype": "ipv6"}, "tcp": TCP_80}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        ("mixed-eth-ipv6-acl-type", {"eth": {"ethertype": "ipv4"}, "ietf-mud:mud": {"local-networks": [None]}},
         "match-protocol-mismatch", "/matches/eth/ethertype"),
        ("mixed-eth-ipv4-acl-type", {"eth": {"ethertype": "ipv6"}, "ipv4": {}}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        ("mixed-eth-ipv6-acl-type", {"eth": {"ethertype": "ipv4"}, "ipv6": {}}, "match-protocol-mismatch",
         "/matches/eth/ethertype"),
        # an IP protocol number other than the L4 match's
        ("ipv4-acl-type", {"ipv4": {"protocol": 17}, "tcp": TCP_80}, "match-protocol-mismatch",
         "/matches/ipv4/protocol"),
        ("ipv6-acl-type", {"ipv6": {"protocol": 6}, "udp": {}}, "match-protocol-mismatch", "/matches/ipv6/protocol"),
        ("ipv6-acl-type", {"ipv6": {"protocol": 1}, "icmp": {}}, "match-protocol-mismatch", "/matches/ipv6/protocol"),
        # the ACL type admits no such container
        ("ipv6-acl-type", {"ipv4": {"protocol": 6}, "tcp": TCP_80}, "acl-type-mismatch", "/matches"),
        ("eth-acl-type", {"eth": {"ethertype": "arp"}, "tcp": TCP_80}, "acl-type-mismatch", "/matches"),
    ],
)  # fmt: skip
def test_contradictory_ace_is_refused_at_its_leaf(
    acl_type: str, matches: dict[str, Any], reason: str, leaf: str
) -> None:
    assert _refusal(_doc(acl_type, matches)) == (reason, ACE0 + leaf)


def test_icmp_with_ports_is_refused_by_the_schema() -> None:
    # RFC 8519: tcp, udp and icmp are cases of one YANG choice, so ICMP cannot carry ports.
    reason, _path = _refusal(_doc("ipv4-acl-type", {"ipv4": {}, "icmp": {"type": 8}, "tcp": TCP_80}))
    assert reason == "yang-schema"


@pytest.mark.parametrize(
    ("acl_type", "matches"),
    [
        ("eth-acl-type", {"eth": {"ethertype": "arp"}}),
        ("eth-acl-type", {"eth": {"ethertype": "arp"}, "ietf-mud:mud": {"same-manufacturer": [None]}}),
        ("eth-acl-type", {"eth": {"ethertype": "ipv4"}, "ietf-mud:mud": {"local-networks": [None]}}),
        ("mixed-eth-ipv4-acl-type", {"eth": {"ethertype": "ipv4"}, "tcp": TCP_80}),
        ("mixed-eth-ipv4-ipv6-acl-type", {"eth": {"ethertype": "ipv6"}, "udp": {}}),
        ("mixed-eth-ipv6-acl-type", {"eth": {"ethertype": "ipv6"}, "ipv6": {"protocol": 58}, "icmp": {}}),
    ],
)
def test_consistent_aces_stay_valid(acl_type: str, matches: dict[str, Any]) -> None:
    assert mudfile.parse(dumps(_doc(acl_type, matches))).mud.from_device[0].aces[0].matches.eth is not None


ARP = EthMatch(ethertype=0x0806)


@pytest.mark.parametrize(
    ("acl_type", "matches"),
    [
        (None, Matches(eth=ARP, tcp=TcpMatch(dst_port=eq(80)))),
        ("mixed-eth-ipv4-ipv6-acl-type", Matches(eth=ARP, udp=UdpMatch(dst_port=eq(53)))),
        ("eth-acl-type", Matches(eth=ARP, icmp=IcmpMatch(type=8))),
        ("eth-acl-type", Matches(eth=EthMatch(ethertype=0x888E), mud=MudMatch(local_networks=True))),
        ("mixed-eth-ipv4-acl-type", Matches(eth=EthMatch(ethertype=0x86DD), tcp=TcpMatch())),
        ("mixed-eth-ipv4-ipv6-acl-type", Matches(eth=ARP, ipv4=IpMatch(4))),
    ],
)
def test_compiler_refuses_contradictory_models(acl_type: str | None, matches: Matches) -> None:
    # Models built without the validator (tests, tools) reach the compiler too: it must not widen them either.
    mud = model_file(from_device=(Acl("a", acl_type, (Ace("bad", matches, Forwarding.ACCEPT),)),))
    ctx = NetworkContext(local_networks=("10.0.0.0/8",))
    with pytest.raises(CompileError) as err:
        compile_profile(mud, ctx, 7)
    assert err.value.reason == "conflicting-match" and err.value.path == "from-device/a/bad"
