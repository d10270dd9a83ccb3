"""The WSGI wrapper routes on the raw request path, so an encoded "/" (%2F) never makes a new path segment.

The environ dicts are built as eventlet.wsgi (Ryu's server) builds them: RAW_PATH_INFO the path as received,
PATH_INFO that path percent-decoded as latin-1 (PEP 3333), SCRIPT_NAME empty; other servers' keys (RAW_URI,
REQUEST_URI) and a server giving no raw path at all are covered too.
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import unquote

import pytest

from mud_ryu.api.wsgi import make_app
from tests.rest_fakes import MAC_A, FakeBackend

TOKEN = "wsgi-test-token"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def eventlet_environ(method: str, target: str, **extra: str) -> dict[str, Any]:
    """What eventlet.wsgi's ``get_environ`` passes for request line ``method target HTTP/1.1``."""
    raw, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "RAW_PATH_INFO": raw,
        "PATH_INFO": unquote(raw, encoding="latin1"),
        "wsgi.input": io.BytesIO(b""),
    }
    if query:
        environ["QUERY_STRING"] = query
    environ.update(extra)
    return environ


def call(environ: dict[str, Any], backend: FakeBackend) -> tuple[int, dict[str, Any]]:
    started: list[str] = []
    body = b"".join(make_app(backend, TOKEN)(environ, lambda status, headers: started.append(status)))
    return int(started[0].split()[0]), json.loads(body)


def _mac(escaped_colons: bool = False) -> str:
    return MAC_A.replace(":", "%3A") if escaped_colons else MAC_A


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", f"/mud/v1/devices/{MAC_A}%2Fapprove"),  # PATH_INFO alone reads .../approve: the approve route
        ("POST", f"/mud/v1/devices/{MAC_A}%2frevoke"),
        ("POST", f"/mud/v1/devices%2F{MAC_A}/revoke"),
        ("GET", f"/mud/v1/devices%2F{MAC_A}"),
        ("DELETE", f"/mud/v1/devices/{MAC_A}%5C"),
        ("GET", f"/mud/v1/devices/{MAC_A}%00"),
        ("GET", f"/mud/v1/devices/{MAC_A}\\x"),
    ],
)
def test_an_encoded_separator_is_refused_before_routing(method: str, target: str) -> None:
    backend = FakeBackend()
    status, document = call(eventlet_environ(method, target, **AUTH), backend)
    assert (status, document["error"]) == (400, "encoded-separator"), document
    assert backend.calls == []


def test_the_raw_path_routes_as_sent() -> None:
    backend = FakeBackend()
    assert call(eventlet_environ("GET", f"/mud/v1/devices/{_mac(escaped_colons=True)}"), backend)[0] == 200
    assert call(eventlet_environ("POST", f"/mud/v1/devices/{MAC_A}/revoke", **AUTH), backend)[0] == 200
    assert backend.calls == [("device", MAC_A), ("revoke", MAC_A)]
    # A literal "%" sent as %25 is decoded once: "%3A" is then text in the MAC, not a colon.
    status, document = call(eventlet_environ("GET", "/mud/v1/devices/00%253A00%253A5e%253A00%253A53%253A0a"), backend)
    assert (status, document["error"]) == (400, "bad-mac")
    # Non-ASCII bytes sent raw reach the environ as latin-1 characters, and the MAC check as what they spell.
    status, document = call(eventlet_environ("GET", "/mud/v1/devices/\xc3\xa9"), backend)
    assert (status, document["error"]) == (400, "bad-mac") and "\u00e9" in document["message"]


def test_the_query_string_is_not_part_of_the_path() -> None:
    backend = FakeBackend()
    status, document = call(eventlet_environ("GET", "/mud/v1/alerts?limit=1"), backend)
    assert status == 200 and len(document["alerts"]) == 1
    # Apache, uWSGI and werkzeug give REQUEST_URI (with the query), gunicorn RAW_URI.
    for key in ("REQUEST_URI", "RAW_URI"):
        environ = eventlet_environ("POST", f"/mud/v1/devices/{MAC_A}%2Fapprove?x=1", **AUTH)
        environ[key] = environ.pop("RAW_PATH_INFO") + "?x=1"
        status, document = call(environ, backend)
        assert (status, document["error"]) == (400, "encoded-separator")
        environ = eventlet_environ("GET", f"/mud/v1/devices/{_mac(escaped_colons=True)}")
        environ[key] = environ.pop("RAW_PATH_INFO")
        assert call(environ, backend)[0] == 200
    assert backend.mutations == []


def test_without_a_raw_path_only_one_segment_resources_are_served() -> None:
    backend = FakeBackend()

    def bare(method: str, target: str) -> dict[str, Any]:
        environ = eventlet_environ(method, target, **AUTH)
        del environ["RAW_PATH_INFO"]  # e.g. wsgiref: PATH_INFO is all there is
        return environ

    assert call(bare("GET", "/mud/v1/alerts"), backend)[0] == 200
    for method, target in [
        ("POST", f"/mud/v1/devices/{MAC_A}%2Fapprove"),  # would be routed to approve
        ("POST", f"/mud/v1/devices/{MAC_A}/approve"),  # indistinguishable from it
        ("GET", f"/mud/v1/devices/{MAC_A}"),
    ]:
        status, document = call(bare(method, target), backend)
        assert (status, document["error"]) == (400, "ambiguous-path"), (target, document)
    assert backend.calls == [("alerts", "100")]


def test_a_raw_path_that_disagrees_with_path_info_is_not_trusted() -> None:
    # Something between the server and the app rewrote PATH_INFO: the raw path no longer says what was routed.
    backend = FakeBackend()
    environ = eventlet_environ("POST", f"/mud/v1/devices/{MAC_A}/revoke", **AUTH)
    environ["RAW_PATH_INFO"] = f"/old/mud/v1/devices/{MAC_A}/revoke"
    status, document = call(environ, backend)
    assert (status, document["error"]) == (400, "ambiguous-path")
    assert backend.calls == []


@pytest.mark.parametrize(("script", "raw_script"), [("/api", "/api"), ("/a/b", "/a%2Fb"), ("/a/b", "/a/b")])
def test_a_mount_point_in_script_name_is_skipped_in_its_raw_spelling(script: str, raw_script: str) -> None:
    backend = FakeBackend()
    for tail, expected in [(f"/mud/v1/devices/{MAC_A}/revoke", 200), (f"/mud/v1/devices/{MAC_A}%2Frevoke", 400)]:
        environ = eventlet_environ("POST", raw_script + tail, **AUTH)
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = script, unquote(tail, encoding="latin1")
        assert call(environ, backend)[0] == expected, (raw_script, tail)
    assert backend.calls == [("revoke", MAC_A)]
