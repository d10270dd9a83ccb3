"""What a device or host on the LAN cannot do (README), on the table simulator: each attack of issue 11 tried
against the enforcer's flows, with a control that the legitimate frame still passes.

Lab switch: devices on ports 1 and 2, a laptop on 3, the DHCP/DNS/NTP server on the server port 4, the uplink on 5.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mud_ryu.compiler.flowrule import FlowRule, make_match
from mud_ryu.discovery.scan import Announcement, NoUrl
from mud_ryu.dns.frame import scan_dns
from mud_ryu.enforcer.core import FlowUpdate
from mud_ryu.enforcer.state import PacketOut
from mud_ryu.guard.source import claimed_source
from mud_ryu.policy.types import DeviceId
from mud_ryu.settings import DefaultPolicy
from tests import dns_frames as dns
from tests.enforcer_lab import BULB, BULB2, DPID, IPS, LAPTOP, NOW, PEER, PEER_MAC, PEER_PORT, URL, Lab, alerts
from tests.mudfiles import ip_mud_file
from tests.packets import Packet

SERVER, SERVER_MAC, SERVER_PORT = "10.0.0.100", "02:00:00:00:00:64", 4
NEW_MAC = "02:00:00:00:00:99"
BCAST = "ff:ff:ff:ff:ff:ff"


def _lab(tmp_path: Path, **options: object) -> Lab:
    settings: dict[str, object] = {
        "dns_servers": (SERVER,),
        "ntp_servers": (SERVER,),
        "dhcp_servers": (SERVER,),
        "server_ports": frozenset({(DPID, SERVER_PORT)}),
    }
    settings.update(options)
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, **settings)
    lab.connect()
    return lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    running = _lab(tmp_path)
    running.announce(BULB, 1, URL)
    running.resolve(URL, ip_mud_file(URL))
    yield running
    running.store.close()


def _reaches(lab: Lab, pkt: Packet, port: int) -> bool:
    return lab.sim.is_output(pkt, port)


# ---- 2. spoofed server addresses
def test_only_the_server_port_may_claim_the_ntp_servers_address(lab: Lab) -> None:
    spoofed = Packet.udp(3, LAPTOP, BULB, SERVER, IPS[BULB], 123, 9999)
    assert not _reaches(lab, spoofed, 1)  # the RFC 8520 NTP default no longer opens every UDP port to a spoofer
    assert not _reaches(lab, Packet.udp(2, BULB2, BULB, SERVER, IPS[BULB], 53, 9999), 1)
    real = Packet.udp(SERVER_PORT, SERVER_MAC, BULB, SERVER, IPS[BULB], 123, 9999)
    assert _reaches(lab, real, 1)  # control: the server itself, from its port


def test_a_managed_device_cannot_claim_a_server_address(lab: Lab) -> None:
    assert not _reaches(lab, Packet.udp(1, BULB, PEER_MAC, SERVER, PEER, 123, 123), PEER_PORT)


def test_without_trusted_ports_unmanaged_hosts_stay_trusted_and_devices_do_not(tmp_path: Path) -> None:
    lab = _lab(tmp_path, server_ports=frozenset(), uplink_ports=frozenset())
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    assert _reaches(lab, Packet.udp(3, LAPTOP, BULB, SERVER, IPS[BULB], 123, 9999), 1)  # cannot tell: as before
    assert not _reaches(lab, Packet.udp(1, BULB, PEER_MAC, SERVER, PEER, 123, 123), PEER_PORT)


# ---- 4. quarantine is quarantine; rogue DHCP and RA
def test_rogue_dhcp_offer_and_router_advertisement_from_an_access_port_are_dropped(lab: Lab) -> None:
    assert not _reaches(lab, Packet.udp(3, LAPTOP, BULB, IPS[LAPTOP], IPS[BULB], 67, 68), 1)
    assert not _reaches(lab, Packet.udp(3, LAPTOP, BCAST, IPS[LAPTOP], "255.255.255.255", 67, 68), 1)
    ra = Packet.icmp(3, LAPTOP, "33:33:00:00:00:01", "fe80::3", "ff02::1", 134)
    assert not lab.sim.process(ra).outputs
    assert _reaches(lab, Packet.udp(SERVER_PORT, SERVER_MAC, BULB, SERVER, IPS[BULB], 67, 68), 1)  # control
    assert _reaches(lab, Packet.icmp(SERVER_PORT, SERVER_MAC, "33:33:00:00:00:01", "fe80::64", "ff02::1", 134), 1)


def test_a_quarantined_device_has_no_udp_channel_to_the_internet(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB, 1, URL)  # quarantined while its file is fetched
    assert not _reaches(lab, Packet.udp(1, BULB, PEER_MAC, IPS[BULB], PEER, 68, 67), PEER_PORT)
    assert not _reaches(lab, Packet.udp(PEER_PORT, PEER_MAC, BULB, PEER, IPS[BULB], 67, 68), 1)
    v6 = Packet.udp(1, BULB, PEER_MAC, "fe80::1", "2001:db8::1", 546, 547)
    assert not _reaches(lab, v6, PEER_PORT)
    # controls: its lease, over IPv4 and IPv6, and the local DNS default
    assert _reaches(lab, Packet.udp(1, BULB, BCAST, "0.0.0.0", "255.255.255.255", 68, 67), SERVER_PORT)
    assert _reaches(lab, Packet.udp(1, BULB, SERVER_MAC, IPS[BULB], SERVER, 68, 67), SERVER_PORT)  # a renewal
    assert _reaches(lab, Packet.udp(SERVER_PORT, SERVER_MAC, BULB, SERVER, IPS[BULB], 67, 68), 1)
    assert _reaches(lab, Packet.udp(1, BULB, "33:33:00:01:00:02", "fe80::1", "ff02::1:2", 546, 547), SERVER_PORT)
    assert _reaches(lab, Packet.udp(SERVER_PORT, SERVER_MAC, BULB, "fe80::64", "fe80::1", 547, 546), 1)
    assert _reaches(lab, Packet.udp(1, BULB, SERVER_MAC, IPS[BULB], SERVER, 40000, 53), SERVER_PORT)


# ---- 3. forged DNS answers
def test_a_dns_answer_from_an_access_port_binds_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    name = "api.vendor.example"
    lab.enforcer.dns.watch(URL, frozenset({name}))
    query = dns.query_frame(dns.query(name), client_ip=IPS[BULB], resolver_ip=SERVER, mac=BULB)
    lab.apply(lab.enforcer.dns_seen(scan_dns(query), NOW, ingress=(DPID, 1)))
    forged = dns.answer_frame(dns.response(name, [dns.a(name, IPS[BULB2], 86400)]), client_ip=IPS[BULB],
                              resolver_ip=SERVER, mac=BULB)  # fmt: skip
    assert lab.enforcer.dns_seen(scan_dns(forged), NOW, forged, ingress=(DPID, 2)) == []
    assert lab.enforcer.dns.counters()["wrong-port"] == 1
    assert lab.enforcer.dns.current().get(name, ()) == ()
    lab.enforcer.dns_seen(scan_dns(forged), NOW, forged, ingress=(DPID, SERVER_PORT))
    assert lab.enforcer.dns.current().get(name) == (IPS[BULB2],)  # control: the same answer from the server's port


# ---- 5. a new MAC does not leave the policy behind
def test_a_new_mac_on_a_device_port_gets_bootstrap_only(lab: Lab) -> None:
    first = lab.sim.process(Packet.tcp(1, NEW_MAC, PEER_MAC, "10.0.0.9", PEER, 40000, 22))
    assert first.to_controller and not first.outputs  # its very first frame, before the controller acted
    assert _reaches(lab, Packet.udp(1, NEW_MAC, BCAST, "0.0.0.0", "255.255.255.255", 68, 67), SERVER_PORT)
    effects = lab.apply(lab.enforcer.learned(DPID, 1, NEW_MAC, NOW))
    assert "new-mac-on-device-port" in alerts(effects)
    assert lab.enforcer.devices[NEW_MAC].state == "quarantined"
    assert not _reaches(lab, Packet.tcp(1, NEW_MAC, PEER_MAC, "10.0.0.9", PEER, 40000, 22), PEER_PORT)
    assert _reaches(lab, Packet.udp(1, NEW_MAC, BCAST, "0.0.0.0", "255.255.255.255", 68, 67), SERVER_PORT)
    # it announces a URL of its own: an ordinary MUD device from then on
    lab.announce(NEW_MAC, 1, URL)
    assert lab.enforcer.devices[NEW_MAC].url == URL


def test_a_new_mac_on_a_shared_port_is_an_ordinary_host(tmp_path: Path) -> None:
    lab = _lab(tmp_path, shared_ports=frozenset({(DPID, 1)}))
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    effects = lab.apply(lab.enforcer.learned(DPID, 1, NEW_MAC, NOW))
    assert alerts(effects) == [] and NEW_MAC not in lab.enforcer.devices
    assert _reaches(lab, Packet.tcp(1, NEW_MAC, PEER_MAC, "10.0.0.9", PEER, 40000, 22), PEER_PORT)


def test_a_host_learned_before_the_device_announced_loses_its_access(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.apply(lab.enforcer.learned(DPID, 2, NEW_MAC, NOW))  # a second MAC, used before announcing
    assert _reaches(lab, Packet.tcp(2, NEW_MAC, PEER_MAC, "10.0.0.9", PEER, 40000, 22), PEER_PORT)
    effects = lab.announce(BULB2, 2, URL)
    assert "new-mac-on-device-port" in alerts(effects)
    assert not _reaches(lab, Packet.tcp(2, NEW_MAC, PEER_MAC, "10.0.0.9", PEER, 40000, 22), PEER_PORT)


# ---- 7. taking over a device's place
def test_after_a_release_with_the_port_up_another_port_cannot_take_the_identity(lab: Lab) -> None:
    release = NoUrl("dhcpv4", BULB, None, msg_type=7, chaddr=BULB)
    lab.apply(lab.enforcer.discovered(DPID, 1, release, NOW))
    effects = lab.announce(BULB, 2, URL)
    assert alerts(effects) == ["spoofed-announcement"]
    assert lab.enforcer.devices[BULB].port == 1
    lab.apply(lab.enforcer.port_down(DPID, 1, NOW))  # control: once its port is down, it may move
    assert alerts(lab.announce(BULB, 2, URL)) == []
    assert lab.enforcer.devices[BULB].port == 2


def test_a_disconnected_switch_keeps_its_devices_places(lab: Lab) -> None:
    lab.enforcer.switch_down(DPID)
    lab.enforcer.switch_up(2, [1, 2], metered=True)
    ann = Announcement("dhcpv4", BULB, None, URL, msg_type=3, chaddr=BULB)
    effects = lab.enforcer.discovered(2, 1, ann, NOW)
    assert alerts(effects) == ["spoofed-announcement"]
    assert lab.enforcer.devices[BULB].dpid == DPID


# ---- 8. relayed DHCPv6 from an access port
def test_a_relay_forward_from_an_access_port_is_no_announcement(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    ann = Announcement("dhcpv6", NEW_MAC, None, URL, msg_type=1, duid="0001", relay_hops=1)
    effects = lab.apply(lab.enforcer.discovered(DPID, 2, ann, NOW))
    assert alerts(effects) == ["malformed-announcement"] and NEW_MAC not in lab.enforcer.devices


# ---- 6. flows the switch refused
def test_refused_flows_are_not_confirmed_and_are_resent_after_a_backoff(lab: Lab) -> None:
    mine: list[FlowRule] = sorted(lab.enforcer.switches[DPID].owners[("device", BULB)], key=repr)
    effects = lab.enforcer.flows_refused(DPID, mine[:1], [BULB], "error type=12 code=1", NOW)
    assert alerts(effects) == ["flow-refused"]
    assert lab.enforcer.retry_refused(NOW + 0.5) == []
    (update,) = [e for e in lab.enforcer.retry_refused(NOW + 1.0) if isinstance(e, FlowUpdate)]
    assert update.adds == tuple(mine[:1]) and update.confirms == (BULB,) and update.deletes == ()  # what was refused
    assert lab.enforcer.retry_refused(NOW + 2.0) == []  # nothing left to resend
    again = lab.enforcer.flows_refused(DPID, mine[:1], [BULB], "error", NOW + 3)
    assert "retrying in 2 s" in str(again)  # refused again: the delay doubles


# ---- 1. broadcast / multicast framing
def _mdns_file(url: str) -> bytes:
    """TCP 443 out to the peer (ip_mud_file) plus mDNS: UDP 5353 to 224.0.0.251 out, UDP 5353 from anyone in."""
    tree = json.loads(ip_mud_file(url))
    acls = tree["ietf-access-control-list:acls"]["acl"]
    mdns_out = {"name": "mdns-out", "actions": {"forwarding": "accept"},
                "matches": {"ipv4": {"protocol": 17, "destination-ipv4-network": "224.0.0.251/32"},
                            "udp": {"destination-port": {"operator": "eq", "port": 5353}}}}  # fmt: skip
    port_5353 = {"destination-port": {"operator": "eq", "port": 5353}}
    mdns_in = {"name": "mdns-in", "actions": {"forwarding": "accept"},
               "matches": {"ipv4": {"protocol": 17}, "udp": port_5353}}  # fmt: skip
    acls[0]["aces"]["ace"].append(mdns_out)
    acls[1]["aces"]["ace"].append(mdns_in)
    return json.dumps(tree).encode()


def test_a_broadcast_frame_to_a_devices_ip_does_not_reach_it(lab: Lab) -> None:
    framed = Packet.udp(3, LAPTOP, BCAST, IPS[LAPTOP], IPS[BULB], 40000, 9999)
    verdict = lab.sim.process(framed)
    assert 1 not in verdict.outputs and 2 in verdict.outputs  # no MUD device behind port 2: an open port
    multicast = Packet.udp(3, LAPTOP, "01:00:5e:00:00:01", IPS[LAPTOP], IPS[BULB], 40000, 9999)
    assert not _reaches(lab, multicast, 1)
    unknown_unicast = Packet.udp(3, LAPTOP, "02:00:00:00:00:77", IPS[LAPTOP], IPS[BULB], 40000, 9999)
    assert not _reaches(lab, unknown_unicast, 1)
    # controls: bootstrap broadcasts still reach it
    assert _reaches(lab, Packet.arp(3, LAPTOP, BCAST, IPS[LAPTOP], IPS[BULB]), 1)
    assert _reaches(lab, Packet.udp(SERVER_PORT, SERVER_MAC, BCAST, SERVER, "255.255.255.255", 67, 68), 1)
    assert _reaches(lab, Packet.icmp(3, LAPTOP, "33:33:ff:00:00:01", "fe80::3", "ff02::1:ff00:1", 135), 1)


def test_group_allowances_never_drop_a_peer_named_by_metadata() -> None:
    from mud_ryu.compiler.pipeline import DST_MANAGED_BIT, DST_PROFILE_MASK, SRC_MFG_MASK, SRC_MFG_SHIFT
    from mud_ryu.guard.floods import group_allowances

    own = (2 << 16) | DST_MANAGED_BIT
    same_mfg = FlowRule("to_device", 50000, make_match(metadata=(own | (7 << SRC_MFG_SHIFT), DST_PROFILE_MASK
                        | DST_MANAGED_BIT | SRC_MFG_MASK), eth_type=0x0800, ip_proto=17, udp_dst=8008), 1,
                        goto="forward")  # fmt: skip
    anyone = FlowRule("to_device", 49996, make_match(metadata=(own, DST_PROFILE_MASK | DST_MANAGED_BIT),
                      eth_type=0x0800, ip_proto=17, udp_dst=5353), 1, goto="forward")  # fmt: skip
    assert group_allowances([same_mfg, anyone]) == ((("eth_type", 0x0800), ("ip_proto", 17), ("udp_dst", 5353)),)


def test_group_traffic_its_policy_allows_reaches_the_device(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    mdns_url = "https://mud.test/speaker.json"
    lab.announce(BULB, 1, mdns_url)
    lab.resolve(mdns_url, _mdns_file(mdns_url))
    lab.announce(BULB2, 2, URL)
    lab.resolve(URL, ip_mud_file(URL))
    mdns = Packet.udp(3, LAPTOP, "01:00:5e:00:00:fb", IPS[LAPTOP], "224.0.0.251", 5353, 5353)
    verdict = lab.sim.process(mdns)
    assert 1 in verdict.outputs and 2 not in verdict.outputs  # the speaker's file allows mDNS, the bulb's does not
    other = Packet.udp(3, LAPTOP, "01:00:5e:00:00:fb", IPS[LAPTOP], "224.0.0.251", 5353, 9999)
    assert 1 not in lab.sim.process(other).outputs
    lab.apply(lab.enforcer.port_down(DPID, 1, NOW))  # the speaker leaves; a host is plugged in there instead
    lab.apply(lab.enforcer.port_up(DPID, 1))
    assert 1 in lab.sim.process(other).outputs  # an open port again


# ---- 2. a managed device sources only its bound addresses (IP source guard)
def test_a_device_cannot_send_from_another_devices_address(lab: Lab) -> None:
    lab.announce(BULB2, 2, URL)  # bulb2 sends from its own address first: bound to it
    lab.resolve(URL, ip_mud_file(URL))
    stolen = Packet.tcp(1, BULB, PEER_MAC, IPS[BULB2], PEER, 40000, 443)
    verdict = lab.sim.process(stolen)
    assert verdict.to_controller and not verdict.outputs  # held at the controller, not forwarded
    effects = lab.apply(lab.enforcer.source_seen(DPID, 1, BULB, IPS[BULB2], NOW, b"frame"))
    assert alerts(effects) == ["address-refused"] and not any(isinstance(e, PacketOut) for e in effects)
    assert not _reaches(lab, stolen, PEER_PORT)
    assert _reaches(lab, Packet.tcp(1, BULB, PEER_MAC, IPS[BULB], PEER, 40000, 443), PEER_PORT)  # control
    assert alerts(lab.apply(lab.enforcer.source_seen(DPID, 1, BULB, SERVER, NOW))) == ["address-refused"]


def test_a_first_frame_from_a_new_address_is_bound_and_put_back(lab: Lab) -> None:
    fresh = Packet.tcp(1, BULB, PEER_MAC, "10.0.0.77", PEER, 40000, 443)
    assert not _reaches(lab, fresh, PEER_PORT)
    effects = lab.apply(lab.enforcer.source_seen(DPID, 1, BULB, "10.0.0.77", NOW, b"frame"))
    (out,) = [e for e in effects if isinstance(e, PacketOut)]
    assert out.resubmit and out.port == 1 and out.data == b"frame"
    assert _reaches(lab, fresh, PEER_PORT)
    # what it sends before it has an address still passes: DHCP from 0.0.0.0, an ARP probe
    assert _reaches(lab, Packet.udp(1, BULB, BCAST, "0.0.0.0", "255.255.255.255", 68, 67), SERVER_PORT)
    assert 3 in lab.sim.process(Packet.arp(1, BULB, BCAST, "0.0.0.0", IPS[BULB])).outputs
    # ARP for an address it does not hold is held too
    assert not lab.sim.process(Packet.arp(1, BULB, BCAST, SERVER, IPS[BULB2])).outputs


def test_bindings_go_with_the_place_and_survive_a_controller_restart(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    ok = Packet.tcp(1, BULB, PEER_MAC, IPS[BULB], PEER, 40000, 443)
    assert _reaches(lab, ok, PEER_PORT)
    restarted = Lab(tmp_path / "state", DefaultPolicy.ALLOW, dns_servers=(SERVER,), ntp_servers=(SERVER,),
                    dhcp_servers=(SERVER,), server_ports=frozenset({(DPID, SERVER_PORT)}))  # fmt: skip
    restarted.sim = lab.sim  # the same switch: a controller restart
    effects = restarted.connect()
    assert not [r for e in effects if isinstance(e, FlowUpdate) for r in e.deletes] and all(
        not e.stale for e in effects if isinstance(e, FlowUpdate)
    )
    assert _reaches(restarted, ok, PEER_PORT) and restarted.enforcer.bindings.of(BULB) == {IPS[BULB]}
    restarted.apply(restarted.enforcer.port_down(DPID, 1, NOW))
    assert restarted.enforcer.bindings.holder(IPS[BULB]) is None  # it left: its address is free again


def test_the_held_frame_parser_reads_the_claimed_source() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import ARP, Ether

    eth = Ether(src=BULB, dst=BCAST)
    assert claimed_source(bytes(eth / IP(src="10.0.0.9", dst="10.0.0.1") / UDP()), False) == (BULB, "10.0.0.9")
    assert claimed_source(bytes(eth / ARP(psrc="10.0.0.8", pdst="10.0.0.1")), False) == (BULB, "10.0.0.8")
    assert claimed_source(bytes(eth / IPv6(src="fe80::9", dst="ff02::1") / UDP()), False) == (BULB, "fe80::9")
    dad = eth / IPv6(src="::", dst="ff02::1:ff00:9") / ICMPv6ND_NS(tgt="fe80::9")
    assert claimed_source(bytes(dad), True) == (BULB, "fe80::9")
    assert claimed_source(bytes(eth / IPv6(src="::", dst="ff02::1") / UDP()), True) is None  # not a DAD probe
    assert claimed_source(b"\x02" * 20, False) is None
    assert claimed_source(bytes(Ether(src="01:00:5e:00:00:01", dst=BCAST) / IP(src="10.0.0.9")), False) is None


# ---- found in review: more ways around it
def test_a_device_port_cannot_take_over_the_routers_mac(lab: Lab) -> None:
    lab.apply(lab.enforcer.learned(DPID, PEER_PORT, PEER_MAC, NOW))  # the router, behind the uplink
    effects = lab.apply(lab.enforcer.learned(DPID, 1, PEER_MAC, NOW))  # bulb's port sends from the router's MAC
    assert alerts(effects) == ["spoofed-source"] and PEER_MAC not in lab.enforcer.devices
    assert lab.enforcer.switches[DPID].hosts[PEER_MAC] == PEER_PORT
    assert _reaches(lab, Packet.tcp(1, BULB, PEER_MAC, IPS[BULB], PEER, 40000, 443), PEER_PORT)  # still there
    ann = Announcement("dhcpv4", PEER_MAC, None, URL, msg_type=3, chaddr=PEER_MAC)
    assert alerts(lab.enforcer.discovered(DPID, 1, ann, NOW)) == ["spoofed-announcement"]


def test_a_released_device_is_not_an_unmanaged_host_when_it_sends_again(lab: Lab) -> None:
    lab.apply(lab.enforcer.discovered(DPID, 1, NoUrl("dhcpv4", BULB, None, msg_type=7, chaddr=BULB), NOW))
    lab.apply(lab.enforcer.learned(DPID, 1, BULB, NOW))  # it goes on sending without announcing
    assert lab.enforcer.devices[BULB].state == "quarantined"
    assert not _reaches(lab, Packet.tcp(1, BULB, PEER_MAC, IPS[BULB], PEER, 40000, 22), PEER_PORT)
    lab.apply(lab.enforcer.port_down(DPID, 1, NOW))  # a link flap: the same
    lab.apply(lab.enforcer.port_up(DPID, 1))
    lab.apply(lab.enforcer.learned(DPID, 1, BULB, NOW))
    assert lab.enforcer.devices[BULB].state == "quarantined"


def test_no_arp_claim_of_a_servers_address_from_an_access_port(lab: Lab) -> None:
    assert not lab.sim.process(Packet.arp(3, LAPTOP, BCAST, SERVER, IPS[BULB], op=2)).outputs
    assert 1 in lab.sim.process(Packet.arp(SERVER_PORT, SERVER_MAC, BCAST, SERVER, IPS[BULB], op=2)).outputs


def test_bootstrap_only_does_not_quarantine_the_servers(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", DefaultPolicy.BOOTSTRAP_ONLY, server_ports=frozenset({(DPID, SERVER_PORT)}))
    lab.connect()
    lab.apply(lab.enforcer.learned(DPID, SERVER_PORT, SERVER_MAC, NOW))
    assert SERVER_MAC not in lab.enforcer.devices and lab.enforcer.switches[DPID].hosts[SERVER_MAC] == SERVER_PORT


def test_without_trusted_ports_a_shared_port_is_not_trusted(tmp_path: Path) -> None:
    lab = _lab(tmp_path, server_ports=frozenset(), uplink_ports=frozenset(), shared_ports=frozenset({(DPID, 1)}))
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.apply(lab.enforcer.learned(DPID, 1, NEW_MAC, NOW))  # a host beside the device on the access point
    assert not _reaches(lab, Packet.udp(1, NEW_MAC, BULB, SERVER, IPS[BULB], 123, 9999), 1)


def test_a_mac_flood_on_a_device_port_is_bounded(lab: Lab) -> None:
    codes = []
    for i in range(10):
        codes += alerts(lab.apply(lab.enforcer.learned(DPID, 1, f"02:00:00:00:aa:{i:02x}", NOW)))
    assert codes.count("new-mac-on-device-port") == 4 and codes.count("new-mac-flood") == 6
    assert len(lab.enforcer.state.devices_at(DPID, 1)) == 5  # bulb and four recorded newcomers
    flooded = Packet.tcp(1, "02:00:00:00:aa:09", PEER_MAC, "10.0.0.9", PEER, 40000, 22)
    assert not _reaches(lab, flooded, PEER_PORT)  # unrecorded, still bootstrap only at the switch


def test_arp_and_neighbour_advertisements_speak_only_for_the_devices_own_addresses(lab: Lab) -> None:
    own_arp = Packet(1, BULB, BCAST, 0x0806, ip_src=IPS[BULB], ip_dst=SERVER, arp_op=2)
    assert 3 in lab.sim.process(own_arp).outputs  # control
    other_sha = Packet(1, BULB, BCAST, 0x0806, ip_src=IPS[BULB], ip_dst=SERVER, arp_op=2, arp_sha=PEER_MAC)
    assert not lab.sim.process(other_sha).outputs  # held: a sender MAC that is not its own
    first = lab.enforcer.source_seen(DPID, 1, BULB, IPS[BULB], NOW, b"arp frame")
    again = lab.enforcer.source_seen(DPID, 1, BULB, IPS[BULB], NOW, b"arp frame")  # held again after being put back
    assert any(isinstance(e, PacketOut) for e in first) and not any(isinstance(e, PacketOut) for e in again)
    lab.bind(BULB, 1, "fe80::1")
    na = Packet(1, BULB, "33:33:00:00:00:01", 0x86DD, ip_src="fe80::1", ip_dst="ff02::1", ip_proto=58,
                icmp_type=136, icmp_code=0, nd_target="fe80::1")  # fmt: skip
    assert 3 in lab.sim.process(na).outputs  # control: its own address
    poison = Packet(1, BULB, "33:33:00:00:00:01", 0x86DD, ip_src="fe80::1", ip_dst="ff02::1", ip_proto=58,
                    icmp_type=136, icmp_code=0, nd_target="fe80::64")  # fmt: skip
    assert not lab.sim.process(poison).outputs  # the router's (or anyone's) address: dropped


def test_no_neighbour_advertisement_for_a_servers_ipv6_address_from_an_access_port(tmp_path: Path) -> None:
    lab = _lab(tmp_path, dns_servers=(SERVER, "fd00::53"))
    na = Packet(3, LAPTOP, "33:33:00:00:00:01", 0x86DD, ip_src="fe80::3", ip_dst="ff02::1", ip_proto=58,
                icmp_type=136, icmp_code=0, nd_target="fd00::53")  # fmt: skip
    assert not lab.sim.process(na).outputs
    real = Packet(SERVER_PORT, SERVER_MAC, "33:33:00:00:00:01", 0x86DD, ip_src="fe80::64", ip_dst="ff02::1",
                  ip_proto=58, icmp_type=136, icmp_code=0, nd_target="fd00::53")  # fmt: skip
    assert 3 in lab.sim.process(real).outputs


def test_a_device_that_moves_and_sends_without_announcing_is_quarantined_with_its_trust(lab: Lab) -> None:
    lab.apply(lab.enforcer.port_down(DPID, 1, NOW))  # unplugged from port 1 ...
    lab.apply(lab.enforcer.learned(DPID, 2, BULB, NOW))  # ... and plugged into port 2, sending at once
    device = lab.enforcer.devices[BULB]
    assert (device.port, device.state) == (2, "quarantined") and BULB not in lab.enforcer.switches[DPID].hosts
    assert not _reaches(lab, Packet.tcp(2, BULB, PEER_MAC, IPS[BULB], PEER, 40000, 22), PEER_PORT)
    assert lab.trust.record(DeviceId(DPID, 2, BULB)).current_url == URL  # its pin and history came along


def test_a_device_whose_port_is_up_is_not_moved_by_its_mac_elsewhere(lab: Lab) -> None:
    lab.apply(lab.enforcer.discovered(DPID, 1, NoUrl("dhcpv4", BULB, None, msg_type=7, chaddr=BULB), NOW))
    assert alerts(lab.apply(lab.enforcer.learned(DPID, 2, BULB, NOW))) == ["spoofed-source"]
    assert lab.enforcer.devices[BULB].port == 1 and BULB not in lab.enforcer.switches[DPID].hosts
