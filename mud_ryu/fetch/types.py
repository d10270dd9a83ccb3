"""Contracts of the fetch layer: its settings, what one HTTP fetch returns, and how it fails.

Kept apart from the fetcher (the only module that opens sockets) so that the cache, the MUD manager, the app and
the tests can speak about fetches without importing ``requests``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from mud_ryu.errors import ReasonError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 8520 s13: MUD files are application/mud+json; the detached signature is application/pkcs7-signature.
MUD_CONTENT_TYPE = "application/mud+json"
SIGNATURE_CONTENT_TYPE = "application/pkcs7-signature"

# Stable reason codes of FetchError (logs, REST API and metrics key on these strings).
FETCH_REASONS: frozenset[str] = frozenset(
    {
        "bad-url",  # the URL (or a redirect target) failed the URL gate; ``detail`` holds the gate's reason
        "resolve-failed",  # the host name did not resolve
        "address-denied",  # a resolved or connected address is in the deny-list and not allowed for labs
        "peer-mismatch",  # the socket connected somewhere other than the checked address
        "connect-failed",  # TCP connect refused / unreachable / timed out
        "tls-failed",  # handshake or certificate verification failed
        "deadline",  # the whole fetch exceeded its total deadline (drip-feed, slow handshake, ...)
        "read-timeout",  # one read waited longer than the per-read timeout
        "too-large",  # the (decoded) body exceeded the cap
        "bad-status",  # an HTTP status other than 200 (or 304 for a conditional request); ``detail`` = status
        "redirect-refused",  # a redirect while redirects are off
        "redirect-cross-host",  # a redirect to another scheme, host or port
        "too-many-redirects",  # more redirect hops than allowed
        "bad-content-type",  # missing or wrong Content-Type while the strict check is on
        "bad-content-encoding",  # a Content-Encoding we did not ask for and cannot decode safely
        "bad-response",  # a malformed HTTP response (oversized or too many headers, broken chunking, ...)
        "busy",  # the concurrency limit (global or per host) stayed full for the whole deadline
    }
)


class FetchError(ReasonError):
    """A fetch that failed; ``reason`` is one of FETCH_REASONS, ``detail`` an optional sub-code."""

    def __init__(self, reason: str, message: str, detail: str = "") -> None:
        super().__init__(reason, message)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds on one fetch. Defaults suit a production MUD manager fetching small JSON files from the Internet."""

    deadline_s: float = 10.0  # total wall time of one fetch incl. DNS, connect, TLS, redirects and body
    connect_timeout_s: float = 4.0
    read_timeout_s: float = 5.0  # one socket read
    max_body_bytes: int = 1 << 20  # decoded bytes, counted while streaming (THREATS.md R7)
    max_redirects: int = 0  # 0 = redirects refused; N = at most N same-host https hops, each re-gated
    max_concurrent: int = 8  # fetches in flight at once
    max_per_host: int = 2  # fetches in flight to one host

    def __post_init__(self) -> None:
        if self.deadline_s <= 0 or self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("fetch timeouts must be positive")
        if self.max_body_bytes < 1 or self.max_redirects < 0 or self.max_concurrent < 1 or self.max_per_host < 1:
            raise ValueError("fetch limits out of range")


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """How the fetcher talks to MUD servers. The lab switches are off by default."""

    limits: FetchLimits = FetchLimits()
    ca_bundle: str | None = None  # PEM file of trusted TLS roots; None = the system store
    accept_language: str = "en"
    require_content_type: bool = True  # lab switch: accept any Content-Type
    allow_ip_literals: bool = False  # lab switch handed to the URL gate
    # Lab allow-list: addresses the deny-list would refuse (a MUD server on 10.0.0.0/8 or loopback in a lab).
    allowed_networks: tuple[IPNetwork, ...] = ()
    # Lab allow-list by name: every address these hosts resolve to is accepted.
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)


class FetchStatus(enum.Enum):
    OK = "ok"
    NOT_MODIFIED = "not-modified"


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators remembered from an earlier 200, sent back for a conditional refresh."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One successful fetch. ``body`` is empty when status is NOT_MODIFIED."""

    url: str  # the canonical URL finally fetched (after permitted redirects)
    status: FetchStatus
    body: bytes
    content_type: str | None
    validators: Validators
    peer: str  # the IP address the body came from
    redirects: int
