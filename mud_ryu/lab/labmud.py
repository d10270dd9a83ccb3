"""The lab's MUD files and what each one must (and must not) let through, as data.

Each MUD device of :mod:`mud_ryu.lab.labhosts` has a profile: a few services on the ``internet``
host it may open (from-device, ``direction-initiated: from-device``), with the matching
to-device ACE for the replies. Everything else is forbidden: other ports, ICMP, and any
connection the internet initiates. IP destinations only (no DNS names). ``bulb`` and ``bulb2``
announce the same URL (a shared profile); ``broken`` announces ``missing.json``, which the lab
server answers with 404.

:data:`PROBES` is the expectation table the demo, the end-to-end tests and the benchmarks assert:
one :class:`Probe` per (device, destination, protocol, port) with its verdict under enforcement.
Under plain forwarding (no enforcer) every probe must be ``allowed``: that control run proves a
``blocked`` verdict comes from the policy, not from a missing listener.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from mud_ryu.lab import labhosts, labpki

INTERNET = labhosts.host("internet").ip
DEVICE_LISTEN_PORT = 8080  # every MUD device listens here, so "internet may not initiate" is meaningful
ALLOWED, BLOCKED = "allowed", "blocked"


@dataclass(frozen=True, slots=True)
class Service:
    proto: str  # "tcp" | "udp"
    port: int


# profile (file name stem) -> the services on INTERNET its devices may open; nothing else.
PROFILES: Mapping[str, tuple[Service, ...]] = MappingProxyType(
    {
        "bulb": (Service("tcp", 443),),
        "cam": (Service("tcp", 443), Service("tcp", 8883)),
        "sensor6": (Service("udp", 123),),
        "hub": (Service("tcp", 443),),
    }
)
MISSING = "missing"  # broken's profile: no file on the server

# Listeners on the internet host: every service some profile allows plus ones none allows.
INTERNET_TCP = (22, 443, 8080, 8883)
INTERNET_UDP = (123,)


@dataclass(frozen=True, slots=True)
class Probe:
    """``src`` host sends ``proto`` (tcp/udp/ping) to ``dst`` host (``dst_ip``) ``port``."""

    src: str
    dst: str
    dst_ip: str
    proto: str
    port: int
    expected: str  # verdict with the enforcer running
    reason: str


def profile_of(device: str) -> str | None:
    """The profile (file stem) a device's MUD URL names, or ``None`` for hosts that announce nothing."""
    url = labhosts.host(device).mud_url
    if url is None:
        return None
    return url.rsplit("/", 1)[1].removesuffix(".json")


def _probes() -> tuple[Probe, ...]:
    out: list[Probe] = []
    for h in labhosts.HOSTS:
        profile = profile_of(h.name)
        if profile is None:
            continue
        allowed = PROFILES.get(profile, ())
        why = f"{profile}.json" if allowed else "no valid MUD file: quarantined"
        for port in INTERNET_TCP:
            ok = Service("tcp", port) in allowed
            out.append(Probe(h.name, "internet", INTERNET, "tcp", port, ALLOWED if ok else BLOCKED,
                             f"{why}: tcp/{port} {'allowed' if ok else 'not allowed'}"))  # fmt: skip
        for port in INTERNET_UDP:
            ok = Service("udp", port) in allowed
            out.append(Probe(h.name, "internet", INTERNET, "udp", port, ALLOWED if ok else BLOCKED,
                             f"{why}: udp/{port} {'allowed' if ok else 'not allowed'}"))  # fmt: skip
        out.append(Probe(h.name, "internet", INTERNET, "ping", 0, BLOCKED, f"{why}: no ICMP"))
        out.append(Probe("internet", h.name, h.ip, "tcp", DEVICE_LISTEN_PORT, BLOCKED,
                         "the internet may not initiate to a MUD device"))  # fmt: skip
    return tuple(out)


PROBES: tuple[Probe, ...] = _probes()


def probes_for(device: str) -> tuple[Probe, ...]:
    """Probes sent by ``device`` or to it."""
    return tuple(p for p in PROBES if device in (p.src, p.dst))


def mud_file(profile: str, services: tuple[Service, ...], last_update: datetime) -> bytes:
    """An RFC 8520 MUD file for ``profile``: one IPv4 ACL per direction, one ACE pair per service."""
    url = labhosts.mud_url(profile)
    frdev, todev = f"mud-{profile}-v4fr", f"mud-{profile}-v4to"
    from_aces, to_aces = [], []
    for i, svc in enumerate(services):
        proto_no = 6 if svc.proto == "tcp" else 17
        l4_out: dict[str, object] = {"destination-port": {"operator": "eq", "port": svc.port}}
        l4_in: dict[str, object] = {"source-port": {"operator": "eq", "port": svc.port}}
        if svc.proto == "tcp":
            l4_out["ietf-mud:direction-initiated"] = "from-device"
            l4_in["ietf-mud:direction-initiated"] = "from-device"
        from_aces.append(_ace(f"svc{i}-frdev", {"ipv4": {"protocol": proto_no, "destination-ipv4-network":
                                                         f"{INTERNET}/32"}, svc.proto: l4_out}))  # fmt: skip
        to_aces.append(_ace(f"svc{i}-todev", {"ipv4": {"protocol": proto_no, "source-ipv4-network":
                                                       f"{INTERNET}/32"}, svc.proto: l4_in}))  # fmt: skip
    tree = {
        "ietf-mud:mud": {
            "mud-version": 1,
            "mud-url": url,
            "mud-signature": url.removesuffix(".json") + ".p7s",
            "last-update": last_update.replace(microsecond=0).isoformat(),
            "cache-validity": 48,
            "is-supported": True,
            "systeminfo": f"mud_ryu lab {profile}",
            "from-device-policy": {"access-lists": {"access-list": [{"name": frdev}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": todev}]}},
        },
        "ietf-access-control-list:acls": {
            "acl": [
                {"name": frdev, "type": "ipv4-acl-type", "aces": {"ace": from_aces}},
                {"name": todev, "type": "ipv4-acl-type", "aces": {"ace": to_aces}},
            ]
        },
    }
    return json.dumps(tree, indent=2).encode()


def _ace(name: str, matches: dict[str, object]) -> dict[str, object]:
    return {"name": name, "matches": matches, "actions": {"forwarding": "accept"}}


def write_files(directory: Path, signer: labpki.Issued, now: datetime) -> dict[str, Path]:
    """Write ``<profile>.json`` and its detached signature ``<profile>.p7s`` for every profile.
    Returns profile -> JSON path. ``missing.json`` is deliberately not written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for profile, services in PROFILES.items():
        written[profile] = write_signed(directory, profile, mud_file(profile, services, now), signer)
    return written


def write_signed(directory: Path, stem: str, body: bytes, signer: labpki.Issued) -> Path:
    """``<stem>.json`` and its detached signature ``<stem>.p7s`` (what ``mud-signature`` names); the JSON path."""
    path = directory / f"{stem}.json"
    path.write_bytes(body)
    (directory / f"{stem}.p7s").write_bytes(labpki.sign_detached(body, signer))
    return path
