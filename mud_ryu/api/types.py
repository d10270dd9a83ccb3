"""The values of the operator REST API: what the enforcer shows and does, and what a response is.

Field names here ARE the JSON field names of ``/mud/v1`` (serialised with :func:`dataclasses.asdict`), so renaming
one is an API break: scripts and the ``mud-ryu`` CLI read them. The :class:`Backend` protocol is the whole surface
the API needs from the enforcer, kept small so the app can implement it over its single event loop and tests can
implement it in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


def dpid_hex(dpid: int) -> str:
    """A datapath id as the API shows it: 16 lower-case hex digits, as ``ovs-ofctl`` and Ryu's dpid_lib print it."""
    return f"{dpid:016x}"


@dataclass(frozen=True, slots=True)
class DecisionView:
    """The last URL-policy decision for a device: ``verdict`` (policy.types.Verdict value) and its reason code."""

    verdict: str
    reason: str
    at: float  # seconds since the epoch, as the controller saw them


@dataclass(frozen=True, slots=True)
class DeviceView:
    mac: str  # lower-case colon form
    dpid: str  # dpid_hex()
    port: int
    url: str | None  # the URL whose file is enforced (None: nothing accepted yet)
    via: str  # how the URL was announced: dhcpv4 | dhcpv6 | lldp | ...
    state: str  # enforcement state (quarantined | enforced | absent) or trust state (pending-approval, ...)
    signer: str | None  # the pinned signer (CA key id and subject), None when unsigned or unknown
    profile_id: int | None  # the compiled profile the device's flows point at (None: quarantine profile only)
    flow_count: int
    last_decision: DecisionView | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One file ever accepted for the device (the rollback list, oldest first)."""

    url: str
    sha256: str
    at: float


@dataclass(frozen=True, slots=True)
class PendingView:
    """The URL change in flight: status fetching | needs-approval | approved, and why. ``sha256``: the digest of its
    file -- refused after a fetch (needs-approval), or approved -- that an approval must name; None while it is being
    fetched, or when it was refused on its URL alone and never fetched. ``at``: since when it is the pending one."""

    url: str
    status: str
    reason: str
    sha256: str | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class DeviceDetail(DeviceView):
    """A device with its URL history and the flows it holds (serialised flat: DeviceView's fields, then these)."""

    history: tuple[HistoryEntry, ...] = ()
    pending: PendingView | None = None
    flows: tuple[str, ...] = ()  # one line per flow, in ovs-ofctl dump-flows style


@dataclass(frozen=True, slots=True)
class AlertView:
    code: str  # stable alert code (quarantined, spoofed-announcement, bad-url, ...)
    mac: str
    dpid: str  # dpid_hex()
    port: int
    url: str
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an approve / revoke / forget / my-controller change did: ``ok`` with its reason code, or a refusal.

    A refusal maps to HTTP 404 for ``unknown-device`` and ``unknown-entry``, 400 for ``bad-url``,
    ``bad-url:<gate reason>``, ``bad-field``, ``bad-address`` and ``too-broad`` (the operator's input was wrong), 503
    for ``store-failed`` and ``trust-store-failed`` (the controller's state files failed; retry later) and 409 for
    everything else (the device's state does not allow it).
    """

    ok: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class MyControllerEntryView:
    """One MUD URL's my-controller addresses; ``source`` operator (set over the API) or settings (the config)."""

    url: str
    addresses: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class MyControllerTable:
    """``GET /mud/v1/my-controller``: the settings' default list (for every URL without an entry) and the per-URL
    entries sorted by URL, an operator entry in place of the settings' one for the same URL."""

    default: tuple[str, ...]
    entries: tuple[MyControllerEntryView, ...]


@dataclass(frozen=True, slots=True)
class DnsAddressView:
    """An address bound to a DNS name, and how long until it expires (0 once due: the next expiry pass unbinds it)."""

    address: str
    expires_in_s: float


@dataclass(frozen=True, slots=True)
class DnsNameView:
    """A watched DNS name (normalised: lower case, no trailing dot), the MUD URLs whose profiles use it, and the
    addresses it stands for now (IPv4 first, each family by value); none until a configured resolver answers."""

    name: str
    profiles: tuple[str, ...]
    addresses: tuple[DnsAddressView, ...]


@dataclass(frozen=True, slots=True)
class DnsTable:
    """``GET /mud/v1/dns``: the watched names (sorted), the device queries still awaiting their answer, and every
    counter of the binding table -- among them the answers ignored and why (``not-resolver``, ``unsolicited``,
    ``wrong-txid``, ``wrong-client``: spoofed or unasked-for; ``rcode``, ``not-watched``, ``no-addresses``)."""

    names: tuple[DnsNameView, ...]
    outstanding_queries: int
    counters: dict[str, int]  # a fresh dict per response (asdict copies it), sorted by name


class Backend(Protocol):
    """What the enforcer offers the API. MACs arrive normalised (lower-case colon form); ``limit`` is 1..1000."""

    def devices(self) -> list[DeviceView]: ...

    def device(self, mac: str) -> DeviceDetail | None: ...

    def alerts(self, limit: int) -> list[AlertView]:
        """The newest ``limit`` alerts, newest first."""
        ...

    def approve(self, mac: str, url: str, sha256: str, chosen: bool) -> ActionResult:
        """Approve the file ``sha256`` at ``url``: the device's pending change as reviewed (refused with
        ``pending-changed`` when it is not that URL and digest, ``pending-fetching`` while the policy fetches it,
        ``nothing-to-approve`` when there is none), or (``chosen``) a URL of the operator's choosing."""
        ...

    def revoke(self, mac: str) -> ActionResult:
        """Withdraw the device's trust: quarantine until an operator approves a URL again."""
        ...

    def forget(self, mac: str) -> ActionResult:
        """Drop the device, its trust record and its flows: it starts again from first use."""
        ...

    def my_controllers(self) -> MyControllerTable: ...

    def set_my_controller(self, url: str, addresses: list[str]) -> ActionResult:
        """Set the operator's my-controller entry for ``url`` (reason ``set``), or refuse: ``bad-url:<gate reason>``,
        ``bad-field``, ``bad-address``, ``too-broad``."""
        ...

    def clear_my_controller(self, url: str) -> ActionResult:
        """Drop the operator's entry for ``url`` (reason ``cleared``: the settings apply again), or refuse:
        ``unknown-entry`` (none set), ``bad-url:<gate reason>``."""
        ...

    def dns(self, name: str | None) -> DnsTable:
        """The DNS binding table; ``name`` (normalised by the API) keeps only that watched name (none: no match)."""
        ...


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes  # JSON (UTF-8, ASCII-only in practice)
    headers: Mapping[str, str] = field(default_factory=dict)
