"""DHCP snooping for the IP source guard: a server's ACK on a trusted port binds the leased address to its client
before the client uses it, and wins over another device's first-come claim (table simulator + the frame parser)."""

from __future__ import annotations

import math
from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (
    DHCP6_Reply,
    DHCP6OptIA_NA,
    DHCP6OptIA_TA,
    DHCP6OptIAAddress,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from mud_ryu.guard.bindings import AddressBindings
from mud_ryu.guard.dhcp_lease import Lease, scan_ack, scan_reply6
from mud_ryu.settings import DefaultPolicy
from tests.enforcer_lab import BULB, BULB2, DPID, IPS, LAPTOP, NOW, PEER, PEER_MAC, PEER_PORT, URL, Lab, alerts
from tests.mudfiles import ip_mud_file
from tests.packets import Packet

SERVER, SERVER_MAC, SERVER_PORT = "10.0.0.100", "02:00:00:00:00:64", 4
LEASED = "10.0.0.50"


GATEWAY = "10.0.0.254"
V6 = "2001:db8::50"


def _ack(client: str, address: str, msg_type: str = "ack", sport: int = 67, extra: tuple[object, ...] = ()) -> bytes:
    chaddr = bytes.fromhex(client.replace(":", ""))
    options = DHCP(options=[("message-type", msg_type), *extra, "end"])
    return bytes(Ether(src=SERVER_MAC, dst=client) / IP(src=SERVER, dst=address) / UDP(sport=sport, dport=68)
                 / BOOTP(op=2, yiaddr=address, chaddr=chaddr) / options)  # fmt: skip


def test_the_parser_reads_acks_only() -> None:
    assert scan_ack(_ack(BULB, LEASED)) == Lease(BULB, LEASED, 3600.0, (), SERVER)  # no option 51: an hour
    assert scan_ack(_ack(BULB, LEASED, "offer")) is None
    assert scan_ack(_ack(BULB, LEASED, sport=1067)) is None
    assert scan_ack(_ack(BULB, "0.0.0.0")) is None
    assert scan_ack(_ack(BULB, LEASED)[:-20]) is None  # options cut short: no message type, nothing read
    assert scan_ack(b"\xff" * 40) is None


def test_the_parser_reads_the_lease_time_and_the_routers() -> None:
    ack = _ack(BULB, LEASED, extra=(("lease_time", 7200), ("router", GATEWAY, "10.0.0.253")))
    assert scan_ack(ack) == Lease(BULB, LEASED, 7200.0, (GATEWAY, "10.0.0.253"), SERVER)
    forever = _ack(BULB, LEASED, extra=(("lease_time", 0xFFFFFFFF),))
    assert scan_ack(forever) == Lease(BULB, LEASED, math.inf, (), SERVER)


def _reply6(client: str, *ias: object, dst: str | None = None) -> bytes:
    reply = DHCP6_Reply(trid=7) / DHCP6OptServerId()
    for ia in ias:
        reply = reply / ia
    return bytes(Ether(src=SERVER_MAC, dst=dst or client) / IPv6(src="fe80::64", dst="fe80::1")
                 / UDP(sport=547, dport=546) / reply)  # fmt: skip


def _ia_na(*addresses: tuple[str, int], status: int | None = None) -> DHCP6OptIA_NA:
    opts: list[object] = [DHCP6OptIAAddress(addr=a, preflft=v, validlft=v) for a, v in addresses]
    if status is not None:
        opts.append(DHCP6OptStatusCode(statuscode=status))
    return DHCP6OptIA_NA(iaid=1, T1=100, T2=160, ianaopts=opts)


def test_the_dhcpv6_parser_reads_the_addresses_a_reply_grants() -> None:
    reply = _reply6(BULB, _ia_na((V6, 600), ("2001:db8::51", 0)),
                    DHCP6OptIA_TA(iaid=2, iataopts=[DHCP6OptIAAddress(addr="2001:db8::52", validlft=0xFFFFFFFF)]))
    # the withdrawn address (valid lifetime 0) is not leased; an infinite lifetime is
    assert scan_reply6(reply) == (Lease(BULB, V6, 600.0), Lease(BULB, "2001:db8::52", math.inf))
    assert scan_reply6(_reply6(BULB, _ia_na((V6, 600), status=2))) == ()  # NoAddrsAvail: nothing leased
    assert scan_reply6(_reply6(BULB, _ia_na((V6, 600)), DHCP6OptStatusCode(statuscode=2))) == ()  # ... nor here
    assert scan_reply6(_reply6(BULB, _ia_na((V6, 600)), dst="33:33:00:01:00:02")) == ()  # no client named
    assert scan_reply6(_reply6(BULB, _ia_na((V6, 600)))[:-10]) == ()  # cut short
    assert scan_reply6(_ack(BULB, LEASED)) == ()
    many = _reply6(BULB, _ia_na(*((f"2001:db8::{i:x}", 60) for i in range(1, 40))))
    assert len(scan_reply6(many)) == 8  # one Reply binds at most the source guard's cap per device


def _lab(tmp_path: Path) -> Lab:
    servers = frozenset({(DPID, SERVER_PORT)})
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, dhcp_servers=(SERVER,), server_ports=servers)
    lab.connect()
    lab.announce(BULB, 1, URL, bind=False)
    lab.resolve(URL, ip_mud_file(URL))
    return lab


def _out(lab: Lab, mac: str, port: int, src: str) -> bool:
    return lab.sim.is_output(Packet.tcp(port, mac, PEER_MAC, src, PEER, 40000, 443), PEER_PORT)


def test_an_ack_on_the_server_port_binds_before_first_use(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert not _out(lab, BULB, 1, LEASED)
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED), NOW))
    assert _out(lab, BULB, 1, LEASED)  # no held first frame


def test_an_ack_from_an_access_port_binds_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert lab.enforcer.lease_seen(DPID, 3, Lease(BULB, LEASED), NOW) == []
    assert not _out(lab, BULB, 1, LEASED)


def test_a_leased_address_cannot_be_claimed_by_another_device(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED), NOW))
    assert alerts(lab.bind(BULB2, 2, LEASED)) == ["address-refused"]
    assert not _out(lab, BULB2, 2, LEASED)


def test_a_lease_wins_over_an_earlier_claim(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.resolve(URL, ip_mud_file(URL))
    lab.bind(BULB2, 2, LEASED)  # bulb2 used the address before the server leased it to bulb
    assert _out(lab, BULB2, 2, LEASED)
    effects = lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED), NOW))
    assert alerts(effects) == ["address-reassigned"]
    assert _out(lab, BULB, 1, LEASED) and not _out(lab, BULB2, 2, LEASED)


def test_an_unmanaged_clients_lease_is_protected_too(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    laptop = "02:00:00:00:00:03"
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(laptop, IPS[laptop]), NOW))
    assert alerts(lab.bind(BULB, 1, IPS[laptop])) == ["address-refused"]


def test_a_dhcpv6_reply_on_the_server_port_binds_the_address(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    reply = Packet.udp(SERVER_PORT, SERVER_MAC, BULB, "fe80::64", "fe80::1", 547, 546)
    assert lab.sim.process(reply).to_controller  # the server port's replies are copied to the controller ...
    assert not lab.sim.process(Packet.udp(3, "02:00:00:00:00:03", BULB, "fe80::3", "fe80::1", 547, 546)).outputs
    for lease in scan_reply6(_reply6(BULB, _ia_na((V6, 600)))):
        lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, lease, NOW))
    assert V6 in lab.enforcer.bindings.of(BULB)  # ... and bind what they lease
    assert alerts(lab.bind(BULB2, 2, V6)) == ["address-refused"]


def test_a_lease_that_is_not_renewed_ends(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED, 100.0), NOW))
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(LAPTOP, IPS[LAPTOP], 100.0), NOW))
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED, 100.0), NOW + 60))  # renewed
    assert lab.apply(lab.enforcer.lease_expire(NOW + 99)) == []
    lab.apply(lab.enforcer.lease_expire(NOW + 101))
    assert _out(lab, BULB, 1, LEASED)  # renewed: bound until NOW + 160
    assert lab.enforcer.bindings.holder(IPS[LAPTOP]) is None  # the laptop's lease ran out
    assert alerts(lab.bind(BULB2, 2, IPS[LAPTOP])) == []  # free again, first come
    lab.apply(lab.enforcer.lease_expire(NOW + 161))
    assert not _out(lab, BULB, 1, LEASED)  # its binding flows went with the lease
    assert alerts(lab.bind(BULB, 1, LEASED)) == []  # still in use: claimed again


def test_a_router_named_by_the_server_cannot_be_claimed(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.resolve(URL, ip_mud_file(URL))
    lab.bind(BULB2, 2, GATEWAY)  # before any ACK, the gateway's address is only first come
    effects = lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED, 600.0, (GATEWAY,)), NOW))
    assert alerts(effects) == ["address-reassigned"]  # the squatter loses it ...
    assert not _out(lab, BULB2, 2, GATEWAY)
    assert alerts(lab.bind(BULB, 1, GATEWAY)) == ["address-refused"]  # ... and no one may claim it
    lab.apply(lab.enforcer.lease_expire(NOW + 601))
    assert alerts(lab.bind(BULB, 1, GATEWAY)) == []  # as long as the lease that named it


def test_a_protected_address_is_neither_claimed_nor_sent_from_an_access_port(tmp_path: Path) -> None:
    servers = frozenset({(DPID, SERVER_PORT)})
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, dhcp_servers=(SERVER,), server_ports=servers,
              protected_addresses=(GATEWAY,))  # fmt: skip
    lab.connect()
    lab.announce(BULB, 1, URL)
    assert alerts(lab.bind(BULB, 1, GATEWAY)) == ["address-refused"]
    spoof = Packet.tcp(3, LAPTOP, PEER_MAC, GATEWAY, PEER, 40000, 443)
    assert not lab.sim.process(spoof).outputs
    assert lab.sim.is_output(Packet.tcp(3, LAPTOP, PEER_MAC, IPS[LAPTOP], PEER, 40000, 443), PEER_PORT)  # control


def test_leases_survive_a_restart_and_ended_ones_do_not(tmp_path: Path) -> None:
    servers = frozenset({(DPID, SERVER_PORT)})
    options: dict[str, object] = {"dhcp_servers": (SERVER,), "server_ports": servers, "persist_leases": True}
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, **options)
    lab.connect()
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(LAPTOP, IPS[LAPTOP], 3600.0), NOW))
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease("02:00:00:00:00:77", "10.0.0.77", 10.0), NOW))
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease("02:00:00:00:00:78", "10.0.0.78"), NOW))  # infinite
    lab.enforcer.save_leases(NOW, force=True)
    assert lab.lease_store is not None
    lab.lease_store.close()
    lab.store.close()
    later = Lab(tmp_path / "state", DefaultPolicy.ALLOW, **options)  # restarted 60 s later: the 10 s lease ended
    later.enforcer.bindings.expire(NOW + 60)
    assert later.enforcer.bindings.holder(IPS[LAPTOP]) == LAPTOP
    assert later.enforcer.bindings.holder("10.0.0.78") == "02:00:00:00:00:78"
    later.connect()
    later.announce(BULB, 1, URL, bind=False)
    assert alerts(later.bind(BULB, 1, IPS[LAPTOP])) == ["address-refused"]
    assert alerts(later.bind(BULB, 1, "10.0.0.77")) == []


def test_renewals_do_not_grow_the_expiry_queue_without_bound() -> None:
    table = AddressBindings()
    for i in range(10_000):
        table.assign(BULB, LEASED, NOW + 100 + i)
    assert len(table._due) <= 4 + 4 * 1 + 64
    assert table.expire(NOW + 10_000) == []
    assert table.expire(NOW + 10_100) == [(BULB, LEASED)]


def test_a_client_gets_no_more_leases_than_a_device_may_claim_addresses(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    results = [alerts(lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, f"2001:db8::{i + 1:x}",
                                                                                    600.0), NOW))) for i in range(20)]
    assert results.count(["lease-refused"]) == 12 and len(lab.enforcer.bindings.of(BULB)) == 8


def test_an_ack_from_a_server_that_is_not_configured_binds_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    rogue = Lease(BULB, LEASED, 600.0, (GATEWAY,), "10.0.0.66")  # forged beyond an uplink, say
    assert alerts(lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, rogue, NOW))) == ["lease-refused"]
    assert lab.enforcer.bindings.holder(LEASED) is None and alerts(lab.bind(BULB, 1, GATEWAY)) == []


def test_a_port_flap_does_not_hand_a_running_lease_to_another_device(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED, 86400.0), NOW))
    lab.apply(lab.enforcer.port_down(DPID, 1, NOW))
    assert alerts(lab.bind(BULB2, 2, LEASED)) == ["address-refused"]
    lab.apply(lab.enforcer.port_up(DPID, 1))
    lab.announce(BULB, 1, URL, bind=False)
    assert alerts(lab.bind(BULB, 1, LEASED)) == []


def test_learned_routers_survive_a_restart(tmp_path: Path) -> None:
    servers = frozenset({(DPID, SERVER_PORT)})
    options: dict[str, object] = {"dhcp_servers": (SERVER,), "server_ports": servers, "persist_leases": True}
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, **options)
    lab.connect()
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(LAPTOP, IPS[LAPTOP], math.inf, (GATEWAY,)), NOW))
    lab.enforcer.save_leases(NOW, force=True)
    assert lab.lease_store is not None
    lab.lease_store.close()
    lab.store.close()
    later = Lab(tmp_path / "state", DefaultPolicy.ALLOW, **options)
    later.connect()
    later.announce(BULB, 1, URL, bind=False)
    assert alerts(later.bind(BULB, 1, GATEWAY)) == ["address-refused"]
    later.enforcer.bindings.expire(NOW + 86401)  # an infinite lease protects its router a day past the last ACK
    assert alerts(later.bind(BULB, 1, GATEWAY)) == []
