"""The MUD URL gate: decide, before any network I/O, whether a MUD URL may be fetched at all.

Why a gate of its own: a MUD URL arrives from an untrusted device (DHCP option 161, LLDP) and is later used to
open a connection and to compare against earlier URLs (RFC 8520 section 5.5, draft-ietf-iotops-mud-acceptable-urls
"small changes": same scheme, host, port and path segments except the last). Both uses are only safe when every
component reading the URL sees the same thing. The gate therefore

* accepts only a deliberately narrow subset of RFC 3986: ``https://`` + LDH host [+ port] + a path of non-empty,
  non-dot segments, with no userinfo, query, fragment, backslash, encoded separators or non-ASCII;
* splits the URL itself and then requires that urllib3's ``parse_url`` (what ``requests`` uses to connect) and
  ``urllib.parse.urlsplit`` read the same scheme, host, port and path -- a URL two parsers disagree on is an attack
  surface (host confusion, SSRF), so it is refused rather than interpreted;
* returns one canonical string (lower-case scheme and host, default port dropped, upper-case percent hex, everything
  else byte-exact) plus its percent-encoded path segments, so later comparisons are plain tuple comparisons.

The gate is pure: no DNS, no sockets, no clock. Resolving the host and checking the resolved addresses is the
fetcher's job (THREATS.md row 4); refusing IP literals here keeps obfuscated literals (``0x7f000001``,
``2130706433``, ``0177.0.0.1``, ``127.1``) from ever reaching a resolver that would honour them.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass

import urllib3.exceptions
import urllib3.util

from mud_ryu.errors import ReasonError

DEFAULT_PORT = 443

# Stable reason codes (log, REST API and metrics key on these strings).
REASONS: frozenset[str] = frozenset(
    {
        "not-str",
        "empty",
        "too-long",
        "non-ascii",
        "control-char",
        "bad-char",
        "backslash",
        "not-https",
        "userinfo",
        "ip-literal",
        "bad-host",
        "bad-port",
        "bad-percent",
        "encoded-separator",
        "dot-segment",
        "empty-segment",
        "query",
        "fragment",
        "no-path",
        "parser-disagreement",
    }
)

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A last label that inet_aton-style parsers (and the WHATWG URL standard) read as a number makes the whole host
# an IPv4 address: 127.1, 0x7f000001, 2130706433, 0177.0.0.1. No valid DNS TLD is all-numeric (RFC 3696 s2).
_NUMERIC_LABEL_RE = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_PERCENT_RE = re.compile(r"%(.?.?)")
_VALID_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_HEX2_RE = re.compile(r"[0-9A-Fa-f]{2}")
# RFC 3986 pchar minus "%" (checked separately): unreserved / sub-delims / ":" / "@".
_PCHAR = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@")
# Encoded "/", "\\", "." and NUL change what a server or a later parser treats as a segment boundary.
_ENCODED_SEPARATORS = frozenset({"2F", "5C", "2E", "00"})


class UrlRejected(ReasonError):
    """A MUD URL refused by the gate; ``reason`` is a stable code from REASONS, ``message`` says why."""


@dataclass(frozen=True, slots=True)
class MudUrl:
    """A gated MUD URL in canonical form."""

    url: str  # canonical form: what is fetched, stored and compared
    host: str  # lower-case ASCII host, no trailing dot (an IPv6 literal without brackets)
    port: int  # 443 when absent
    path_segments: tuple[str, ...]  # canonical, still percent-encoded segments

    @property
    def authority(self) -> str:
        """host[:port when not 443], the RFC 8520 "manufacturer" authority."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORT else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class GateOptions:
    """Lab switches: ``allow_ip_literals`` admits canonical dotted-quad IPv4 and bracketed IPv6 hosts only."""

    allow_ip_literals: bool = False
    max_octets: int = 255


def _reject(reason: str, message: str) -> UrlRejected:
    return UrlRejected(reason, message)


def _check_characters(raw: str) -> None:
    if not raw.isascii():
        raise _reject("non-ascii", "the URL contains non-ASCII characters")
    for ch in raw:
        if ord(ch) < 0x20 or ord(ch) == 0x7F or ch == " ":
            raise _reject("control-char", f"the URL contains a space or control character {ch!r}")
    if "\\" in raw:
        raise _reject("backslash", "a backslash is read as '/' by some parsers and not by others")


def _split_scheme(raw: str) -> str:
    """Return what follows "https://"."""
    match = _SCHEME_RE.match(raw)
    if match is None or match.group(0).lower() != "https:":
        raise _reject("not-https", "only https:// MUD URLs are fetched (RFC 8520 section 1.5)")
    rest = raw[match.end() :]
    if not rest.startswith("//"):
        raise _reject("bad-host", "https: must be followed by //authority")
    return rest[2:]


def _check_ip_literal(host: str, bracketed: bool, options: GateOptions) -> str:
    """Return the canonical IP host, or refuse it."""
    if not options.allow_ip_literals:
        raise _reject("ip-literal", f"IP literal host {host!r} is not allowed")
    if "%" in host:
        raise _reject("ip-literal", "IPv6 zone identifiers name a local interface, not a MUD server")
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = (
            ipaddress.IPv6Address(host) if bracketed else ipaddress.IPv4Address(host)
        )
    except ValueError:
        raise _reject("ip-literal", f"{host!r} is not a canonical IP literal") from None
    if str(addr) != host:
        # Only the canonical spelling is allowed so that equal addresses compare equal as strings.
        raise _reject("ip-literal", f"IP literal {host!r} is not in canonical form {addr}")
    return host


def _split_host_port(authority: str, options: GateOptions) -> tuple[str, int]:
    if "@" in authority:
        raise _reject("userinfo", "userinfo (user@) in a MUD URL is refused")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _reject("bad-host", "unterminated IPv6 literal")
        host, after = authority[1:end].lower(), authority[end + 1 :]
        if after and not after.startswith(":"):
            raise _reject("bad-host", "junk after an IPv6 literal")
        host = _check_ip_literal(host, True, options)
        port_text: str | None = after[1:] if after else None
    else:
        host_text, colon, port_part = authority.partition(":")
        port_text = port_part if colon else None
        host = _check_hostname(host_text.lower(), options)
    return host, _check_port(port_text)


def _check_hostname(host: str, options: GateOptions) -> str:
    if not host:
        raise _reject("bad-host", "empty host")
    labels = host.split(".")
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]) or (
        len(labels) > 1 and not labels[-1] and _NUMERIC_LABEL_RE.fullmatch(labels[-2])
    ):
        return _check_ip_literal(host, False, options)
    if host.endswith("."):
        raise _reject("bad-host", "a trailing-dot host names the same server under a different string")
    if len(host) > 253:
        raise _reject("bad-host", "host longer than 253 octets")
    for label in labels:
        if not label:
            raise _reject("bad-host", f"empty label in host {host!r}")
        if not _LABEL_RE.fullmatch(label):
            raise _reject("bad-host", f"label {label!r} is not an LDH hostname label")
    return host


def _check_port(port_text: str | None) -> int:
    if port_text is None:
        return DEFAULT_PORT
    if not port_text.isdigit() or not port_text.isascii():
        raise _reject("bad-port", f"port {port_text!r} is not a decimal number")
    if port_text.startswith("0"):
        # Also refuses port 0; leading zeros would give one port two spellings.
        raise _reject("bad-port", f"port {port_text!r} is 0 or has leading zeros")
    if len(port_text) > 5 or int(port_text) > 65535:
        raise _reject("bad-port", f"port {port_text!r} is out of range")
    return int(port_text)


def _canonical_path(path: str) -> tuple[str, tuple[str, ...]]:
    """Check the path and return it with upper-case percent hex, plus its segments."""
    if path in ("", "/"):
        raise _reject("no-path", "the MUD URL names no file")
    for ch in path:
        if ch != "/" and ch != "%" and ch not in _PCHAR:
            raise _reject("bad-char", f"character {ch!r} is not allowed unencoded in a URL path")

    def upper_escape(match: re.Match[str]) -> str:
        hex2 = match.group(1)
        if not _HEX2_RE.fullmatch(hex2):
            raise _reject("bad-percent", f"malformed percent escape %{hex2!r}")
        if hex2.upper() in _ENCODED_SEPARATORS:
            raise _reject("encoded-separator", f"%{hex2} encodes a separator or NUL")
        return "%" + hex2.upper()

    canonical = _PERCENT_RE.sub(upper_escape, path)
    segments = tuple(canonical.split("/")[1:])
    for segment in segments:
        if segment in (".", ".."):
            raise _reject("dot-segment", "dot-segments move the URL outside its path")
    for segment in segments:
        if not segment:
            raise _reject("empty-segment", "empty path segment (// or a trailing /)")
    return canonical, segments


def _upper_hex(path: str | None) -> str | None:
    """Parsers differ only in escape hex case, which the gate canonicalises anyway."""
    if path is None:
        return None
    return _VALID_ESCAPE_RE.sub(lambda m: m.group(0).upper(), path)


def _cross_check(url: str, host: str, port: int, path: str) -> None:
    """Require urllib3 (the fetcher's parser) and urllib.parse to read ``url`` exactly as the gate did."""
    try:
        u3 = urllib3.util.parse_url(url)
        split = urllib.parse.urlsplit(url)
        split_port = split.port
    except (urllib3.exceptions.LocationParseError, ValueError) as exc:
        raise _reject("parser-disagreement", f"a URL parser refused the URL: {exc}") from None
    bracketed = f"[{host}]" if ":" in host else host
    u3_view = (u3.scheme, u3.host, u3.port or DEFAULT_PORT, _upper_hex(u3.path), u3.auth, u3.query, u3.fragment)
    split_view = (
        split.scheme,
        split.hostname,
        split_port or DEFAULT_PORT,
        _upper_hex(split.path),
        split.username,
        split.query or None,
        split.fragment or None,
    )
    ours = ("https", bracketed, port, path, None, None, None)
    if u3_view != ours or split_view != ("https", host, port, path, None, None, None):
        raise _reject("parser-disagreement", f"parsers disagree: gate {ours}, urllib3 {u3_view}, urllib {split_view}")


def check_mud_url(raw: object, options: GateOptions = GateOptions()) -> MudUrl:
    """Gate one MUD URL; return its canonical form or raise UrlRejected (never any other exception)."""
    if not isinstance(raw, str):
        raise _reject("not-str", f"a MUD URL must be a str, not {type(raw).__name__}")
    if not raw:
        raise _reject("empty", "empty MUD URL")
    if len(raw.encode("utf-8", "surrogatepass")) > options.max_octets:
        raise _reject("too-long", f"MUD URL longer than {options.max_octets} octets")
    _check_characters(raw)
    rest = _split_scheme(raw)
    end = len(rest)
    for delim in "/?#":
        idx = rest.find(delim)
        if 0 <= idx < end:
            end = idx
    authority, tail = rest[:end], rest[end:]
    host, port = _split_host_port(authority, options)
    query_at, fragment_at = tail.find("?"), tail.find("#")
    if fragment_at >= 0 and (query_at < 0 or fragment_at < query_at):
        raise _reject("fragment", "a fragment in a MUD URL is refused")
    if query_at >= 0:
        raise _reject("query", "a query in a MUD URL is refused")
    path, segments = _canonical_path(tail)
    url_host = f"[{host}]" if ":" in host else host
    url = f"https://{url_host}{'' if port == DEFAULT_PORT else f':{port}'}{path}"
    # Both the raw string (what the device sent) and the canonical one (what is fetched) must read the same.
    _cross_check(raw, host, port, path)
    _cross_check(url, host, port, path)
    return MudUrl(url=url, host=host, port=port, path_segments=segments)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A remembered rejection: enough to raise the same :class:`UrlRejected` again."""

    reason: str
    message: str


class UrlGateMemo:
    """:func:`check_mud_url` with a bounded LRU of its answers, keyed by the exact string the device sent.

    Why: every DHCP renewal and LLDP refresh re-announces the same string, and the gate (two URL parsers
    cross-checked) is most of what a renewal costs. The gate is pure and its answers are frozen values, so a
    remembered answer is the answer. A rejection is remembered as its reason and message and raised again as a
    new :class:`UrlRejected` (callers see exactly what the gate would have raised). Bounded two ways, so a device
    cycling through URLs cannot grow memory: at most ``max_entries`` answers (least recently used go first), and
    only strings within the gate's own length limit are remembered (a longer one is refused cheaply anyway).
    One memo per owner (no module-level cache): its contents are part of the owner's state, not global state.
    """

    def __init__(self, options: GateOptions = GateOptions(), max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._options = options
        self._max_entries = max_entries
        self._answers: OrderedDict[str, MudUrl | _Refusal] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def check(self, raw: object) -> MudUrl:
        """Same contract as :func:`check_mud_url`: the canonical URL, or UrlRejected (never another exception)."""
        # Only exact str keys: a str subclass could compare or hash unlike the string the gate parsed.
        if type(raw) is not str or len(raw) > self._options.max_octets:
            return check_mud_url(raw, self._options)
        answer = self._answers.get(raw)
        if answer is None:
            try:
                answer = check_mud_url(raw, self._options)
            except UrlRejected as rejected:
                answer = _Refusal(rejected.reason, rejected.message)
            self._answers[raw] = answer
            if len(self._answers) > self._max_entries:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(raw)
        if isinstance(answer, _Refusal):
            raise UrlRejected(answer.reason, answer.message)
        return answer
