"""The one module that opens network connections for MUD: a hardened HTTPS GET built on ``requests``.

Every MUD URL comes from an untrusted device, so a fetch is treated as hostile I/O (THREATS.md rows 3-10, R7):

* the URL (and every redirect target) passes the URL gate first; redirects are refused unless the operator allows
  a few same-host hops;
* the host is resolved by us, every address is checked against the SSRF deny-list (``netguard``), and the socket
  is connected to a checked address -- never re-resolved by the HTTP library -- and the connected peer is checked
  again; TLS still verifies the certificate against the host *name*;
* one total deadline covers DNS, connect, handshake, redirects and body (``fetch_guard.Deadline``), on top of the
  per-read timeout; the body is streamed and capped in *decoded* bytes with our own bounded decompressor;
* concurrency is bounded globally and per host; proxies, .netrc and cookies from the environment are ignored.

Blocking by design: the enforcer calls it from a worker, never from the OpenFlow event loop.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urljoin

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from mud_ryu import __version__
from mud_ryu.fetch import netguard
from mud_ryu.fetch.guard import Clock, ConcurrencyLimiter, Deadline
from mud_ryu.fetch.types import MUD_CONTENT_TYPE, FetchError, FetchOptions, FetchResult, FetchStatus, Validators
from mud_ryu.fetch.urlgate import GateOptions, MudUrl, UrlRejected, check_mud_url

Resolver = Callable[[str, int], Sequence[str]]
USER_AGENT = f"mud_ryu/{__version__} (MUD manager; RFC 8520)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_SIZE = 16 * 1024
# System trust store first (what an operator manages with update-ca-certificates), certifi as a fallback.
_SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses getaddrinfo gives for ``host`` (order kept, duplicates dropped)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(info[4][0])] = None
    return list(seen)


def _default_ca_bundle() -> str | bool:
    for path in _SYSTEM_BUNDLES:
        if os.path.isfile(path):
            return path
    return True  # requests falls back to certifi


class _Attempt:
    """State shared between the fetch loop and the pinned connection it causes urllib3 to create."""

    def __init__(self, addresses: Sequence[str], options: FetchOptions, deadline: Deadline) -> None:
        self.addresses = addresses
        self.options = options
        self.deadline = deadline
        self.failure: FetchError | None = None
        self.peer = ""

    def fail(self, error: FetchError) -> urllib3.exceptions.NewConnectionError:
        self.failure = error
        return urllib3.exceptions.NewConnectionError(None, error.message)  # type: ignore[arg-type]


class _PinnedHTTPSConnection(urllib3.connection.HTTPSConnection):
    """An HTTPS connection that connects only to addresses the attempt already checked, then checks the peer."""

    def __init__(self, *args: Any, mud_attempt: _Attempt, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mud_attempt = mud_attempt

    def _new_conn(self) -> socket.socket:
        attempt = self._mud_attempt
        last = "no address"
        for address in attempt.addresses:
            if attempt.deadline.expired:
                break
            try:
                sock = socket.create_connection(
                    (address, self.port), timeout=attempt.deadline.bounded(attempt.options.limits.connect_timeout_s)
                )
            except OSError as exc:
                last = f"{address}: {exc}"
                continue
            try:
                self._check_peer(sock, address)
                attempt.deadline.watch(sock)
            except FetchError as error:
                sock.close()
                raise attempt.fail(error) from None
            sock.settimeout(attempt.deadline.bounded(attempt.options.limits.read_timeout_s))
            attempt.peer = address
            return sock
        raise attempt.fail(FetchError("connect-failed", f"could not connect to {self.host}: {last}"))

    def _check_peer(self, sock: socket.socket, address: str) -> None:
        peer_text = str(sock.getpeername()[0])
        peer = netguard.parse_address(peer_text)
        if peer is None or peer != netguard.parse_address(address):
            raise FetchError("peer-mismatch", f"connected to {peer_text}, not the checked address {address}")
        category = netguard.denied_reason(peer, self._mud_attempt.options.allowed_networks)
        if category and self.host not in self._mud_attempt.options.allowed_hosts:
            raise FetchError("address-denied", f"connected peer {peer_text} is denied: {category}")


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Hands requests a fresh, single-use pool whose connections are pinned to the attempt's addresses."""

    def __init__(self, attempt: _Attempt) -> None:
        super().__init__(max_retries=0)
        self._attempt = attempt

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> urllib3.HTTPConnectionPool:
        url = urllib3.util.parse_url(request.url or "")
        pool = urllib3.HTTPSConnectionPool(
            url.host or "",
            url.port or 443,
            maxsize=1,
            ssl_minimum_version=ssl.TLSVersion.TLSv1_2,
            mud_attempt=self._attempt,
        )
        pool.ConnectionCls = _PinnedHTTPSConnection
        return pool


def _media_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() if value else None


class _BodyReader:
    """Streams a body, decoding gzip/deflate ourselves so the cap counts decoded bytes without ever holding more."""

    def __init__(self, encoding: str | None, cap: int) -> None:
        self._cap = cap
        self._chunks: list[bytes] = []
        self._size = 0
        coding = (encoding or "identity").strip().lower()
        if coding in ("", "identity"):
            self._decoder: Any = None
        elif coding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # auto-detects gzip and zlib headers
        else:
            raise FetchError("bad-content-encoding", f"the server used Content-Encoding {coding!r}")

    def feed(self, data: bytes) -> None:
        if self._decoder is None:
            self._keep(data)
            return
        try:
            while data:
                out = self._decoder.decompress(data, self._cap - self._size + 1)
                self._keep(out)
                data = self._decoder.unconsumed_tail
                if self._decoder.eof and self._decoder.unused_data:
                    raise FetchError("bad-content-encoding", "data after the end of the compressed stream")
        except zlib.error as exc:
            raise FetchError("bad-content-encoding", f"undecodable compressed body: {exc}") from None

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise FetchError("too-large", f"the body exceeds {self._cap} bytes")
        if data:
            self._chunks.append(data)

    def finish(self) -> bytes:
        if self._decoder is not None and not self._decoder.eof:
            raise FetchError("bad-content-encoding", "the compressed body is truncated")
        return b"".join(self._chunks)


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 16:
        chain.append(seen)
        chain.extend(a for a in getattr(seen, "args", ()) if isinstance(a, BaseException))
        seen = seen.__cause__ or seen.__context__
    return chain


def _classify(exc: BaseException, attempt: _Attempt, during: str) -> FetchError:
    """Map what requests/urllib3/ssl raised to one stable reason (the deadline and our own checks come first)."""
    if attempt.deadline.expired:
        return FetchError("deadline", f"the fetch exceeded its total deadline during {during}")
    if attempt.failure is not None:
        return attempt.failure
    chain = _cause_chain(exc)
    if any(isinstance(e, ssl.SSLError | urllib3.exceptions.SSLError | requests.exceptions.SSLError) for e in chain):
        return FetchError("tls-failed", f"TLS failed during {during}: {exc}")
    if any(isinstance(e, http.client.HTTPException | urllib3.exceptions.ProtocolError) for e in chain):
        return FetchError("bad-response", f"malformed HTTP response during {during}: {exc}")
    if any(isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError) for e in chain):
        return FetchError("read-timeout", f"a read timed out during {during}")
    return FetchError("connect-failed", f"connection failed during {during}: {exc}")


class Fetcher:
    """Fetch MUD files and signatures. Thread-safe; one instance per process, shared by the worker threads."""

    def __init__(
        self,
        options: FetchOptions | None = None,
        *,
        resolver: Resolver = system_resolver,
        clock: Clock = time.monotonic,
        user_agent: str = USER_AGENT,
    ) -> None:
        options = options or FetchOptions()
        self.options = options
        self._resolver = resolver
        self._clock = clock
        self._user_agent = user_agent
        limits = options.limits
        self._limiter = ConcurrencyLimiter(limits.max_concurrent, limits.max_per_host)
        # getaddrinfo cannot be interrupted, so it runs here and the fetch stops waiting when the deadline passes.
        self._dns = ThreadPoolExecutor(max_workers=limits.max_concurrent, thread_name_prefix="mud-dns")
        self._verify: str | bool = options.ca_bundle or _default_ca_bundle()

    def close(self) -> None:
        self._dns.shutdown(wait=False, cancel_futures=True)

    def gate(self, url: str) -> MudUrl:
        try:
            return check_mud_url(url, GateOptions(allow_ip_literals=self.options.allow_ip_literals))
        except UrlRejected as rejected:
            raise FetchError("bad-url", rejected.message, detail=rejected.reason) from None

    def fetch(
        self,
        url: str,
        *,
        accept: str = MUD_CONTENT_TYPE,
        max_bytes: int | None = None,
        validators: Validators | None = None,
    ) -> FetchResult:
        """GET ``url``; return the body (status OK) or NOT_MODIFIED; raise FetchError with a stable reason."""
        target = self.gate(url)
        limits = self.options.limits
        deadline = Deadline(limits.deadline_s, self._clock)
        try:
            with self._limiter.slot(target.host, deadline, limits.deadline_s / 2):
                for hop in range(limits.max_redirects + 1):
                    outcome = self._get(target, accept, max_bytes or limits.max_body_bytes, validators, deadline)
                    if isinstance(outcome, FetchResult):
                        return FetchResult(
                            outcome.url, outcome.status, outcome.body, outcome.content_type,
                            outcome.validators, outcome.peer, hop,
                        )  # fmt: skip
                    target = self._follow(target, outcome)
                raise FetchError("too-many-redirects", f"more than {limits.max_redirects} redirects")
        finally:
            deadline.close()

    def _follow(self, current: MudUrl, redirect: tuple[int, str]) -> MudUrl:
        status, location = redirect
        if self.options.limits.max_redirects == 0:
            raise FetchError("redirect-refused", f"HTTP {status} redirect to {location[:200]!r}", detail=str(status))
        target = self.gate(urljoin(current.url, location))
        if (target.host, target.port) != (current.host, current.port):
            raise FetchError("redirect-cross-host", f"redirect from {current.authority} to {target.authority}")
        return target

    def _resolve(self, target: MudUrl, deadline: Deadline) -> list[str]:
        future = self._dns.submit(self._resolver, target.host, target.port)
        try:
            answers = list(future.result(timeout=deadline.remaining()))
        except FutureTimeout:
            raise FetchError("deadline", f"resolving {target.host} exceeded the deadline") from None
        except (OSError, UnicodeError) as exc:
            raise FetchError("resolve-failed", f"cannot resolve {target.host}: {exc}") from None
        if not answers:
            raise FetchError("resolve-failed", f"{target.host} has no addresses")
        allowed_host = target.host in self.options.allowed_hosts
        for text in answers:
            address = netguard.parse_address(text)
            if address is None:
                raise FetchError("resolve-failed", f"the resolver returned {text!r}, not an IP address")
            category = netguard.denied_reason(address, self.options.allowed_networks)
            if category and not allowed_host:
                # One bad answer refuses the host: a mixed answer is how DNS rebinding reaches internal addresses.
                raise FetchError("address-denied", f"{target.host} resolves to {text}, which is denied: {category}")
        return answers

    def _headers(self, accept: str, validators: Validators | None) -> dict[str, str]:
        headers = {
            "Accept": accept,
            "Accept-Language": self.options.accept_language,
            "Accept-Encoding": "identity",
            "User-Agent": self._user_agent,
            "Connection": "close",
        }
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        return headers

    def _get(
        self, target: MudUrl, accept: str, cap: int, validators: Validators | None, deadline: Deadline
    ) -> FetchResult | tuple[int, str]:
        attempt = _Attempt(self._resolve(target, deadline), self.options, deadline)
        session = requests.Session()
        session.trust_env = False  # no proxies, .netrc or CA overrides from the environment
        session.mount("https://", _PinnedAdapter(attempt))
        limits = self.options.limits
        try:
            response = session.get(
                target.url,
                headers=self._headers(accept, validators),
                allow_redirects=False,
                stream=True,
                verify=self._verify,
                timeout=(deadline.bounded(limits.connect_timeout_s), deadline.bounded(limits.read_timeout_s)),
            )
        except requests.RequestException as exc:
            session.close()
            raise _classify(exc, attempt, "connect") from None
        try:
            return self._read(target, response, accept, cap, validators, attempt)
        except FetchError:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            raise _classify(exc, attempt, "the body") from None
        finally:
            response.close()
            session.close()

    def _read(
        self,
        target: MudUrl,
        response: requests.Response,
        accept: str,
        cap: int,
        validators: Validators | None,
        attempt: _Attempt,
    ) -> FetchResult | tuple[int, str]:
        # A head cut short by the watchdog parses as a shorter head: the deadline must be checked before any of it.
        attempt.deadline.check("the response head")
        status = response.status_code
        got = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
        if status in _REDIRECTS:
            return status, response.headers.get("Location", "")
        if status == 304 and validators is not None:
            return FetchResult(target.url, FetchStatus.NOT_MODIFIED, b"", None, got, attempt.peer, 0)
        if status != 200:
            raise FetchError("bad-status", f"HTTP {status} from {target.url}", detail=str(status))
        content_type = _media_type(response.headers.get("Content-Type"))
        if self.options.require_content_type and content_type != accept:
            raise FetchError("bad-content-type", f"Content-Type {content_type!r}, expected {accept!r}")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > cap:
            raise FetchError("too-large", f"Content-Length {length} exceeds {cap} bytes")
        reader = _BodyReader(response.headers.get("Content-Encoding"), cap)
        raw = response.raw
        while True:
            attempt.deadline.check("the body")
            chunk = raw.read1(_READ_SIZE, decode_content=False)
            if not chunk:
                break
            reader.feed(chunk)
        attempt.deadline.check("the body")  # a shut-down socket reads as EOF: do not mistake it for the end
        return FetchResult(target.url, FetchStatus.OK, reader.finish(), content_type, got, attempt.peer, 0)
