"""The routes of the HTTPS lab (``tests/https_lab.py``): their JSON schema, validation and the gzip-bomb builder.

A site is a JSON object mapping a request path (query ignored) to a route object with a ``kind``:

- ``static``: ``status`` (200), ``headers`` ([[name, value], ...]), one body source of ``body`` (UTF-8 text),
  ``body_b64``, ``body_file`` (relative to the site file) or ``fill_bytes`` (+ ``fill``, one character, "x"),
  optional ``etag`` and ``last_modified`` (sent, and honoured with a 304 for If-None-Match / If-Modified-Since),
  ``template`` (false; true: ``${port}`` and ``${slow_tls_port}`` in the body and header values are replaced by
  the lab's ports, e.g. for a ``mud-url`` that must name the URL it was fetched from).
  Content-Length is added unless ``headers`` carries one (so a route can lie about it).
  ``live`` (false; true: ``body_file`` is re-read on every request and, without a fixed ``etag``, the ETag is a
  hash of what was read, so a test can change the content behind one URL).
- ``drip``: a body source, ``interval_ms`` (100), ``content_type`` (application/mud+json), ``headers``,
  ``drip_headers`` (false: the head goes at once, then one body byte per interval; true: the head drips too).
- ``endless-chunked``: ``chunk_bytes`` (16384), ``content_type``: '[' then '0,0,...' chunks until the deadline.
- ``gzip-bomb``: ``decoded_bytes`` (1 GiB of zeros), ``encoding`` ("gzip" or "deflate"), ``content_type``.
- ``huge-headers``: ``line_bytes`` (one header line that long) and/or ``count`` (that many extra headers).
- ``redirect``: ``status`` (301/302/303/307/308, default 302) and ``location`` (``${port}`` and
  ``${slow_tls_port}`` are always replaced by the lab's ports, for same-host redirects).
- ``status``: ``status`` (required), ``body`` (small text), ``content_type`` (text/plain).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

MUD_JSON = "application/mud+json"
BOMB_BLOCK = 1 << 20  # zeros compressed per deflate segment; the compressed segment is repeated, not recomputed

# Upper bounds on route parameters, so a typo cannot make the lab itself exhaust memory or time.
MAX_STATIC_BYTES = 256 << 20
MAX_CHUNK_BYTES = 1 << 20
MAX_DECODED_BYTES = 1 << 32
MAX_LINE_BYTES = 64 << 20
MAX_HEADER_COUNT = 1_000_000
MAX_INTERVAL_MS = 10_000

Headers = tuple[tuple[str, str], ...]


class SiteError(ValueError):
    """The site configuration is malformed."""


@dataclass(frozen=True, slots=True)
class Static:
    status: int
    headers: Headers
    body: bytes
    etag: str | None
    last_modified: str | None
    template: bool = False
    live_file: Path | None = None  # re-read on every request (tests change content behind one URL)


@dataclass(frozen=True, slots=True)
class Drip:
    body: bytes
    interval_s: float
    content_type: str
    headers: Headers
    drip_headers: bool


@dataclass(frozen=True, slots=True)
class EndlessChunked:
    chunk_bytes: int
    content_type: str


@dataclass(frozen=True, slots=True)
class BombStream:
    """A compressed stream of ``decoded_bytes`` zeros held as head + a repeated middle segment + tail (~1 KiB per
    MiB decoded is never materialised as one buffer)."""

    encoding: str
    decoded_bytes: int
    head: bytes
    middle: bytes
    repeats: int
    tail: bytes

    @property
    def length(self) -> int:
        return len(self.head) + len(self.middle) * self.repeats + len(self.tail)

    def pieces(self) -> Iterator[bytes]:
        yield self.head
        batch = max(1, (64 << 10) // max(1, len(self.middle)))  # send ~64 KiB at a time
        left = self.repeats
        while left > 0:
            n = min(batch, left)
            yield self.middle * n
            left -= n
        yield self.tail


@dataclass(frozen=True, slots=True)
class GzipBomb:
    stream: BombStream
    content_type: str


@dataclass(frozen=True, slots=True)
class HugeHeaders:
    line_bytes: int
    count: int


@dataclass(frozen=True, slots=True)
class Redirect:
    status: int
    location: str


@dataclass(frozen=True, slots=True)
class StatusRoute:
    status: int
    body: bytes
    content_type: str


Route = Static | Drip | EndlessChunked | GzipBomb | HugeHeaders | Redirect | StatusRoute


def build_bomb(decoded_bytes: int, encoding: str = "gzip") -> BombStream:
    """Compress ``decoded_bytes`` zeros without ever holding them: Z_FULL_FLUSH after each 1 MiB block resets the
    compressor, so every full block after the first compresses to the same bytes; the checksum is run over the
    same zero block repeatedly."""
    if encoding not in ("gzip", "deflate"):
        raise SiteError(f"bomb encoding must be gzip or deflate, not {encoding!r}")
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate; we write the gzip / zlib wrapper ourselves
    zeros = bytes(BOMB_BLOCK)
    full, rest = divmod(decoded_bytes, BOMB_BLOCK)

    def segment(n: int) -> bytes:
        return comp.compress(zeros if n == BOMB_BLOCK else bytes(n)) + comp.flush(zlib.Z_FULL_FLUSH)

    first = segment(BOMB_BLOCK) if full >= 1 else b""
    middle = segment(BOMB_BLOCK) if full >= 2 else b""
    if full >= 3 and segment(BOMB_BLOCK) != middle:
        raise AssertionError("zlib did not reproduce the flushed segment; cannot repeat it")
    repeats = max(0, full - 1)  # the stream is first + middle * (full - 1); flushed segments carry no history
    tail_deflate = (segment(rest) if rest else b"") + comp.flush(zlib.Z_FINISH)
    if encoding == "gzip":
        crc = 0
        for _ in range(full):
            crc = zlib.crc32(zeros, crc)
        crc = zlib.crc32(bytes(rest), crc)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, mtime 0, best compression
        trailer = struct.pack("<II", crc, decoded_bytes & 0xFFFFFFFF)
    else:
        adler = 1
        for _ in range(full):
            adler = zlib.adler32(zeros, adler)
        adler = zlib.adler32(bytes(rest), adler)
        header = b"\x78\xda"  # zlib, 32 KiB window, best compression
        trailer = struct.pack(">I", adler)
    return BombStream(encoding, decoded_bytes, header + first, middle, repeats, tail_deflate + trailer)


def _int(route: Mapping[str, object], key: str, default: int | None, lo: int, hi: int) -> int:
    value = route.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SiteError(f"{key} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _str(route: Mapping[str, object], key: str, default: str | None) -> str:
    value = route.get(key, default)
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise SiteError(f"{key} must be a one-line string, got {value!r}")
    return value


def _opt_str(route: Mapping[str, object], key: str) -> str | None:
    return _str(route, key, None) if key in route else None


def _headers(route: Mapping[str, object]) -> Headers:
    raw = route.get("headers", [])
    if not isinstance(raw, list):
        raise SiteError("headers must be a list of [name, value]")
    out: list[tuple[str, str]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise SiteError(f"header must be [name, value], got {item!r}")
        name, value = item
        if not name or any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
            raise SiteError(f"header {name!r} is not a valid name/value")
        out.append((name, value))
    return tuple(out)


def _body(route: Mapping[str, object], base_dir: Path) -> bytes:
    sources = [k for k in ("body", "body_b64", "body_file", "fill_bytes") if k in route]
    if len(sources) > 1:
        raise SiteError(f"give at most one body source, got {sources}")
    if not sources:
        return b""
    key, value = sources[0], route[sources[0]]
    if key == "fill_bytes":
        fill = _str(route, "fill", "x")
        if len(fill) != 1:
            raise SiteError("fill must be one character")
        return fill.encode() * _int(route, key, None, 0, MAX_STATIC_BYTES)
    if not isinstance(value, str):
        raise SiteError(f"{key} must be a string")
    if key == "body":
        return value.encode()
    if key == "body_b64":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise SiteError(f"body_b64 is not base64: {exc}") from exc
    path = base_dir / value
    if not path.is_file() or path.stat().st_size > MAX_STATIC_BYTES:
        raise SiteError(f"body_file {path} is missing or too large")
    return path.read_bytes()


def parse_route(route: object, base_dir: Path) -> Route:
    if not isinstance(route, dict):
        raise SiteError("a route must be an object")
    kind = route.get("kind")
    if kind == "static":
        etag, last_modified = _opt_str(route, "etag"), _opt_str(route, "last_modified")
        status = _int(route, "status", 200, 100, 599)
        template = route.get("template", False)
        if not isinstance(template, bool):
            raise SiteError("template must be a boolean")
        live = route.get("live", False)
        if not isinstance(live, bool) or (live and (template or not isinstance(route.get("body_file"), str))):
            raise SiteError("live must be a boolean, needs body_file and excludes template")
        live_file = base_dir / str(route["body_file"]) if live else None
        return Static(status, _headers(route), _body(route, base_dir), etag, last_modified, template, live_file)
    if kind == "drip":
        interval_s = _int(route, "interval_ms", 100, 0, MAX_INTERVAL_MS) / 1000.0
        drip_headers = route.get("drip_headers", False)
        if not isinstance(drip_headers, bool):
            raise SiteError("drip_headers must be a boolean")
        ctype = _str(route, "content_type", MUD_JSON)
        return Drip(_body(route, base_dir), interval_s, ctype, _headers(route), drip_headers)
    if kind == "endless-chunked":
        return EndlessChunked(
            _int(route, "chunk_bytes", 16384, 1, MAX_CHUNK_BYTES), _str(route, "content_type", MUD_JSON)
        )
    if kind == "gzip-bomb":
        decoded = _int(route, "decoded_bytes", 1 << 30, 1, MAX_DECODED_BYTES)
        return GzipBomb(build_bomb(decoded, _str(route, "encoding", "gzip")), _str(route, "content_type", MUD_JSON))
    if kind == "huge-headers":
        line_bytes = _int(route, "line_bytes", 0, 0, MAX_LINE_BYTES)
        count = _int(route, "count", 0, 0, MAX_HEADER_COUNT)
        if not line_bytes and not count:
            raise SiteError("huge-headers needs line_bytes or count")
        return HugeHeaders(line_bytes, count)
    if kind == "redirect":
        status = _int(route, "status", 302, 301, 308)
        if status not in (301, 302, 303, 307, 308):
            raise SiteError(f"redirect status must be 301/302/303/307/308, got {status}")
        return Redirect(status, _str(route, "location", None))
    if kind == "status":
        status = _int(route, "status", None, 100, 599)
        body = route.get("body", f"status {status}\n")
        if not isinstance(body, str):
            raise SiteError("body must be a string")
        return StatusRoute(status, body.encode(), _str(route, "content_type", "text/plain"))
    raise SiteError(f"unknown route kind {kind!r}")


def parse_site(site: object, base_dir: Path) -> dict[str, Route]:
    if not isinstance(site, dict) or not site:
        raise SiteError("the site must be a non-empty object mapping path -> route")
    routes: dict[str, Route] = {}
    for path, route in site.items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise SiteError(f"route path must start with '/', got {path!r}")
        try:
            routes[path] = parse_route(route, base_dir)
        except SiteError as exc:
            raise SiteError(f"{path}: {exc}") from exc
    return routes


def load_site(path: Path) -> dict[str, Route]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SiteError(f"cannot read {path}: {exc}") from exc
    return parse_site(data, path.parent)


def with_ports(site: Mapping[str, Route], ports: Mapping[str, int]) -> dict[str, Route]:
    """The site with ``${name}`` replaced by ``ports[name]`` in redirect locations and template static routes
    (the ports are ephemeral, so a site file cannot know them)."""

    def expand(text: str) -> str:
        for name, port in ports.items():
            text = text.replace("${" + name + "}", str(port))
        return text

    out: dict[str, Route] = {}
    for path, route in site.items():
        if isinstance(route, Redirect):
            route = replace(route, location=expand(route.location))
        elif isinstance(route, Static) and route.template:
            headers = tuple((name, expand(value)) for name, value in route.headers)
            route = replace(route, headers=headers, body=expand(route.body.decode("latin-1")).encode("latin-1"))
        out[path] = route
    return out
