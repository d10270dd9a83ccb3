"""Builders of MUD documents for tests: a small valid file and hostile variants of it.

Each hostile builder returns bytes that the validator must reject for one specific reason
(THREATS.md rows 8-10); tests/test_mudfile.py maps them to their expected reason codes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

ACLS = "ietf-access-control-list:acls"
MUD = "ietf-mud:mud"


def base_doc() -> dict[str, Any]:
    """A small valid RFC 8520 file: DNS to the local resolver, HTTPS to one cloud name."""
    return {
        MUD: {
            "mud-version": 1,
            "mud-url": "https://things.example.com/lamp.json",
            "last-update": "2024-01-01T00:00:00+00:00",
            "cache-validity": 48,
            "is-supported": True,
            "systeminfo": "test lamp",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": "to"}]}},
        },
        ACLS: {
            "acl": [
                {
                    "name": "fr",
                    "type": "ipv4-acl-type",
                    "aces": {
                        "ace": [
                            {
                                "name": "cloud",
                                "matches": {
                                    "ipv4": {"protocol": 6, "ietf-acldns:dst-dnsname": "Cloud.Example.com"},
                                    "tcp": {
                                        "destination-port": {"operator": "eq", "port": 443},
                                        "ietf-mud:direction-initiated": "from-device",
                                    },
                                },
                                "actions": {"forwarding": "accept"},
                            },
                            {
                                "name": "dns",
                                "matches": {
                                    "ietf-mud:mud": {"controller": "urn:ietf:params:mud:dns"},
                                    "ipv4": {"protocol": 17},
                                    "udp": {"destination-port": {"operator": "eq", "port": 53}},
                                },
                                "actions": {"forwarding": "accept"},
                            },
                        ]
                    },
                },
                {
                    "name": "to",
                    "type": "ipv4-acl-type",
                    "aces": {
                        "ace": [
                            {
                                "name": "cloud",
                                "matches": {
                                    "ipv4": {"protocol": 6, "ietf-acldns:src-dnsname": "cloud.example.com"},
                                    "tcp": {"source-port": {"operator": "eq", "port": 443}},
                                },
                                "actions": {"forwarding": "accept"},
                            }
                        ]
                    },
                },
            ]
        },
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def first_ace(doc: dict[str, Any], acl: int = 0, ace: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = doc[ACLS]["acl"][acl]["aces"]["ace"][ace]
    return entry


def _with(change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = copy.deepcopy(base_doc())
    change(doc)
    return dumps(doc)


def _many_aces(n: int, dns: bool = False, ranges: bool = False) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        aces = []
        for i in range(n):
            matches: dict[str, Any] = {"ipv4": {"protocol": 6}}
            if dns:
                matches["ipv4"]["ietf-acldns:dst-dnsname"] = f"h{i}.example.com"
            port = {"lower-port": 1000 + i, "upper-port": 2000 + i} if ranges else {"operator": "eq", "port": 1}
            matches["tcp"] = {"destination-port": port}
            aces.append({"name": f"a{i}", "matches": matches, "actions": {"forwarding": "accept"}})
        doc[ACLS]["acl"][0]["aces"]["ace"] = aces

    return change


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


_ACE0 = [ACLS, "acl", 0, "aces", "ace", 0]

# THREATS.md row 8 (hostile JSON), row 9 (flow explosion), row 10 (invalid YANG / MUD rules):
# name -> (bytes, expected reason code). Every reason is distinct.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "deep-nesting": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "json-too-deep"),
    "nan": (b'{"ietf-mud:mud": {"cache-validity": NaN}}', "json-nan"),
    "duplicate-key": (b'{"ietf-mud:mud": {}, "ietf-mud:mud": {}}', "json-duplicate-key"),
    "huge-int": (b'{"ietf-mud:mud": {"mud-version": ' + b"9" * 5000 + b"}}", "json-number-too-long"),
    "many-objects": (b'{"x": [' + b",".join([b"{}"] * 100_000) + b"]}", "json-too-many-values"),
    "too-large": (b'{"x": "' + b"a" * (1 << 20) + b'"}', "file-too-large"),
    "not-utf8": (b'{"x": "\xff"}', "json-not-utf8"),
    "syntax": (b'{"x": }', "json-syntax"),
    "array-top": (b"[1, 2]", "json-not-object"),
    "too-many-aces": (_with(_many_aces(1001)), "too-many-aces"),
    "too-many-dns-names": (_with(_many_aces(300, dns=True)), "too-many-dns-names"),
    "too-many-port-ranges": (_with(_many_aces(300, ranges=True)), "too-many-port-ranges"),
    "wrong-type": (_with(_set([MUD, "cache-validity"], "soon")), "yang-type"),
    "out-of-range": (_with(_set([MUD, "cache-validity"], 1000)), "yang-out-of-range"),
    "missing-mud": (_with(_delete([MUD])), "mud-missing"),
    "missing-mandatory": (_with(_delete([MUD, "is-supported"])), "yang-missing-mandatory"),
    "dangling-acl": (
        _with(_set([MUD, "from-device-policy", "access-lists", "access-list", 0, "name"], "nope")),
        "yang-dangling-reference",
    ),
    "src-dnsname-from-device": (
        _with(_set([*_ACE0, "matches", "ipv4", "ietf-acldns:src-dnsname"], "evil.example.com")),
        "dnsname-wrong-direction",
    ),
    "unknown-standard-node": (_with(_set([*_ACE0, "matches", "ipv4", "colour"], "red")), "yang-unknown-node"),
    "extension-in-ace": (
        _with(_set([*_ACE0, "matches", "acme:only-on-tuesdays"], True)),
        "unsupported-acl-extension",
    ),
    "ipv6-in-ipv4-acl": (
        _with(_set([*_ACE0, "matches", "ipv6"], {"protocol": 6})),
        "yang-schema",  # l3 is a YANG choice: ipv4 and ipv6 together break it
    ),
    "ipv6-match-in-ipv4-acl": (
        _with(lambda d: first_ace(d)["matches"].update(ipv6=first_ace(d)["matches"].pop("ipv4"))),
        "acl-type-mismatch",
    ),
    "bad-pattern": (_with(_set([*_ACE0, "matches", "ipv4", "destination-ipv4-network"], "10.0.0.1")), "yang-pattern"),
    "protocol-mismatch": (_with(_set([*_ACE0, "matches", "ipv4", "protocol"], 17)), "match-protocol-mismatch"),
    "http-url": (_with(_set([MUD, "mud-url"], "http://things.example.com/lamp.json")), "mud-url-not-https"),
}
