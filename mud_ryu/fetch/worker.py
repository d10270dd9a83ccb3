"""The MUD resolver worker process: ``python -m mud_ryu.fetch.worker SETTINGS.json``.

Reads requests from stdin and writes results to stdout, one JSON object per line (``fetch.wire``), resolving
up to ``threads`` URLs at once with the MUD manager. Stdin closing (the controller exited or restarted) ends the
worker; so does any protocol violation on stdin, after a result-free error line on stderr. The settings file is
written by the controller from its configuration; every field has the safe production default.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import resource
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from mud_ryu.dns.resolver import resolve_names
from mud_ryu.fetch.budget import BUSY
from mud_ryu.fetch.cache import MudCache
from mud_ryu.fetch.fetcher import Fetcher, system_resolver
from mud_ryu.fetch.manager import ManagerSettings, MudManager, MudRequest, MudResolution, SignaturePolicy
from mud_ryu.fetch.netguard import parse_networks
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import load_anchor_files
from mud_ryu.fetch.types import FetchLimits, FetchOptions
from mud_ryu.fetch.wire import WireError, WireNamesRequest, decode_any_request, encode_names_result, encode_result

log = logging.getLogger("mud_ryu.fetch.worker")
DEFAULT_MAX_QUEUED = 256
BUSY_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    cache_path: str
    signature_policy: str = "required"
    trust_anchors: tuple[str, ...] = ()  # PEM files of MUD signer CAs
    tls_ca_bundle: str | None = None  # None: the system store
    allowed_networks: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    require_content_type: bool = True
    allow_ip_literals: bool = False
    deadline_s: float = 10.0
    max_redirects: int = 0
    max_body_bytes: int = 1 << 20
    max_concurrent: int = 8
    max_per_host: int = 2
    threads: int = 8
    max_queued: int = DEFAULT_MAX_QUEUED  # requests waiting for a thread; beyond, answered fetch:busy at once
    # Address-space cap: a decompression or parser blow-up dies here, not in the controller. Virtual, so it
    # counts thread stacks and malloc arenas too (spawn the worker with MALLOC_ARENA_MAX=2 to keep those small).
    memory_limit_mb: int = 2048
    resolve: Mapping[str, Sequence[str]] = field(default_factory=dict)  # lab: static host -> addresses
    # False when the update policy accepts "big changes" (a file naming a new canonical URL): it then decides.
    require_matching_mud_url: bool = True
    dns_servers: tuple[str, ...] = ()  # the configured resolvers: profile names are resolved through them

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WorkerSettings:
        known = set(cls.__dataclass_fields__)
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown worker settings: {sorted(unknown)}")
        values = dict(obj)
        for key in ("trust_anchors", "allowed_networks", "allowed_hosts", "dns_servers"):
            if key in values:
                values[key] = tuple(values[key])
        settings = cls(**values)
        SignaturePolicy(settings.signature_policy)  # raises ValueError on an unknown policy
        return settings

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["resolve"] = {k: list(v) for k, v in self.resolve.items()}
        return out


def build_manager(settings: WorkerSettings) -> tuple[MudManager, Fetcher, MudCache]:
    options = FetchOptions(
        limits=FetchLimits(
            deadline_s=settings.deadline_s,
            max_redirects=settings.max_redirects,
            max_body_bytes=settings.max_body_bytes,
            max_concurrent=settings.max_concurrent,
            max_per_host=settings.max_per_host,
        ),
        ca_bundle=settings.tls_ca_bundle,
        require_content_type=settings.require_content_type,
        allow_ip_literals=settings.allow_ip_literals,
        allowed_networks=parse_networks(settings.allowed_networks),
        allowed_hosts=frozenset(h.lower() for h in settings.allowed_hosts),
    )
    table = {host.lower(): list(addresses) for host, addresses in settings.resolve.items()}

    def resolver(host: str, port: int) -> list[str]:
        return table[host] if host in table else system_resolver(host, port)

    fetcher = Fetcher(options, resolver=resolver)
    cache, recovered = MudCache.open_or_recover(settings.cache_path)
    if recovered:
        log.error("MUD cache %s was %s; moved aside, starting empty", settings.cache_path, recovered)
    manager_settings = ManagerSettings(
        signature_policy=SignaturePolicy(settings.signature_policy),
        trust_anchors=load_anchor_files(settings.trust_anchors),
        require_matching_mud_url=settings.require_matching_mud_url,
    )
    return MudManager(fetcher, cache, manager_settings), fetcher, cache


def unanswered(request: MudRequest, now: float, reason: str = BUSY) -> MudResolution:
    """The answer for a request the full queue cannot take (``fetch:busy``) or that failed inside the worker
    (``internal:<error>``): nothing resolved, no alert (a backoff: never wider), asked again soon."""
    message = "the resolver's queue is full" if reason == BUSY else "the resolver failed on this request"
    return MudResolution(request.url, Outcome.BACKOFF, None, None, None, None, reason, message, now + BUSY_RETRY_S)


def serve(
    manager: MudManager,
    requests: IO[bytes],
    results: IO[bytes],
    threads: int,
    dns_servers: tuple[str, ...] = (),
    max_queued: int = DEFAULT_MAX_QUEUED,
) -> int:
    """Answer requests until stdin closes; return the exit status (0 on EOF, 2 on a protocol error).

    At most ``threads`` resolve at once and ``max_queued`` wait; a URL request beyond is answered at once with
    ``fetch:busy`` (the controller asks again later) instead of growing an unbounded queue."""
    write_lock = threading.Lock()
    count_lock = threading.Lock()
    outstanding = 0

    def answer(ident: int, job: Callable[[], Any], refuse: Callable[[str], Any] | None) -> None:
        nonlocal outstanding
        try:
            outcome = job()
        except Exception as exc:  # a bug must still answer: a silent thread would leave the devices waiting
            log.exception("resolution %d failed", ident)
            if refuse is None:
                return
            outcome = refuse(f"internal:{type(exc).__name__}")
        finally:
            with count_lock:
                outstanding -= 1
        line = encode_names_result(ident, outcome) if isinstance(outcome, dict) else encode_result(ident, outcome)
        with write_lock:
            results.write(line)
            results.flush()

    def submit(ident: int, job: Callable[[], Any], refuse: Callable[[str], Any] | None) -> None:
        nonlocal outstanding
        with count_lock:
            full = refuse is not None and outstanding >= threads + max_queued
            if not full:
                outstanding += 1
        if full:
            assert refuse is not None
            line = encode_result(ident, refuse(BUSY))
            with write_lock:
                results.write(line)
                results.flush()
            return
        pool.submit(answer, ident, job, refuse)

    status = 0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mud-resolve") as pool:
        for line in requests:
            if not line.strip():
                continue
            try:
                wire = decode_any_request(line)
            except WireError as exc:
                print(f"mud_ryu.fetch.worker: protocol error: {exc}", file=sys.stderr, flush=True)
                status = 2
                break
            if isinstance(wire, WireNamesRequest):
                # Never refused: one per profile, and the profile's names are what its devices need.
                submit(wire.id, functools.partial(resolve_names, wire.names, dns_servers), None)
            else:
                submit(wire.id, functools.partial(manager.resolve, wire.request, wire.now),
                       functools.partial(unanswered, wire.request, wire.now))  # fmt: skip
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m mud_ryu.fetch.worker SETTINGS.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    with open(args[0], encoding="utf-8") as handle:
        settings = WorkerSettings.from_json(json.load(handle))
    limit = settings.memory_limit_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    manager, fetcher, cache = build_manager(settings)
    try:
        # Blocking I/O whatever the parent left on the descriptors: a non-blocking stdin reads as EOF when momentarily
        # empty, and the worker would quit between requests.
        os.set_blocking(sys.stdin.fileno(), True)
        os.set_blocking(sys.stdout.fileno(), True)
        return serve(manager, sys.stdin.buffer, sys.stdout.buffer, settings.threads, settings.dns_servers,
                     settings.max_queued)  # fmt: skip
    finally:
        fetcher.close()
        cache.close()


if __name__ == "__main__":
    sys.exit(main())
