"""DHCP snooping for the IP source guard: a server's ACK on a trusted port binds the leased address to its client
before the client uses it, and wins over another device's first-come claim (table simulator + the frame parser)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from mud_ryu.dhcp_lease import Lease, scan_ack
from mud_ryu.settings import DefaultPolicy
from tests.enforcer_lab import BULB, BULB2, DPID, IPS, PEER, PEER_MAC, PEER_PORT, URL, Lab, alerts
from tests.mudfiles import ip_mud_file
from tests.packets import Packet

SERVER, SERVER_MAC, SERVER_PORT = "10.0.0.100", "02:00:00:00:00:64", 4
LEASED = "10.0.0.50"


def _ack(client: str, address: str, msg_type: str = "ack", sport: int = 67) -> bytes:
    chaddr = bytes.fromhex(client.replace(":", ""))
    options = DHCP(options=[("message-type", msg_type), "end"])
    return bytes(Ether(src=SERVER_MAC, dst=client) / IP(src=SERVER, dst=address) / UDP(sport=sport, dport=68)
                 / BOOTP(op=2, yiaddr=address, chaddr=chaddr) / options)  # fmt: skip


def test_the_parser_reads_acks_only() -> None:
    assert scan_ack(_ack(BULB, LEASED)) == Lease(BULB, LEASED)
    assert scan_ack(_ack(BULB, LEASED, "offer")) is None
    assert scan_ack(_ack(BULB, LEASED, sport=1067)) is None
    assert scan_ack(_ack(BULB, "0.0.0.0")) is None
    assert scan_ack(_ack(BULB, LEASED)[:-20]) is None  # options cut short: no message type, nothing read
    assert scan_ack(b"\xff" * 40) is None


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
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED)))
    assert _out(lab, BULB, 1, LEASED)  # no held first frame


def test_an_ack_from_an_access_port_binds_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert lab.enforcer.lease_seen(DPID, 3, Lease(BULB, LEASED)) == []
    assert not _out(lab, BULB, 1, LEASED)


def test_a_leased_address_cannot_be_claimed_by_another_device(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED)))
    assert alerts(lab.bind(BULB2, 2, LEASED)) == ["address-refused"]
    assert not _out(lab, BULB2, 2, LEASED)


def test_a_lease_wins_over_an_earlier_claim(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.announce(BULB2, 2, URL, bind=False)
    lab.resolve(URL, ip_mud_file(URL))
    lab.bind(BULB2, 2, LEASED)  # bulb2 used the address before the server leased it to bulb
    assert _out(lab, BULB2, 2, LEASED)
    effects = lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(BULB, LEASED)))
    assert alerts(effects) == ["address-reassigned"]
    assert _out(lab, BULB, 1, LEASED) and not _out(lab, BULB2, 2, LEASED)


def test_an_unmanaged_clients_lease_is_protected_too(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    laptop = "02:00:00:00:00:03"
    lab.apply(lab.enforcer.lease_seen(DPID, SERVER_PORT, Lease(laptop, IPS[laptop])))
    assert alerts(lab.bind(BULB, 1, IPS[laptop])) == ["address-refused"]
