"""MUD files for fetch/manager tests: the RFC 8520 example light bulb, re-addressed to a test URL, optionally
signed by a test PKI (tests/sigvectors.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests import sigvectors

_EXAMPLE = Path(__file__).parent / "fixtures" / "corpus" / "hslatman+mud.yang.go" / "examples__lightbulb2000.json"


def mud_file(url: str, signature: str | None = None, cache_validity: int = 48, systeminfo: str = "") -> bytes:
    """The example light bulb whose mud-url is ``url`` (and mud-signature ``signature`` when given)."""
    tree = json.loads(_EXAMPLE.read_bytes())
    mud = tree["ietf-mud:mud"]
    mud["mud-url"] = url
    mud["cache-validity"] = cache_validity
    if systeminfo:
        mud["systeminfo"] = systeminfo
    if signature is not None:
        mud["mud-signature"] = signature
    return json.dumps(tree, indent=2).encode()


@dataclass(frozen=True)
class SigningPki:
    """A MUD signing CA with one signer, and the anchor PEM an operator would configure."""

    ca: sigvectors.Issued
    signer: sigvectors.Issued

    @classmethod
    def create(cls, cn: str = "Test MUD CA") -> SigningPki:
        ca = sigvectors.make_ca(cn)
        return cls(ca, sigvectors.make_signer(ca))

    @property
    def anchors_pem(self) -> bytes:
        return sigvectors.ca_pem(self.ca)

    def sign(self, content: bytes) -> bytes:
        return sigvectors.sign_detached(content, self.signer)


def ip_mud_file(url: str, peer: str = "203.0.113.10", port: int = 443, systeminfo: str = "IP test device") -> bytes:
    """A MUD file with literal IPv4 ACEs: the device may open TCP ``port`` to ``peer`` (direction-initiated
    from the device); the peer's answers come back; nothing else beyond the RFC 8520 defaults."""
    tcp_out = {"destination-port": {"operator": "eq", "port": port}, "ietf-mud:direction-initiated": "from-device"}
    tree = {
        "ietf-mud:mud": {
            "mud-version": 1,
            "mud-url": url,
            "last-update": "2026-01-01T00:00:00+00:00",
            "cache-validity": 48,
            "is-supported": True,
            "systeminfo": systeminfo,
            "from-device-policy": {"access-lists": {"access-list": [{"name": "from-ip"}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": "to-ip"}]}},
        },
        "ietf-access-control-list:acls": {
            "acl": [
                {
                    "name": "from-ip",
                    "type": "ipv4-acl-type",
                    "aces": {"ace": [{
                        "name": "out",
                        "matches": {"ipv4": {"protocol": 6, "destination-ipv4-network": f"{peer}/32"},
                                    "tcp": tcp_out},
                        "actions": {"forwarding": "accept"},
                    }]},
                },
                {
                    "name": "to-ip",
                    "type": "ipv4-acl-type",
                    "aces": {"ace": [{
                        "name": "back",
                        "matches": {"ipv4": {"protocol": 6, "source-ipv4-network": f"{peer}/32"},
                                    "tcp": {"source-port": {"operator": "eq", "port": port},
                                            "ietf-mud:direction-initiated": "from-device"}},
                        "actions": {"forwarding": "accept"},
                    }]},
                },
            ]
        },
    }  # fmt: skip
    return json.dumps(tree, indent=2).encode()
