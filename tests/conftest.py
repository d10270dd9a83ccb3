"""Shared test helpers: the MUD corpus copy and a context that resolves every abstraction.

``resolving_context`` gives every DNS name, controller class, my-controller, manufacturer and
model that a set of MUD files mentions a concrete, distinct address or id, so that every ACE
compiles to flows (an unresolved abstraction compiles to nothing, which would test nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, NetworkContext, url_authority
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile import upgrade as dialect_upgrade
from mud_ryu.mudfile.model import MudFile

CORPUS = Path(__file__).resolve().parent / "fixtures" / "corpus"

LOCAL_NETWORKS = ("10.0.0.0/16", "fd00:1::/64")
DNS_SERVER = ("192.0.2.53", "2001:db8:53::53")
NTP_SERVER = ("192.0.2.123", "2001:db8:123::123")
MY_CONTROLLER = ("198.51.100.200", "2001:db8:c::200")


def corpus_path(rel: str) -> Path:
    path = CORPUS / rel
    if not path.is_file():
        raise FileNotFoundError(f"corpus file missing: {path}")
    return path


def load_corpus(rel: str) -> MudFile:
    """A corpus file as a validated model; pre-RFC draft files go through the dialect upgrade."""
    data = corpus_path(rel).read_bytes()
    if b'"ietf-access-control-list:access-lists"' in data:
        data, _ = dialect_upgrade.upgrade(data)
    return mudfile.parse(data).mud


def _names(muds: Iterable[MudFile]) -> tuple[list[str], list[str], list[str], list[str]]:
    dns: list[str] = []
    controllers: list[str] = []
    models: list[str] = []
    mfgs: list[str] = []
    for mud in muds:
        for acl in (*mud.from_device, *mud.to_device):
            for ace in acl.aces:
                ip, m = ace.matches.ip, ace.matches.mud
                if ip is not None:
                    dns += [n for n in (ip.src_dnsname, ip.dst_dnsname) if n and n not in dns]
                if m is not None:
                    if m.controller and m.controller not in controllers:
                        controllers.append(m.controller)
                    if m.model and m.model not in models:
                        models.append(m.model)
                    if m.manufacturer and m.manufacturer.lower() not in mfgs:
                        mfgs.append(m.manufacturer.lower())
    return dns, controllers, models, mfgs


def resolving_context(muds: Iterable[MudFile]) -> NetworkContext:
    """dns name i -> 203.0.113.i / 2001:db8:d::i, controller i -> 198.51.100.i / 2001:db8:c::i,
    my-controller -> 198.51.100.200, local networks 10.0.0.0/16 + fd00:1::/64, DNS/NTP servers
    in 192.0.2.0/24; profile ids for the files and their models, manufacturer ids per authority."""
    muds = list(muds)
    dns, controllers, models, mfgs = _names(muds)
    urls = [m.mud_url for m in muds] + [u for u in models if u not in {m.mud_url for m in muds}]
    authorities = [url_authority(u) for u in urls] + mfgs
    return NetworkContext(
        dns={n: (f"203.0.113.{i}", f"2001:db8:d::{i}") for i, n in enumerate(dns, 1)},
        controllers={
            DNS_CONTROLLER_URN: DNS_SERVER,
            NTP_CONTROLLER_URN: NTP_SERVER,
            **{c: (f"198.51.100.{i}", f"2001:db8:c::{i}") for i, c in enumerate(controllers, 1)},
        },
        my_controller={m.mud_url: MY_CONTROLLER for m in muds},
        local_networks=LOCAL_NETWORKS,
        profile_ids={u: i for i, u in enumerate(dict.fromkeys(urls), 2)},
        manufacturer_ids={a: i for i, a in enumerate(dict.fromkeys(authorities), 1)},
    )
