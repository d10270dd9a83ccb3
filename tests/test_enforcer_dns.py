"""DNS names live in the enforcer: answers from the configured resolver to a device's own query bind the names
its profile uses; the new address is allowed (only the changed flows are sent), a spoofed answer binds nothing,
and an address leaves the set when its TTL runs out (on the table simulator)."""

from __future__ import annotations

import json
from pathlib import Path

from mud_ryu.compiler.pipeline import CookieKind, parse_cookie
from mud_ryu.dns.frame import scan_dns
from mud_ryu.enforcer.core import FlowUpdate
from mud_ryu.enforcer.state import PacketOut, ResolveNames
from tests import dns_frames as dns
from tests.enforcer_lab import BULB, IPS, NOW, PEER_MAC, PEER_PORT, UPLINK, Lab
from tests.packets import Packet

URL = "https://mud.test/cloudy.json"
NAME = "api.vendor.example"
RESOLVER = "10.0.0.53"


def _cloudy() -> bytes:
    """TCP 443 to api.vendor.example (a dst-dnsname), device-initiated."""
    ace_out = {
        "name": "out",
        "actions": {"forwarding": "accept"},
        "matches": {
            "ipv4": {"protocol": 6, "ietf-acldns:dst-dnsname": NAME},
            "tcp": {"destination-port": {"operator": "eq", "port": 443}, "ietf-mud:direction-initiated": "from-device"},
        },
    }
    ace_in = {
        "name": "back",
        "actions": {"forwarding": "accept"},
        "matches": {
            "ipv4": {"protocol": 6, "ietf-acldns:src-dnsname": NAME},
            "tcp": {"source-port": {"operator": "eq", "port": 443}, "ietf-mud:direction-initiated": "from-device"},
        },
    }
    tree = {"ietf-mud:mud": {"mud-version": 1, "mud-url": URL, "last-update": "2026-01-01T00:00:00+00:00",
                             "cache-validity": 48, "is-supported": True, "systeminfo": "cloudy",
                             "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
                             "to-device-policy": {"access-lists": {"access-list": [{"name": "to"}]}}},
            "ietf-access-control-list:acls": {"acl": [
                {"name": "fr", "type": "ipv4-acl-type", "aces": {"ace": [ace_out]}},
                {"name": "to", "type": "ipv4-acl-type", "aces": {"ace": [ace_in]}}]}}  # fmt: skip
    return json.dumps(tree).encode()


def _lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path / "state", dns_servers=(RESOLVER,))
    lab.connect()
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, _cloudy())
    return lab


def _to(lab: Lab, address: str) -> bool:
    return lab.sim.is_output(Packet.tcp(1, BULB, PEER_MAC, IPS[BULB], address, 40000, 443), PEER_PORT)


def _answer(address: str, ttl: int, *, resolver: str = RESOLVER, txid: int = dns.TXID) -> object:
    body = dns.response(NAME, [dns.a(NAME, address, ttl)], txid=txid)
    return scan_dns(dns.answer_frame(body, client_ip=IPS[BULB], resolver_ip=resolver, mac=BULB))


def _query(txid: int = dns.TXID) -> object:
    return scan_dns(dns.query_frame(dns.query(NAME, txid=txid), client_ip=IPS[BULB], resolver_ip=RESOLVER, mac=BULB))


def test_answer_to_the_devices_query_binds_the_name(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert not _to(lab, "198.51.100.7")  # unknown until the resolver says so: fail closed
    lab.apply(lab.enforcer.dns_seen(_query(), NOW, ingress=UPLINK))
    effects = lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 300), NOW, ingress=UPLINK))
    assert _to(lab, "198.51.100.7") and not _to(lab, "198.51.100.8")
    sent = [r for e in effects if isinstance(e, FlowUpdate) for r in e.adds]
    assert sent and all(parse_cookie(r.cookie).kind == int(CookieKind.ADDRESS_SET) for r in sent)  # only the set
    lab.store.close()


def test_spoofed_and_unsolicited_answers_bind_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert lab.enforcer.dns_seen(_answer("198.51.100.66", 300), NOW, ingress=UPLINK) == []  # no query seen
    lab.apply(lab.enforcer.dns_seen(_query(), NOW, ingress=UPLINK))
    assert (
        lab.enforcer.dns_seen(_answer("198.51.100.66", 300, resolver="192.0.2.99"), NOW, ingress=UPLINK) == []
    )  # not our resolver
    assert (
        lab.enforcer.dns_seen(_answer("198.51.100.66", 300, txid=0x4321), NOW, ingress=UPLINK) == []
    )  # wrong transaction id
    assert not _to(lab, "198.51.100.66")
    lab.store.close()


def test_rotation_is_make_before_break_and_old_addresses_expire(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    lab.apply(lab.enforcer.dns_seen(_query(1), NOW, ingress=UPLINK))
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 60, txid=1), NOW, ingress=UPLINK))
    lab.apply(lab.enforcer.dns_seen(_query(2), NOW + 30, ingress=UPLINK))
    effects = lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.8", 60, txid=2), NOW + 30, ingress=UPLINK))
    assert not [r for e in effects if isinstance(e, FlowUpdate) for r in e.deletes]  # an answer never removes
    assert _to(lab, "198.51.100.7") and _to(lab, "198.51.100.8")  # both while the old TTL runs
    lab.apply(lab.enforcer.dns_expire(NOW + 61))
    assert not _to(lab, "198.51.100.7") and _to(lab, "198.51.100.8")
    lab.apply(lab.enforcer.dns_expire(NOW + 91))
    assert not _to(lab, "198.51.100.8")
    lab.store.close()


def test_queries_are_copied_and_answers_held_until_their_flows_are_in(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    query = Packet.udp(1, BULB, PEER_MAC, IPS[BULB], RESOLVER, 40000, 53)
    answer = Packet.udp(PEER_PORT, PEER_MAC, BULB, RESOLVER, IPS[BULB], 53, 40000)
    assert lab.sim.process(query).to_controller and lab.sim.is_output(query, PEER_PORT)
    held = lab.sim.process(answer)
    assert held.to_controller and held.outputs == frozenset()  # only the controller sees it first
    lab.apply(lab.enforcer.dns_seen(_query(), NOW, ingress=UPLINK))
    frame = b"held answer bytes"
    effects = lab.enforcer.dns_seen(_answer("198.51.100.7", 300), NOW, frame, ingress=UPLINK)
    kinds = [type(e).__name__ for e in effects]
    assert kinds[-1] == "PacketOut" and "FlowUpdate" in kinds  # released after the flows that allow the address
    release = effects[-1]
    assert isinstance(release, PacketOut) and (release.port, release.data) == (1, frame)
    spoofed = lab.enforcer.dns_seen(_answer("198.51.100.66", 300, resolver="192.0.2.99"), NOW, frame, ingress=UPLINK)
    assert spoofed == []  # dropped: never released to the device
    lab.store.close()


def test_names_are_resolved_proactively_when_a_profile_loads(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", dns_servers=(RESOLVER,))
    lab.connect()
    lab.announce(BULB, 1, URL)
    mark = len(lab.effects)
    lab.resolve(URL, _cloudy())
    assert ResolveNames((NAME,)) in lab.effects[mark:]
    # The worker's answer through the configured resolver binds the name before the device asks anything.
    lab.apply(lab.enforcer.dns_resolved({NAME: (("198.51.100.7",), 300.0), "unused.example": (("192.0.2.1",), 60.0)},
                                        NOW))  # fmt: skip
    assert _to(lab, "198.51.100.7") and not _to(lab, "192.0.2.1")
    lab.store.close()
