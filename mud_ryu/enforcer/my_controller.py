"""The ``my-controller`` abstraction (RFC 8520 s8): which addresses "the controller(s) the local network configured
for this MUD URL" are, from the settings and from durable operator entries set over the REST API.

Why a module of its own: an operator entry is input that decides what a device may reach, so it is checked here
once, the same way for the API, the CLI's server and the store's read-back, before anything is persisted or
compiled. The checks refuse rather than widen: a prefix of length 0 would open the device to everything
(``too-broad``), a host address with a prefix (``10.0.0.5/24``) is refused instead of guessing which the operator
meant, and a URL is kept only in the URL gate's canonical form so the entry matches the profile keyed by it.

Precedence: an operator entry for a URL replaces the settings for that URL (their per-URL entry or the default
list); clearing it falls back to them. The pure functions here take values, so the enforcer and the tests share them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mud_ryu.errors import ReasonError
from mud_ryu.fetch.urlgate import UrlRejected, check_mud_url
from mud_ryu.mudfile.model import MudFile

MAX_ADDRESSES = 16
MAX_ADDRESS_CHARS = 64  # a bracket-free IPv6 prefix needs at most 43
REASONS = frozenset({"bad-url", "bad-field", "bad-address", "too-broad", "unknown-entry"})  # bad-url:<gate reason>
SOURCE_OPERATOR = "operator"
SOURCE_SETTINGS = "settings"


class MyControllerRefused(ReasonError):
    """An operator entry refused; ``reason`` is ``bad-url:<gate reason>`` or one of :data:`REASONS`."""


@dataclass(frozen=True, slots=True)
class MyControllerEntry:
    url: str
    addresses: tuple[str, ...]
    source: str  # SOURCE_OPERATOR | SOURCE_SETTINGS


def canonical_url(raw: object) -> str:
    """The URL gate's canonical form, or ``bad-url:<gate reason>``."""
    try:
        return check_mud_url(raw).url
    except UrlRejected as rejected:
        raise MyControllerRefused(f"bad-url:{rejected.reason}", rejected.message) from None


def canonical_address(raw: object) -> str:
    """One address (``10.0.0.12``, ``2001:db8::1``) or prefix (``10.0.0.0/24``) in its canonical text; a
    full-length prefix is written as the address."""
    if not isinstance(raw, str):
        raise MyControllerRefused("bad-field", f"an address must be a string, not {type(raw).__name__}")
    text = raw.strip()
    shown = text[:MAX_ADDRESS_CHARS]
    if not text or len(text) > MAX_ADDRESS_CHARS or not text.isascii() or "%" in text:
        raise MyControllerRefused("bad-address", f"not an IPv4/IPv6 address or prefix: {shown!r}")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        detail = "host bits set: give the network address" if "host bits set" in str(error) else "not an address"
        raise MyControllerRefused("bad-address", f"{shown!r}: {detail}") from None
    if network.prefixlen == 0:
        raise MyControllerRefused("too-broad", f"{shown!r} would let the device reach every address")
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def check_entry(url: object, addresses: object) -> tuple[str, tuple[str, ...]]:
    """An operator entry in canonical form: the gated URL and 1..16 addresses, duplicates collapsed (first kept)."""
    canonical = canonical_url(url)
    if not isinstance(addresses, list | tuple) or not 1 <= len(addresses) <= MAX_ADDRESSES:
        raise MyControllerRefused("bad-field", f"addresses must be a list of 1 to {MAX_ADDRESSES} addresses")
    seen: dict[str, None] = {}
    for raw in addresses:
        seen.setdefault(canonical_address(raw), None)
    return canonical, tuple(seen)


def _settings_key(url: str) -> str:
    """A URL in the gate's canonical form when the gate accepts it (so an operator entry and a settings entry for
    the same URL meet), else as written."""
    try:
        return check_mud_url(url).url
    except UrlRejected:
        return url


def entries(by_url: Mapping[str, tuple[str, ...]], operator: Mapping[str, tuple[str, ...]]) -> list[MyControllerEntry]:
    """Every per-URL entry, sorted by URL; an operator entry wins over the settings' entry for the same URL."""
    merged = {_settings_key(url): MyControllerEntry(_settings_key(url), tuple(a), SOURCE_SETTINGS)
              for url, a in by_url.items()}  # fmt: skip
    merged.update((url, MyControllerEntry(url, tuple(a), SOURCE_OPERATOR)) for url, a in operator.items())
    return [merged[url] for url in sorted(merged)]


def view(
    mud_urls: Iterable[str],
    default: tuple[str, ...],
    by_url: Mapping[str, tuple[str, ...]],
    operator: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str, ...]]:
    """The addresses ``my-controller`` expands to for each of ``mud_urls`` (files' own mud-urls, which the
    compiler looks up as written): the operator's entry for the URL's canonical form, else the settings' per-URL
    entry, else the default list. A URL absent here expands to nothing: its my-controller ACEs compile to no flows
    (never widened)."""
    settings = {_settings_key(url): tuple(a) for url, a in by_url.items()} if by_url else {}
    merged: dict[str, tuple[str, ...]] = {}
    for url in mud_urls:
        exact = url in operator or url in settings or not (operator or settings)
        key = url if exact else _settings_key(url)
        merged[url] = operator.get(key, settings.get(key, default))
    return merged


def uses_my_controller(mud: MudFile) -> bool:
    """Whether any ACE of the file names my-controller (only such profiles change when an entry does)."""
    return any(
        ace.matches.mud is not None and ace.matches.mud.my_controller
        for acl in (*mud.from_device, *mud.to_device)
        for ace in acl.aces
    )


def canonical_url_or_none(raw: str) -> str | None:
    """The canonical form of a URL a file names, or None when the gate refuses it (it then matches no entry)."""
    try:
        return check_mud_url(raw).url
    except UrlRejected:
        return None
