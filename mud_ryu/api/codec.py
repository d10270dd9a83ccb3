"""How the operator REST API reads a request and writes a response: its refusal, the parsed request, JSON both ways.

Shared by :func:`mud_ryu.api.handlers.handle` and the resource handlers behind it; nothing here routes, authorises
or calls the backend. What it reads is attacker text, so it refuses rather than repairs: a MAC path segment must be
exactly a MAC, a query string may hold only the keys a route allows, each once, and a body must be a JSON object
(``Content-Type: application/json``, UTF-8, decoded by :mod:`strictjson`) with known keys. What it writes is
capped: every string in a response body is cut to ``MAX_STRING_CHARS`` (device-supplied URLs and messages are
attacker text; ``json.dumps`` escapes them), and :func:`printable` makes such text safe for a log line or a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from mud_ryu.api.types import Response
from mud_ryu.compiler.context import normalize_mac
from mud_ryu.mudfile.strictjson import JSONError, loads_object

MAX_STRING_CHARS = 2048  # any string in a response body
MAX_MAC_CHARS = 64
JSON_HEADERS: Mapping[str, str] = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
# The API's own error codes; a backend refusal adds its ActionResult.reason.
ERROR_CODES = frozenset(
    {
        "not-found",
        "encoded-separator",
        "ambiguous-path",
        "method-not-allowed",
        "token-not-configured",
        "missing-token",
        "bad-token",
        "bad-mac",
        "bad-query",
        "bad-limit",
        "bad-name",
        "body-too-large",
        "unsupported-media-type",
        "bad-json",
        "unknown-field",
        "bad-field",
        "missing-field",
        "unknown-device",
        "unknown-entry",
        "bad-address",
        "too-broad",
        "internal",
    }
)


class ApiError(Exception):
    """A refusal with its HTTP status and stable code; raised anywhere below ``handlers.handle``, answered by it."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: Mapping[str, str] = headers or {}


@dataclass(frozen=True, slots=True)
class Request:
    """A request as its handler sees it, its path routed and its MAC and query already checked."""

    method: str
    mac: str  # normalised; "" on routes without one
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


# ---- decoding ------------------------------------------------------------------------------------------------


def parse_mac(raw: str) -> str:
    try:
        # normalize_mac forgives spaces around a MAC; a path segment should not carry any. Too long is refused, never
        # cut: a cut segment ("<mac>   ...junk") would name the device its first characters spell.
        if raw != raw.strip() or len(raw) > MAX_MAC_CHARS:
            raise ValueError(raw)
        return normalize_mac(raw)
    except ValueError:
        raise ApiError(400, "bad-mac", f"not a MAC address: {printable(raw, 64)!r}") from None


def parse_query(raw: str, allowed: frozenset[str]) -> Mapping[str, str]:
    if not raw:
        return {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True, max_num_fields=8)
    except ValueError:
        raise ApiError(400, "bad-query", "malformed query string") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ApiError(400, "bad-query", f"unknown query parameter {printable(key, 64)!r}")
        if key in query:
            raise ApiError(400, "bad-query", f"query parameter {key!r} given twice")
        query[key] = value
    return query


def parse_body(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty body), holding only ``allowed`` keys."""
    if not request.body.strip():
        return {}
    media, _, params = request.headers.get("content-type", "").partition(";")
    charset = params.strip().lower().replace(" ", "")
    if media.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
        raise ApiError(415, "unsupported-media-type", "send the body as Content-Type: application/json (UTF-8)")
    try:
        document = loads_object(request.body)
    except JSONError as error:
        raise ApiError(400, "bad-json", f"{error.reason}: {error.message}") from None
    unknown = sorted(set(document) - allowed)
    if unknown:
        names = ", ".join(repr(printable(k, 64)) for k in unknown[:5])
        raise ApiError(400, "unknown-field", f"unknown field(s) {names}; allowed: {sorted(allowed)}")
    return document


# ---- encoding ------------------------------------------------------------------------------------------------


def _capped(value: object) -> object:
    if isinstance(value, str):
        return value[:MAX_STRING_CHARS]
    if isinstance(value, dict):
        return {key: _capped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_capped(item) for item in value]
    return value


def json_response(status: int, document: Mapping[str, object], headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(_capped(document), ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n"
    return Response(status, body.encode("ascii"), {**JSON_HEADERS, **(headers or {})})


def printable(text: str, limit: int) -> str:
    """Attacker text bound for a log line or a message: capped, one line, no control characters."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])
