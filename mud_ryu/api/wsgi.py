"""A plain WSGI application around :func:`mud_ryu.api.handlers.handle`, for any WSGI server (stdlib only).

The app mounts it under Ryu's WSGI (a ``ControllerBase`` route on ``/mud/v1/{path:.*}`` answering
``req.get_response(app)``); the CLI tests serve it with :mod:`wsgiref`. It reads at most ``MAX_BODY_BYTES + 1``
bytes of a body, so an oversized request is answered 413 without being read into memory.

It routes on the path as the client sent it. PEP 3333's PATH_INFO is already percent-decoded, so from it alone
``/mud/v1/devices/<mac>%2Fapprove`` and ``/mud/v1/devices/<mac>/approve`` are the same string. Servers pass the
raw path under their own keys (eventlet.wsgi, hence Ryu: RAW_PATH_INFO; gunicorn: RAW_URI; Apache, uWSGI,
werkzeug: REQUEST_URI); it is used only when it decodes to exactly SCRIPT_NAME + PATH_INFO, i.e. nothing rewrote
the path after the server read it. Without one, :func:`mud_ryu.api.handlers.handle` is told the separators are
unknown and serves only what cannot depend on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote

from mud_ryu.api.handlers import MAX_BODY_BYTES, MAX_PATH_CHARS, handle
from mud_ryu.api.types import Backend

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Where servers keep the request target as received, most specific first (RAW_PATH_INFO has no query string).
RAW_PATH_KEYS = ("RAW_PATH_INFO", "RAW_URI", "REQUEST_URI")
# Characters left as they are when a path is put back into percent-encoded form (RFC 3986 pchar, and "/", "%").
_PATH_SAFE = "/%:@!$&'()*+,;=~"


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {key[5:].replace("_", "-"): str(value) for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-")] = str(environ[key])
    return headers


def _body(environ: dict[str, Any]) -> bytes:
    """Up to MAX_BODY_BYTES + 1 bytes (one more than allowed: enough to know it is too big)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    data: bytes = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES + 1))
    return data


def _raw_path(environ: dict[str, Any]) -> str | None:
    """The part of the raw request path that PATH_INFO decodes, still percent-encoded; None when not known."""
    raw = next((environ[k] for k in RAW_PATH_KEYS if isinstance(environ.get(k), str) and environ[k]), None)
    if raw is None:
        return None
    raw = raw.partition("?")[0]
    script, path = str(environ.get("SCRIPT_NAME", "")), str(environ.get("PATH_INFO", ""))
    if len(raw) > 3 * MAX_PATH_CHARS or unquote(raw, encoding="latin-1", errors="replace") != script + path:
        return None  # too long to be ours (each decoded character is at most 3 raw ones), or rewritten on the way
    # Skip the raw spelling of SCRIPT_NAME: whole segments up to a literal "/" until they decode to it.
    decoded, cut = "", 0
    while len(decoded) < len(script) and cut < len(raw):
        end = raw.find("/", cut + 1)
        end = len(raw) if end < 0 else end
        decoded += unquote(raw[cut:end], encoding="latin-1", errors="replace")
        cut = end
    return raw[cut:] if decoded == script else None


def _requoted(text: str, keep_escapes: bool) -> str:
    """``text`` (a PEP 3333 latin-1 string) as percent-encoded ASCII; existing escapes kept if ``keep_escapes``."""
    data = text.encode("latin-1", "replace")
    return quote(data, safe=_PATH_SAFE if keep_escapes else _PATH_SAFE.replace("%", ""))


def make_app(backend: Backend, token: str | None) -> WsgiApp:
    """The WSGI callable serving ``/mud/v1`` from ``backend``; ``token`` None disables state-changing calls."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw = _raw_path(environ)
        if raw is not None:
            path = _requoted(raw, keep_escapes=True)  # non-ASCII bytes sent raw become escapes; the rest is as sent
        else:
            # PATH_INFO is decoded: quote it again, "%" included, because handle() decodes each segment once itself
            # (so a literal "%" is not decoded twice).
            path = _requoted(str(environ.get("PATH_INFO", "")), keep_escapes=False)
        query = str(environ.get("QUERY_STRING", ""))
        response = handle(
            str(environ.get("REQUEST_METHOD", "")),
            f"{path}?{query}" if query else path,
            _headers(environ),
            _body(environ),
            backend,
            token,
            separators_known=raw is not None,
        )
        phrase = HTTPStatus(response.status).phrase
        headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {phrase}", headers)
        return [response.body]

    return app
