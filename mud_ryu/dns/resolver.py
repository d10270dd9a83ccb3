"""Resolve the DNS names of a MUD profile through the configured resolvers (the worker side of issue 6's
"resolve proactively at profile load, so a device's first connection is not dropped").

Runs in the resolver worker process (blocking I/O, never on the OpenFlow loop). Only the configured resolvers are
asked -- the same ones whose answers to devices the controller trusts -- with a per-name deadline and a cap on the
number of names. A name that fails to resolve is simply absent from the result: it stays fail-closed until the
device's own lookup is answered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import dns.exception
import dns.rdatatype
import dns.resolver

MAX_NAMES = 256
Answer = tuple[tuple[str, ...], float]  # addresses, TTL in seconds


def resolve_names(
    names: Iterable[str], servers: Sequence[str], *, port: int = 53, timeout_s: float = 2.0, max_names: int = MAX_NAMES
) -> dict[str, Answer]:
    """A and AAAA records of each name (CNAMEs followed by the resolver), with the smaller TTL of the two."""
    if not servers:
        return {}
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [str(ipaddress.ip_address(s)) for s in servers]
    resolver.port = port
    resolver.lifetime = timeout_s
    resolver.timeout = timeout_s
    out: dict[str, Answer] = {}
    for name in list(dict.fromkeys(names))[:max_names]:
        addresses: list[str] = []
        ttls: list[float] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
            except (dns.exception.DNSException, ValueError):
                continue
            if answer.rrset is None:
                continue
            addresses.extend(str(r.address) for r in answer.rrset)
            ttls.append(float(answer.rrset.ttl))
        if addresses:
            out[name] = (tuple(sorted(set(addresses))), min(ttls))
    return out
