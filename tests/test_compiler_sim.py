"""End-to-end: compile_switch() output in the OpenFlow table simulator. The question asked is
the one that matters: does this packet from this port get out of that port?"""

from __future__ import annotations

import pytest

from mud_ryu.compiler.compile import compile_switch
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, DeviceSpec, NetworkContext
from mud_ryu.mudfile.model import Ace, Direction, Forwarding, MudMatch
from tests.compiler_helpers import DEV_MAC, acl, eq, mudfile, tcp_ace, udp_ace
from tests.ofsim import FlowTableSim
from tests.packets import ACK, SYN, SYN_ACK, Packet

DEV_PORT, UPLINK = 3, 9
GW_MAC = "00:00:5e:00:53:fe"
DEV_IP, API_IP, OTHER_IP, DNS_IP = "10.0.0.5", "192.0.2.10", "192.0.2.11", "10.0.0.53"


def _switch(*, drop_dns: bool = False) -> FlowTableSim:
    from_dev = [tcp_ace("api-out", dst_dnsname="api.example.com", dst_port=eq(443), initiated=Direction.FROM_DEVICE)]
    if drop_dns:
        from_dev.insert(0, udp_ace("no-dns", 53, forwarding=Forwarding.DROP))
    mud = mudfile(
        from_device=(acl("out", *from_dev),),
        to_device=(
            acl(
                "in",
                tcp_ace("api-in", src_dnsname="api.example.com", src_port=eq(443), initiated=Direction.FROM_DEVICE),
            ),
        ),
    )
    ctx = NetworkContext(dns={"api.example.com": (API_IP,)}, controllers={DNS_CONTROLLER_URN: (DNS_IP,)})
    sim = FlowTableSim(ports=frozenset({DEV_PORT, UPLINK}))
    sim.add_all(compile_switch(mud, DeviceSpec(DEV_MAC, DEV_PORT, UPLINK), ctx))
    return sim


def out_(port: int, ip_src: str, ip_dst: str, sport: int, dport: int, flags: int) -> Packet:
    return Packet.tcp(
        port,
        DEV_MAC if port == DEV_PORT else GW_MAC,
        GW_MAC if port == DEV_PORT else DEV_MAC,
        ip_src,
        ip_dst,
        sport,
        dport,
        flags,
    )


@pytest.mark.parametrize(
    ("pkt", "port", "allowed"),
    [
        (out_(DEV_PORT, DEV_IP, API_IP, 40000, 443, SYN), UPLINK, True),
        (out_(DEV_PORT, DEV_IP, OTHER_IP, 40000, 443, SYN), UPLINK, False),
        (out_(DEV_PORT, DEV_IP, API_IP, 40000, 80, SYN), UPLINK, False),
        (out_(UPLINK, API_IP, DEV_IP, 443, 40000, SYN_ACK), DEV_PORT, True),
        (out_(UPLINK, API_IP, DEV_IP, 443, 40000, ACK), DEV_PORT, True),
        (out_(UPLINK, API_IP, DEV_IP, 443, 40000, SYN), DEV_PORT, False),  # server may not initiate
        (out_(UPLINK, OTHER_IP, DEV_IP, 443, 40000, SYN_ACK), DEV_PORT, False),
        (Packet.udp(DEV_PORT, DEV_MAC, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67), UPLINK, True),
        (Packet.udp(UPLINK, GW_MAC, DEV_MAC, "10.0.0.1", DEV_IP, 67, 68), DEV_PORT, True),
        (Packet.udp(DEV_PORT, DEV_MAC, GW_MAC, DEV_IP, "10.0.0.1", 67, 68), UPLINK, False),  # rogue DHCP server
        (Packet.udp(DEV_PORT, DEV_MAC, GW_MAC, DEV_IP, DNS_IP, 5353, 53), UPLINK, True),  # RFC 8520 default
        (Packet.udp(UPLINK, GW_MAC, DEV_MAC, DNS_IP, DEV_IP, 53, 5353), DEV_PORT, True),
        (Packet.udp(DEV_PORT, DEV_MAC, GW_MAC, DEV_IP, OTHER_IP, 5353, 53), UPLINK, False),
        (Packet.arp(DEV_PORT, DEV_MAC, "ff:ff:ff:ff:ff:ff", DEV_IP, "10.0.0.1"), UPLINK, True),
        (Packet.tcp(UPLINK, DEV_MAC, GW_MAC, DEV_IP, API_IP, 40000, 443, SYN), DEV_PORT, False),  # spoofed MAC
    ],
)
def test_packets(pkt: Packet, port: int, allowed: bool) -> None:
    verdict = _switch().process(pkt)
    assert not verdict.ties
    assert (port in verdict.outputs) is allowed


def test_mud_drop_overrides_dns_default() -> None:
    sim = _switch(drop_dns=True)
    assert not sim.is_output(Packet.udp(DEV_PORT, DEV_MAC, GW_MAC, DEV_IP, DNS_IP, 5353, 53), UPLINK)


def test_unmanaged_hosts_pass_through() -> None:
    sim = _switch()
    pkt = Packet.tcp(UPLINK, GW_MAC, "ff:ff:ff:ff:ff:ff", OTHER_IP, "10.0.0.255", 1, 2, SYN)
    assert sim.is_output(pkt, DEV_PORT)  # broadcast from the uplink reaches the device port


@pytest.mark.parametrize(
    "blocked",
    [
        tcp_ace("no-evil", dst_dnsname="evil.example", dst_port=eq(443), forwarding=Forwarding.DROP),
        tcp_ace("no-rival", dst_port=eq(443), mud=MudMatch(manufacturer="rival.example"), forwarding=Forwarding.DROP),
    ],
    ids=["unresolved-dns-name", "unknown-manufacturer"],
)
def test_drop_ace_with_unknown_peer_fails_closed(blocked: Ace) -> None:
    """A drop ACE whose peer is not known yet must not vanish: a later, broader accept would
    then let the forbidden traffic through. It is enforced for every peer instead."""
    mud = mudfile(from_device=(acl("out", blocked, tcp_ace("any-https", dst_port=eq(443))),))
    sim = FlowTableSim(ports=frozenset({DEV_PORT, UPLINK}))
    rules = compile_switch(mud, DeviceSpec(DEV_MAC, DEV_PORT, UPLINK), NetworkContext())
    sim.add_all(rules)
    assert not sim.is_output(out_(DEV_PORT, DEV_IP, OTHER_IP, 40000, 443, SYN), UPLINK)
    # the accept still governs what the drop does not cover
    allowed_other_port = mudfile(from_device=(acl("out", blocked, tcp_ace("any-80", dst_port=eq(80))),))
    sim2 = FlowTableSim(ports=frozenset({DEV_PORT, UPLINK}))
    sim2.add_all(compile_switch(allowed_other_port, DeviceSpec(DEV_MAC, DEV_PORT, UPLINK), NetworkContext()))
    assert sim2.is_output(out_(DEV_PORT, DEV_IP, OTHER_IP, 40000, 80, SYN), UPLINK)
