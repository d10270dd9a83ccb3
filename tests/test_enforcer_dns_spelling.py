"""A DNS name a MUD file spells differently from its bound key (``inet:domain-name`` allows the trailing dot of an
absolute name) is still the same name: the resolver's answers for it reach the profile's ACEs, and a profile loaded
after another one bound the name compiles with the addresses already bound."""

from __future__ import annotations

import json
from pathlib import Path

from tests.enforcer_lab import BULB, BULB2, IPS, NOW, PEER_MAC, PEER_PORT, Lab
from tests.packets import Packet

RESOLVER = "10.0.0.53"
NAME = "api.vendor.example"
PLAIN, DOTTED = "https://mud.test/plain.json", "https://mud.test/dotted.json"


def _file(url: str, spelling: str) -> bytes:
    """TCP 443 to ``spelling`` (a dst-dnsname) and its answers back."""
    out = {"name": "out", "actions": {"forwarding": "accept"},
           "matches": {"ipv4": {"protocol": 6, "ietf-acldns:dst-dnsname": spelling},
                       "tcp": {"destination-port": {"operator": "eq", "port": 443}}}}  # fmt: skip
    back = {"name": "back", "actions": {"forwarding": "accept"},
            "matches": {"ipv4": {"protocol": 6, "ietf-acldns:src-dnsname": spelling},
                        "tcp": {"source-port": {"operator": "eq", "port": 443}}}}  # fmt: skip
    tree = {"ietf-mud:mud": {"mud-version": 1, "mud-url": url, "last-update": "2026-01-01T00:00:00+00:00",
                             "cache-validity": 48, "is-supported": True, "systeminfo": "spelling",
                             "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
                             "to-device-policy": {"access-lists": {"access-list": [{"name": "to"}]}}},
            "ietf-access-control-list:acls": {"acl": [
                {"name": "fr", "type": "ipv4-acl-type", "aces": {"ace": [out]}},
                {"name": "to", "type": "ipv4-acl-type", "aces": {"ace": [back]}}]}}  # fmt: skip
    return json.dumps(tree).encode()


def _reaches(lab: Lab, mac: str, port: int, address: str) -> bool:
    out = Packet.tcp(port, mac, PEER_MAC, IPS[mac], address, 40000, 443)
    back = Packet.tcp(PEER_PORT, PEER_MAC, mac, address, IPS[mac], 443, 40000)
    return lab.sim.is_output(out, PEER_PORT) and lab.sim.is_output(back, port)


def test_a_trailing_dot_spelling_is_bound_by_the_resolvers_answers(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", dns_servers=(RESOLVER,))
    lab.connect()
    lab.announce(BULB, 1, DOTTED)
    lab.resolve(DOTTED, _file(DOTTED, NAME + "."))
    assert not _reaches(lab, BULB, 1, "198.51.100.7")  # nothing bound yet: fail closed
    lab.apply(lab.enforcer.dns_resolved({NAME: (("198.51.100.7",), 300.0)}, NOW))
    assert _reaches(lab, BULB, 1, "198.51.100.7") and not _reaches(lab, BULB, 1, "198.51.100.8")
    lab.apply(lab.enforcer.dns_expire(NOW + 3600))
    assert not _reaches(lab, BULB, 1, "198.51.100.7")  # and it leaves with its TTL
    lab.store.close()


def test_a_profile_loaded_later_gets_the_addresses_its_name_already_has(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", dns_servers=(RESOLVER,))
    lab.connect()
    lab.announce(BULB, 1, PLAIN)
    lab.resolve(PLAIN, _file(PLAIN, NAME))
    lab.apply(lab.enforcer.dns_resolved({NAME: (("198.51.100.7",), 300.0)}, NOW))
    assert _reaches(lab, BULB, 1, "198.51.100.7")
    lab.announce(BULB2, 2, DOTTED)
    lab.resolve(DOTTED, _file(DOTTED, NAME + "."))
    # The same answer again (the proactive resolution) changes no set, so nothing else would bring the address in.
    lab.apply(lab.enforcer.dns_resolved({NAME: (("198.51.100.7",), 300.0)}, NOW))
    assert _reaches(lab, BULB2, 2, "198.51.100.7") and not _reaches(lab, BULB2, 2, "198.51.100.8")
    lab.store.close()
