"""A plain WSGI application around :func:`mud_ryu.rest_api.handle`, for any WSGI server (stdlib only).

The app mounts it under Ryu's WSGI (a ``ControllerBase`` route on ``/mud/v1/{path:.*}`` answering
``req.get_response(app)``); the CLI tests serve it with :mod:`wsgiref`. It reads at most ``MAX_BODY_BYTES + 1``
bytes of a body, so an oversized request is answered 413 without being read into memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from mud_ryu.rest_api import MAX_BODY_BYTES, handle
from mud_ryu.rest_types import Backend

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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


def make_app(backend: Backend, token: str | None) -> WsgiApp:
    """The WSGI callable serving ``/mud/v1`` from ``backend``; ``token`` None disables state-changing calls."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        # PEP 3333: PATH_INFO is the percent-decoded path as latin-1; undo that, and quote it again because
        # handle() decodes each segment once itself (so a literal "%" is not decoded twice).
        path = quote(path.encode("latin-1", "replace").decode("utf-8", "replace"), safe="/:@!$&'()*+,;=~")
        query = str(environ.get("QUERY_STRING", ""))
        response = handle(
            str(environ.get("REQUEST_METHOD", "")),
            f"{path}?{query}" if query else path,
            _headers(environ),
            _body(environ),
            backend,
            token,
        )
        phrase = HTTPStatus(response.status).phrase
        headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {phrase}", headers)
        return [response.body]

    return app
