"""The operator REST API (``/mud/v1``) as a framework-free function: request in, :class:`Response` out.

:func:`handle` is the whole API: it routes, authorises, validates and calls a :class:`Backend` (the enforcer).
It never sees a socket or a framework, so the app can serve it from Ryu's WSGI (see :mod:`mud_ryu.api.wsgi`)
and the tests can call it directly. This module holds the routes, the authorisation and each resource's handler;
reading a request and writing a response (the refusal, the parsed request, JSON both ways) is :mod:`mud_ryu.api.codec`.

Rules it keeps (issue 5, THREATS.md row 18):

* reads are open (the app listens on loopback by default); every state-changing call needs
  ``Authorization: Bearer <token>``, compared in constant time; with no token configured they are refused
  (403 ``token-not-configured``) rather than left open;
* every failure is JSON ``{"error": <stable code>, "message": <for people>}`` with a 4xx status; an unexpected
  exception becomes 500 ``internal`` and goes to the log, never into the body;
* ``path`` is the path as sent, percent-encoded; an encoded "/" or backslash (%2F, %5C), a backslash or a NUL
  in it is refused (400 ``encoded-separator``), so no layer can read other segments into it than we route on;
* request bodies are capped, must be a JSON object with known keys, and are decoded by :mod:`strictjson`;
  every string in a response is capped in length (device-supplied URLs and messages are attacker text;
  ``json.dumps`` escapes them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from mud_ryu.api.codec import ApiError, Request, json_response, parse_body, parse_mac, parse_query, printable
from mud_ryu.api.types import ActionResult, Backend, Response
from mud_ryu.dns.types import normalize_name

log = logging.getLogger(__name__)

PREFIX = "/mud/v1/"
MAX_BODY_BYTES = 4096
MAX_PATH_CHARS = 1024
MAX_URL_CHARS = 2048  # an approve URL; the enforcer's URL gate applies the real (255 octet) limit
MAX_MY_CONTROLLER_ADDRESSES = 16  # the enforcer checks the entry itself; this only bounds what reaches it
MAX_ADDRESS_CHARS = 64
SHA256_HEX_CHARS = 64  # an approval's file digest; the enforcer checks the digits
MAX_DNS_NAME_CHARS = 254  # a host name (253) and its trailing dot
DEFAULT_ALERT_LIMIT = 100
MAX_ALERT_LIMIT = 1000
READ_METHODS = frozenset({"GET"})

_Handler = Callable[[Request, Backend], Response]


def handle(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    backend: Backend,
    token: str | None,
    *,
    separators_known: bool = True,
) -> Response:
    """Answer one request. ``path`` may carry a query string; ``token`` None or "" disables state changes.

    ``path`` is the path as the client sent it, still percent-encoded. ``separators_known`` False says the server
    could only give it already decoded and quoted again, so any "/" in it may have been sent as %2F: then only
    the one-segment resources are served (their meaning cannot depend on it), the rest refused (ambiguous-path).
    """
    try:
        lowered = {k.lower(): v for k, v in headers.items()}
        return _dispatch(method, path, lowered, body, backend, token or None, separators_known)
    except ApiError as error:
        return json_response(error.status, {"error": error.code, "message": error.message}, error.headers)
    except Exception:
        log.exception("REST %s %s: internal error", printable(method, 16), printable(path, 200))
        return json_response(500, {"error": "internal", "message": "internal error; see the controller log"})


def _dispatch(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    backend: Backend,
    token: str | None,
    separators_known: bool,
) -> Response:
    raw_path, _, raw_query = path.partition("?")
    methods, raw_mac, allowed_query = _route(raw_path, separators_known)
    handler = methods.get(method)
    if handler is None:
        allow = ", ".join(sorted(methods))
        raise ApiError(405, "method-not-allowed", f"use {allow} on this resource", {"Allow": allow})
    if method not in READ_METHODS:
        _authorize(headers, token)
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "body-too-large", f"request body over {MAX_BODY_BYTES} bytes")
    mac = parse_mac(raw_mac) if raw_mac is not None else ""
    request = Request(method, mac, parse_query(raw_query, allowed_query), headers, body)
    return handler(request, backend)


# An encoded "/" or backslash, or a NUL: whichever layer decodes the path first (a proxy in front, the WSGI
# server's router) sees other segments than the ones we route on, so such paths are refused outright.
_ENCODED_SEPARATORS = ("%2f", "%5c", "%00")


def _route(raw_path: str, separators_known: bool) -> tuple[Mapping[str, _Handler], str | None, frozenset[str]]:
    """(handlers by method, the raw MAC segment or None, allowed query keys) of a path, or 404/400."""
    if len(raw_path) > MAX_PATH_CHARS or not raw_path.startswith(PREFIX):
        raise ApiError(404, "not-found", "no such resource (the API lives under /mud/v1/)")
    lowered = raw_path.lower()
    if any(code in lowered for code in _ENCODED_SEPARATORS) or "\\" in raw_path or "\x00" in raw_path:
        raise ApiError(
            400, "encoded-separator", "an encoded '/' (%2F) or backslash (%5C), a backslash or a NUL in the path"
        )
    # Split before decoding, so an encoded "/" could not make new segments even if it got this far.
    segments = [unquote(s, errors="replace") for s in raw_path[len(PREFIX) :].split("/")]
    if "" in segments:  # "//" or a trailing "/": not a resource of ours
        raise ApiError(404, "not-found", "no such resource")
    if len(segments) > 1 and not separators_known:
        raise ApiError(
            400,
            "ambiguous-path",
            "the server passed no raw request path matching PATH_INFO (RAW_PATH_INFO, RAW_URI or REQUEST_URI), so "
            "a '/' here may have been sent as %2F; this resource cannot be served safely",
        )
    match segments:
        case ["devices"]:
            return {"GET": _list_devices}, None, frozenset()
        case ["devices", mac]:
            return {"GET": _show_device, "DELETE": _forget}, mac, frozenset()
        case ["devices", mac, "approve"]:
            return {"POST": _approve}, mac, frozenset()
        case ["devices", mac, "revoke"]:
            return {"POST": _revoke}, mac, frozenset()
        case ["alerts"]:
            return {"GET": _list_alerts}, None, frozenset({"limit"})
        case ["my-controller"]:
            handlers = {"GET": _list_my_controller, "PUT": _set_my_controller, "DELETE": _clear_my_controller}
            return handlers, None, frozenset({"url"})
        case ["dns"]:
            return {"GET": _show_dns}, None, frozenset({"name"})
    raise ApiError(404, "not-found", "no such resource")


def _authorize(headers: Mapping[str, str], token: str | None) -> None:
    if token is None:
        raise ApiError(403, "token-not-configured", "state-changing calls are disabled: no API token is configured")
    scheme, _, given = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401, "missing-token", "send Authorization: Bearer <token>", {"WWW-Authenticate": 'Bearer realm="mud-ryu"'}
        )
    # Compare digests, so neither the token's content nor its length leaks through timing.
    given_digest = hashlib.sha256(given.strip().encode("utf-8", "replace")).digest()
    expected_digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
    if not hmac.compare_digest(given_digest, expected_digest):
        log.info("REST: a state-changing call with a wrong token was refused")
        raise ApiError(
            401,
            "bad-token",
            "the bearer token is not the configured one",
            {"WWW-Authenticate": 'Bearer realm="mud-ryu", error="invalid_token"'},
        )


# ---- handlers ------------------------------------------------------------------------------------------------


def _list_devices(request: Request, backend: Backend) -> Response:
    return json_response(200, {"devices": [dataclasses.asdict(d) for d in backend.devices()]})


def _show_device(request: Request, backend: Backend) -> Response:
    detail = backend.device(request.mac)
    if detail is None:
        raise ApiError(404, "unknown-device", f"no device {request.mac}")
    return json_response(200, dataclasses.asdict(detail))


def _list_alerts(request: Request, backend: Backend) -> Response:
    raw = request.query.get("limit")
    limit = DEFAULT_ALERT_LIMIT
    if raw is not None:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= MAX_ALERT_LIMIT):
            raise ApiError(400, "bad-limit", f"limit must be an integer from 1 to {MAX_ALERT_LIMIT}")
        limit = int(raw)
    return json_response(200, {"alerts": [dataclasses.asdict(a) for a in backend.alerts(limit)[:limit]]})


def _approve(request: Request, backend: Backend) -> Response:
    # Both the URL and the file digest: an approval names exactly what the operator reviewed (GET devices/<mac>
    # shows them), so a device that replaced its pending change meanwhile gets a 409, not the operator's approval.
    document = parse_body(request, frozenset({"url", "sha256", "chosen"}))
    missing = [name for name in ("url", "sha256") if name not in document]
    if missing:
        raise ApiError(400, "missing-field", f"approve needs {' and '.join(missing)}: the URL and the SHA-256 of the "
                       "file reviewed (its pending change's, as GET /mud/v1/devices/<mac> shows them)")  # fmt: skip
    url, sha256, chosen = document["url"], document["sha256"], document.get("chosen", False)
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise ApiError(400, "bad-field", f"url must be a non-empty string of at most {MAX_URL_CHARS} characters")
    if not isinstance(sha256, str) or len(sha256) != SHA256_HEX_CHARS:
        raise ApiError(400, "bad-field", f"sha256 must be a string of {SHA256_HEX_CHARS} hex digits")
    if not isinstance(chosen, bool):
        raise ApiError(400, "bad-field", "chosen must be true or false")
    return _action("approve", request.mac, backend.approve(request.mac, url, sha256, chosen))


def _revoke(request: Request, backend: Backend) -> Response:
    parse_body(request, frozenset())
    return _action("revoke", request.mac, backend.revoke(request.mac))


def _forget(request: Request, backend: Backend) -> Response:
    parse_body(request, frozenset())
    return _action("forget", request.mac, backend.forget(request.mac))


def _list_my_controller(request: Request, backend: Backend) -> Response:
    if request.query:
        raise ApiError(400, "bad-query", "GET my-controller takes no query parameters")
    return json_response(200, dataclasses.asdict(backend.my_controllers()))


def _set_my_controller(request: Request, backend: Backend) -> Response:
    if request.query:
        raise ApiError(400, "bad-query", "PUT my-controller takes its URL in the body, not the query")
    document = parse_body(request, frozenset({"url", "addresses"}))
    url, addresses = document.get("url"), document.get("addresses")
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise ApiError(400, "bad-field", f"url must be a non-empty string of at most {MAX_URL_CHARS} characters")
    if (
        not isinstance(addresses, list)
        or not 1 <= len(addresses) <= MAX_MY_CONTROLLER_ADDRESSES
        or not all(isinstance(a, str) for a in addresses)
    ):
        raise ApiError(
            400, "bad-field", f"addresses must be a list of 1 to {MAX_MY_CONTROLLER_ADDRESSES} address strings"
        )
    if any(len(a) > MAX_ADDRESS_CHARS for a in addresses):
        raise ApiError(400, "bad-address", f"an address or prefix is at most {MAX_ADDRESS_CHARS} characters")
    return _action("my-controller set", printable(url, 200), backend.set_my_controller(url, list(addresses)))


def _clear_my_controller(request: Request, backend: Backend) -> Response:
    parse_body(request, frozenset())
    url = request.query.get("url")
    if not url or len(url) > MAX_URL_CHARS:
        raise ApiError(400, "bad-query", "give the MUD URL whose entry to clear: ?url=<percent-encoded URL>")
    return _action("my-controller clear", printable(url, 200), backend.clear_my_controller(url))


def _show_dns(request: Request, backend: Backend) -> Response:
    raw = request.query.get("name")
    name = None
    if raw is not None:
        name = normalize_name(raw) if len(raw) <= MAX_DNS_NAME_CHARS else None
        if name is None:
            raise ApiError(400, "bad-name", f"name must be a DNS host name, not {printable(raw, 64)!r}")
    return json_response(200, dataclasses.asdict(backend.dns(name)))


# Refusals that mean the operator's input was wrong (400); the controller's own stores failing (503: the request may
# succeed when retried, and a 409 would blame the device's state); the rest are the target's state (409).
_BAD_INPUT = frozenset({"bad-url", "bad-field", "bad-address", "too-broad"})
_UNAVAILABLE = frozenset({"store-failed", "trust-store-failed"})


def _action(name: str, target: str, result: ActionResult) -> Response:
    log.info("REST %s %s: %s %s", name, target, "ok" if result.ok else "refused", printable(result.reason, 80))
    if result.ok:
        return json_response(200, dataclasses.asdict(result))
    if result.reason in ("unknown-device", "unknown-entry"):
        status = 404
    elif result.reason in _BAD_INPUT or result.reason.startswith("bad-url:"):
        status = 400
    elif result.reason in _UNAVAILABLE:
        status = 503
    else:
        status = 409
    return json_response(status, {"error": result.reason, "message": result.message})
