"""The acceptable-URL rule of draft-ietf-iotops-mud-acceptable-urls: may a device move from one MUD URL to another?

Pure and URL-only: no fetch, no signer, no history (those belong to :mod:`mud_ryu.policy.table`).

    "The new URL is considered acceptable if it contains the same series of segments in its path, excepting that
    the last segment may be different."  (draft section 5.1, "Small Changes to the MUD URL")

    "For a simple example, if the canonical MUD-URL is http://example.com/hello/there/file.json then any URL that
    starts with http://example.com/hello/there/ would be acceptable"

The comparison is only sound because both URLs went through :func:`mud_ryu.fetch.urlgate.check_mud_url`, which refuses
userinfo, query, fragment, backslash, dot-segments, empty segments and encoded separators (``%2F``, ``%5C``,
``%2E``) and returns one canonical spelling (lower-case host, default port dropped, upper-case percent hex). Without
that, ``/a/b/../../evil/x.json`` or ``/a/b%2F..%2Fx.json`` would compare "same prefix" while naming another
directory. This module depends on that contract and re-checks it defensively (:func:`canonical_problem`): a
:class:`MudUrl` whose parts do not rebuild its own ``url`` exactly, or whose segments could hide a separator, is
refused as ``not-gated`` rather than compared.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mud_ryu.fetch.urlgate import DEFAULT_PORT, MudUrl

# Stable reason codes of a refused URL change.
URL_CHANGE_REASONS: frozenset[str] = frozenset(
    {"not-gated", "other-scheme", "other-host", "other-port", "path-depth", "other-path-prefix"}
)

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
# What the gate leaves in a segment: RFC 3986 pchar (minus '%') plus valid, non-separator escapes.
_SEGMENT_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-F]{2})+")
_FORBIDDEN_ESCAPES = ("%2F", "%5C", "%2E", "%00")


class ChangeKind(enum.Enum):
    SAME = "same"  # the very same canonical URL
    SMALL = "small"  # same scheme, host, port and path except the last segment
    REJECT = "reject"  # anything else; ``reason`` says which part differs


@dataclass(frozen=True, slots=True)
class UrlChange:
    """The verdict of :func:`check_url_change`; ``reason`` is "" unless ``kind`` is REJECT."""

    kind: ChangeKind
    reason: str = ""
    message: str = ""

    @property
    def acceptable(self) -> bool:
        return self.kind is not ChangeKind.REJECT


_SAME = UrlChange(ChangeKind.SAME)
_SMALL = UrlChange(ChangeKind.SMALL)


def scheme_of(url: MudUrl) -> str:
    return url.url.partition(":")[0]


def canonical_problem(url: MudUrl) -> str | None:
    """Why ``url`` is not in the gate's canonical form, or None when it is."""
    scheme = scheme_of(url)
    if not _SCHEME_RE.fullmatch(scheme):
        return f"scheme {scheme!r} is not a lower-case RFC 3986 scheme"
    if not url.path_segments:
        return "no path segments"
    for segment in url.path_segments:
        if segment in (".", "..") or not _SEGMENT_RE.fullmatch(segment):
            return f"path segment {segment!r} is empty, a dot-segment or holds a separator"
        if any(escape in segment.upper() for escape in _FORBIDDEN_ESCAPES):
            return f"path segment {segment!r} holds an encoded separator"
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = "" if url.port == DEFAULT_PORT else f":{url.port}"
    rebuilt = f"{scheme}://{host}{port}/{'/'.join(url.path_segments)}"
    if rebuilt != url.url or url.host != url.host.lower() or not url.host:
        return f"its parts rebuild {rebuilt!r}, not {url.url!r}"
    return None


def check_url_change(pinned: MudUrl, new: MudUrl) -> UrlChange:
    """Classify a move from the ``pinned`` (canonical) MUD URL to ``new``: SAME, SMALL or REJECT with a reason.

    Both arguments must come from the URL gate; anything else is REJECT ``not-gated``."""
    for role, url in (("pinned", pinned), ("new", new)):
        problem = canonical_problem(url)
        if problem is not None:
            return UrlChange(ChangeKind.REJECT, "not-gated", f"the {role} URL is not canonical: {problem}")
    if new.url == pinned.url:
        return _SAME
    if scheme_of(new) != scheme_of(pinned):
        return UrlChange(ChangeKind.REJECT, "other-scheme", f"scheme {scheme_of(new)} is not {scheme_of(pinned)}")
    if new.host != pinned.host:
        # RFC 8520 s16: "MUD managers SHOULD NOT accept a usage description for a Thing with the same MAC address
        # that has indicated a change of the URL authority without some additional validation".
        return UrlChange(ChangeKind.REJECT, "other-host", f"host {new.host} is not {pinned.host}")
    if new.port != pinned.port:
        return UrlChange(ChangeKind.REJECT, "other-port", f"port {new.port} is not {pinned.port}")
    if len(new.path_segments) != len(pinned.path_segments):
        return UrlChange(
            ChangeKind.REJECT,
            "path-depth",
            f"{len(new.path_segments)} path segments, not {len(pinned.path_segments)}",
        )
    if new.path_segments[:-1] != pinned.path_segments[:-1]:
        return UrlChange(
            ChangeKind.REJECT,
            "other-path-prefix",
            f"directory /{'/'.join(new.path_segments[:-1])} is not /{'/'.join(pinned.path_segments[:-1])}",
        )
    return _SMALL
