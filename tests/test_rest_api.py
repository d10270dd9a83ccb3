"""The /mud/v1 handler: every route, auth, validation, error mapping, and never a traceback (in-memory backend)."""

from __future__ import annotations

import hmac
import json
import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.api.codec import MAX_STRING_CHARS
from mud_ryu.api.handlers import MAX_ALERT_LIMIT, MAX_BODY_BYTES, handle
from mud_ryu.api.types import ActionResult, AlertView, DeviceView, Response
from tests.rest_fakes import MAC_A, MAC_B, SHA2, URL1, URL2, FakeBackend

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_BODY = {"Content-Type": "application/json"}
DEVICE_FIELDS = [
    "mac", "dpid", "port", "url", "via", "state", "signer", "profile_id", "flow_count", "last_decision",
]  # fmt: skip
DETAIL_FIELDS = [*DEVICE_FIELDS, "history", "pending", "flows"]
ALERT_FIELDS = ["code", "mac", "dpid", "port", "url", "message", "at"]


def call(
    method: str,
    path: str,
    backend: FakeBackend,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    token: str | None = TOKEN,
) -> tuple[int, dict[str, Any], Response]:
    response = handle(method, path, headers or {}, body, backend, token)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    document = json.loads(response.body)
    assert isinstance(document, dict)
    if response.status >= 400:
        assert set(document) == {"error", "message"}
    return response.status, document, response


def expect_error(status: int, code: str, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], Response]:
    got_status, document, response = call(*args, **kwargs)
    assert (got_status, document["error"]) == (status, code), document
    return document, response


# ---- reads ---------------------------------------------------------------------------------------------------


def test_list_devices_has_the_stable_fields() -> None:
    backend = FakeBackend()
    status, document, _ = call("GET", "/mud/v1/devices", backend)
    assert status == 200 and list(document) == ["devices"]
    toaster, stranger = document["devices"]
    assert list(toaster) == DEVICE_FIELDS
    assert toaster["mac"] == MAC_A and toaster["dpid"] == "0000000000000001" and toaster["port"] == 3
    assert toaster["last_decision"] == {"verdict": "violation", "reason": "big-change-refused", "at": 1_700_000_100.0}
    assert stranger["dpid"] == "0000000000000abc" and stranger["url"] is None and stranger["last_decision"] is None


@pytest.mark.parametrize("spelling", [MAC_A, MAC_A.upper(), MAC_A.replace(":", "-"), MAC_A.replace(":", "%3A")])
def test_show_device_normalises_the_mac(spelling: str) -> None:
    backend = FakeBackend()
    status, document, _ = call("GET", f"/mud/v1/devices/{spelling}", backend)
    assert status == 200 and list(document) == DETAIL_FIELDS
    assert backend.calls == [("device", MAC_A)]
    assert document["history"] == [{"url": URL1, "sha256": "a" * 64, "at": 1_700_000_000.0}]
    assert document["pending"] == {"url": URL2, "status": "needs-approval", "reason": "big-change-refused",
                                   "sha256": SHA2, "at": 1_700_000_100.0}  # fmt: skip
    assert len(document["flows"]) == 2 and document["flow_count"] == 2


def test_reads_need_no_token_whether_or_not_one_is_configured() -> None:
    for token in (None, TOKEN):
        assert call("GET", f"/mud/v1/devices/{MAC_B}", FakeBackend(), token=token)[0] == 200
        assert call("GET", "/mud/v1/alerts", FakeBackend(), token=token)[0] == 200


def test_unknown_device_is_404() -> None:
    expect_error(404, "unknown-device", "GET", "/mud/v1/devices/02:00:00:00:00:01", FakeBackend())


@pytest.mark.parametrize(
    "mac",
    [
        "00:00:5e:00:53",
        "00:00:5e:00:53:0g",
        "0000.5e00.530a",
        "x" * 500,
        "00:00:5e:00:53:0a%0a",
        "%01",
        f"{MAC_A}{'%20' * 47}X",  # a MAC, padding and junk: too long, refused (never cut to the MAC it starts with)
    ],
)
def test_malformed_mac_is_400_and_never_reaches_the_backend(mac: str) -> None:
    backend = FakeBackend()
    document, _ = expect_error(400, "bad-mac", "GET", f"/mud/v1/devices/{mac}", backend)
    assert backend.calls == [] and len(document["message"]) < 200
    assert "\n" not in document["message"] and "\x00" not in document["message"]


@pytest.mark.parametrize(
    "path",
    [
        f"/mud/v1/devices/{MAC_A}%2Fapprove",
        f"/mud/v1/devices/{MAC_A}%2fapprove",
        f"/mud/v1/devices%2F{MAC_A}",
        f"/mud/v1/devices/{MAC_A}%5Capprove",
        f"/mud/v1/devices/{MAC_A}\\approve",
        "/mud/v1/devices/%00",
        "/mud/v1/alerts%2F",
    ],
)
def test_an_encoded_separator_is_400_and_never_reaches_the_backend(path: str) -> None:
    backend = FakeBackend()
    expect_error(400, "encoded-separator", "POST", path, backend, AUTH)
    assert backend.calls == []


def test_alerts_default_and_explicit_limit() -> None:
    backend = FakeBackend()
    status, document, _ = call("GET", "/mud/v1/alerts", backend)
    assert status == 200 and backend.calls == [("alerts", "100")]
    assert [a["code"] for a in document["alerts"]] == ["spoofed-announcement", "kept-last", "quarantined"]
    assert list(document["alerts"][0]) == ALERT_FIELDS
    status, document, _ = call("GET", "/mud/v1/alerts?limit=2", backend)
    assert status == 200 and len(document["alerts"]) == 2 and backend.calls[-1] == ("alerts", "2")
    assert call("GET", f"/mud/v1/alerts?limit={MAX_ALERT_LIMIT}", backend)[0] == 200


def test_a_backend_returning_more_alerts_than_asked_is_cut_to_the_limit() -> None:
    backend = FakeBackend()
    backend.alerts = lambda limit: backend.alert_log  # type: ignore[method-assign]
    assert len(call("GET", "/mud/v1/alerts?limit=1", backend)[1]["alerts"]) == 1


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "1e3", "", "99999999999999", "١٢", "+5", " 5"])
def test_bad_alert_limit(limit: str) -> None:
    backend = FakeBackend()
    expect_error(400, "bad-limit", "GET", f"/mud/v1/alerts?limit={limit}", backend)
    assert backend.calls == []


@pytest.mark.parametrize(
    "path", ["/mud/v1/alerts?since=5", "/mud/v1/alerts?limit=1&limit=2", "/mud/v1/devices?x=1", "/mud/v1/alerts?&&"]
)
def test_bad_query(path: str) -> None:
    expect_error(400, "bad-query", "GET", path, FakeBackend())


# ---- state changes and auth ----------------------------------------------------------------------------------


def _approve(backend: FakeBackend, body: dict[str, Any], mac: str = MAC_A) -> tuple[int, dict[str, Any]]:
    status, document, _ = call(
        "POST", f"/mud/v1/devices/{mac}/approve", backend, {**AUTH, **JSON_BODY}, json.dumps(body).encode()
    )
    return status, document


def test_approve_names_the_pending_url_and_digest_shown() -> None:
    backend = FakeBackend()
    pending = call("GET", f"/mud/v1/devices/{MAC_A}", backend)[1]["pending"]
    assert pending == {"url": URL2, "status": "needs-approval", "reason": "big-change-refused", "sha256": SHA2,
                       "at": 1_700_000_100.0}  # fmt: skip
    status, document = _approve(backend, {"url": pending["url"], "sha256": pending["sha256"]})
    assert (status, document) == (200, {"ok": True, "reason": "approved", "message": f"{URL2} approved for {MAC_A}"})
    assert backend.mutations == [("approve", MAC_A, URL2, SHA2, "False")]
    assert call("GET", f"/mud/v1/devices/{MAC_A}", backend)[1]["url"] == URL2


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", json.dumps({"url": URL2}).encode(), json.dumps({"sha256": SHA2}).encode(),
     json.dumps({"url": None, "sha256": SHA2}).encode()],
)  # fmt: skip
def test_approve_without_url_and_digest_is_400(body: bytes) -> None:
    backend = FakeBackend()
    code = "bad-field" if b"null" in body else "missing-field"
    document, _ = expect_error(400, code, "POST", f"/mud/v1/devices/{MAC_A}/approve", backend, {**AUTH, **JSON_BODY},
                               body)  # fmt: skip
    assert document["message"] and backend.mutations == []


@pytest.mark.parametrize(
    "body",
    [{"url": URL2, "sha256": SHA2[:-1]}, {"url": URL2, "sha256": 5}, {"url": URL2, "sha256": SHA2 + "c"},
     {"url": URL2, "sha256": SHA2, "chosen": "yes"}],
)  # fmt: skip
def test_approve_with_a_malformed_digest_or_flag_is_400(body: dict[str, Any]) -> None:
    backend = FakeBackend()
    assert _approve(backend, body)[1]["error"] == "bad-field" and backend.mutations == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": URL1, "sha256": SHA2}, "pending-changed"),  # the device's pending change is another URL now
        ({"url": URL2, "sha256": "d" * 64}, "pending-changed"),  # ... or another file than the one reviewed
    ],
)
def test_approving_what_is_no_longer_pending_is_409(body: dict[str, Any], code: str) -> None:
    backend = FakeBackend()
    status, document = _approve(backend, body)
    assert (status, document["error"]) == (409, code)
    assert call("GET", f"/mud/v1/devices/{MAC_A}", backend)[1]["url"] == URL1  # nothing approved


def test_a_chosen_url_is_approved_with_its_digest() -> None:
    backend = FakeBackend()
    status, _ = _approve(backend, {"url": URL1, "sha256": "d" * 64, "chosen": True})
    assert status == 200 and backend.mutations == [("approve", MAC_A, URL1, "d" * 64, "True")]


def test_revoke_then_forget() -> None:
    backend = FakeBackend()
    status, document, _ = call("POST", f"/mud/v1/devices/{MAC_A}/revoke", backend, AUTH)
    assert status == 200 and document["reason"] == "revoked"
    assert call("GET", f"/mud/v1/devices/{MAC_A}", backend)[1]["state"] == "quarantined"
    expect_error(409, "already-quarantined", "POST", f"/mud/v1/devices/{MAC_A}/revoke", backend, AUTH)
    status, document, _ = call("DELETE", f"/mud/v1/devices/{MAC_A}", backend, AUTH)
    assert status == 200 and document == {"ok": True, "reason": "forgotten", "message": f"{MAC_A} forgotten"}
    expect_error(404, "unknown-device", "GET", f"/mud/v1/devices/{MAC_A}", backend)
    expect_error(404, "unknown-device", "DELETE", f"/mud/v1/devices/{MAC_A}", backend, AUTH)


@pytest.mark.parametrize(
    ("mac", "body", "status", "code"),
    [
        (MAC_A, {"url": "http://mud.example.com/a.json", "sha256": SHA2}, 400, "bad-url:not-https"),
        ("02:00:00:00:00:09", {"url": URL2, "sha256": SHA2}, 404, "unknown-device"),
        (MAC_B, {"url": URL2, "sha256": SHA2}, 409, "nothing-to-approve"),
    ],
)
def test_backend_refusals_map_to_statuses(mac: str, body: dict[str, Any], status: int, code: str) -> None:
    document, _ = expect_error(
        status, code, "POST", f"/mud/v1/devices/{mac}/approve", FakeBackend(), {**AUTH, **JSON_BODY},
        json.dumps(body).encode(),
    )  # fmt: skip
    assert document["message"]


STATE_CHANGES = [
    ("POST", f"/mud/v1/devices/{MAC_A}/approve"),
    ("POST", f"/mud/v1/devices/{MAC_A}/revoke"),
    ("DELETE", f"/mud/v1/devices/{MAC_A}"),
]
BODIES = {f"/mud/v1/devices/{MAC_A}/approve": json.dumps({"url": URL2, "sha256": SHA2}).encode()}


@pytest.mark.parametrize(("method", "path"), STATE_CHANGES)
@pytest.mark.parametrize(
    ("headers", "token", "status", "code"),
    [
        (AUTH, None, 403, "token-not-configured"),
        (AUTH, "", 403, "token-not-configured"),
        ({}, TOKEN, 401, "missing-token"),
        ({"Authorization": TOKEN}, TOKEN, 401, "missing-token"),
        ({"Authorization": f"Basic {TOKEN}"}, TOKEN, 401, "missing-token"),
        ({"Authorization": "Bearer "}, TOKEN, 401, "missing-token"),
        ({"Authorization": "Bearer wrong"}, TOKEN, 401, "bad-token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, TOKEN, 401, "bad-token"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, TOKEN, 401, "bad-token"),
        ({"Authorization": "Bearer s3cret-tokén"}, TOKEN, 401, "bad-token"),
    ],
)
def test_state_changes_need_the_token(
    method: str, path: str, headers: dict[str, str], token: str | None, status: int, code: str
) -> None:
    backend = FakeBackend()
    _, response = expect_error(status, code, method, path, backend, headers, token=token)
    assert backend.calls == []
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), STATE_CHANGES)
def test_the_right_token_in_any_header_case_passes(method: str, path: str) -> None:
    backend = FakeBackend()
    headers = {"authorization": f"bearer {TOKEN}", "content-type": "application/json"}
    status, _, _ = call(method, path, backend, headers, BODIES.get(path, b""))
    assert status == 200 and len(backend.mutations) == 1


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # mud_ryu.api.handlers calls hmac.compare_digest
    backend = FakeBackend()
    expect_error(401, "bad-token", "POST", f"/mud/v1/devices/{MAC_A}/revoke", backend, {"Authorization": "Bearer x"})
    assert call("POST", f"/mud/v1/devices/{MAC_A}/revoke", backend, AUTH)[0] == 200
    # Both comparisons went through compare_digest, on equal-length digests (so the length does not leak either).
    assert len(seen) == 2 and all(len(a) == len(b) == 32 for a, b in seen)
    assert seen[0][0] != seen[0][1] and seen[1][0] == seen[1][1]


# ---- request validation --------------------------------------------------------------------------------------


def test_oversized_body_is_413_and_never_parsed() -> None:
    backend = FakeBackend()
    body = json.dumps({"url": "https://x.example/" + "a" * MAX_BODY_BYTES}).encode()
    expect_error(
        413, "body-too-large", "POST", f"/mud/v1/devices/{MAC_A}/approve", backend, {**AUTH, **JSON_BODY}, body
    )
    assert backend.calls == []
    assert call("GET", "/mud/v1/devices", backend, body=b" " * (MAX_BODY_BYTES + 1))[0] == 413


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_wrong_content_type_is_415(content_type: str | None) -> None:
    headers = dict(AUTH) if content_type is None else {**AUTH, "Content-Type": content_type}
    backend = FakeBackend()
    expect_error(
        415, "unsupported-media-type", "POST", f"/mud/v1/devices/{MAC_A}/approve", backend, headers, b'{"url": null}'
    )
    assert backend.mutations == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "json-syntax"),
        (b'["https://x"]', "json-not-object"),
        (b'{"url": "a", "url": "b"}', "json-duplicate-key"),
        (b'{"url": NaN}', "json-"),
        (b"\xff\xfe{}", "json-not-utf8"),
        (b"[" * 100 + b"]" * 100, "json-too-deep"),
    ],
)
def test_bad_json_is_400(body: bytes, fragment: str) -> None:
    backend = FakeBackend()
    document, _ = expect_error(
        400, "bad-json", "POST", f"/mud/v1/devices/{MAC_A}/approve", backend, {**AUTH, **JSON_BODY}, body
    )
    assert fragment in document["message"] and backend.mutations == []


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (f"/mud/v1/devices/{MAC_A}/approve", {"url": URL1, "force": True}, "unknown-field"),
        (f"/mud/v1/devices/{MAC_A}/revoke", {"url": URL1}, "unknown-field"),
        (f"/mud/v1/devices/{MAC_A}/approve", {"url": 5, "sha256": SHA2}, "bad-field"),
        (f"/mud/v1/devices/{MAC_A}/approve", {"url": "", "sha256": SHA2}, "bad-field"),
        (f"/mud/v1/devices/{MAC_A}/approve", {"url": ["https://x"], "sha256": SHA2}, "bad-field"),
        (f"/mud/v1/devices/{MAC_A}/approve", {"url": "https://x/" + "a" * 2100, "sha256": SHA2}, "bad-field"),
    ],
)
def test_unknown_and_bad_fields_are_400(path: str, body: dict[str, Any], code: str) -> None:
    backend = FakeBackend()
    expect_error(400, code, "POST", path, backend, {**AUTH, **JSON_BODY}, json.dumps(body).encode())
    assert backend.mutations == []


def test_forget_refuses_a_body_with_fields() -> None:
    backend = FakeBackend()
    expect_error(400, "unknown-field", "DELETE", f"/mud/v1/devices/{MAC_A}", backend, {**AUTH, **JSON_BODY}, b'{"x":1}')
    assert backend.mutations == []


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/mud/v1/",
        "/mud/v2/devices",
        "/mud/v1/devices/",
        "/mud/v1/Devices",
        f"/mud/v1/devices/{MAC_A}/approve/x",
        "/mud/v1/alerts/1",
        "/mud/v1/" + "a" * 5000,
    ],
)
def test_unknown_paths_are_404(path: str) -> None:
    expect_error(404, "not-found", "GET", path, FakeBackend())


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/mud/v1/devices", "GET"),
        ("POST", "/mud/v1/devices", "GET"),
        ("GET", f"/mud/v1/devices/{MAC_A}/approve", "POST"),
        ("DELETE", f"/mud/v1/devices/{MAC_A}/revoke", "POST"),
        ("POST", f"/mud/v1/devices/{MAC_A}", "DELETE, GET"),
        ("get", "/mud/v1/alerts", "GET"),
        ("OPTIONS", "/mud/v1/alerts", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(method: str, path: str, allow: str) -> None:
    backend = FakeBackend()
    _, response = expect_error(405, "method-not-allowed", method, path, backend, AUTH)
    assert response.headers["Allow"] == allow and backend.calls == []


# ---- the backend misbehaving and hostile strings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/mud/v1/devices"), ("GET", f"/mud/v1/devices/{MAC_A}"), ("GET", "/mud/v1/alerts"), *STATE_CHANGES],
)
def test_an_exception_in_the_backend_is_500_internal_and_logged(
    method: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend(fail_with=RuntimeError("secret detail /etc/mud.conf"))
    with caplog.at_level(logging.ERROR, logger="mud_ryu.api.handlers"):
        _, response = expect_error(500, "internal", method, path, backend, {**AUTH, **JSON_BODY}, BODIES.get(path, b""))
    assert b"secret" not in response.body and b"Traceback" not in response.body
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


def test_a_backend_answer_json_cannot_carry_is_500() -> None:
    backend = FakeBackend()
    backend.alerts = lambda limit: [  # type: ignore[method-assign]
        AlertView("x", MAC_A, "01", 1, "", "", math.nan)
    ]
    expect_error(500, "internal", "GET", "/mud/v1/alerts", backend)
    backend.revoke = lambda mac: "ok"  # type: ignore[assignment, method-assign, return-value]
    expect_error(500, "internal", "POST", f"/mud/v1/devices/{MAC_A}/revoke", backend, AUTH)


def test_attacker_strings_are_capped_and_escaped() -> None:
    backend = FakeBackend()
    hostile = "https://evil.example/\x1b[2J\u202e\n" + "a" * 10_000
    backend.devices = lambda: [  # type: ignore[method-assign]
        DeviceView(MAC_A, "01", 1, hostile, "dhcpv4", "quarantined", None, None, 0, None)
    ]
    response = handle("GET", "/mud/v1/devices", {}, b"", backend, TOKEN)
    assert response.status == 200 and response.body.isascii()
    assert all(b >= 0x20 for b in response.body.rstrip(b"\n"))
    assert json.loads(response.body)["devices"][0]["url"] == hostile[:MAX_STRING_CHARS]


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD", "", "G\x00T"]),
    path=st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda mid, tail: f"/mud/v1/{mid}{tail}",
            st.sampled_from(
                ["devices", f"devices/{MAC_A}", f"devices/{MAC_B}/approve", "alerts", f"devices/{MAC_A}/revoke"]
            ),
            st.text(max_size=20),
        ),
    ),
    headers=st.dictionaries(st.sampled_from(["Authorization", "Content-Type", "X"]), st.text(max_size=40), max_size=3),
    body=st.binary(max_size=64),
)
def test_never_raises_and_never_changes_state_without_the_token(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    backend = FakeBackend()
    response = handle(method, path, headers, body, backend, TOKEN)
    assert response.status in (200, 400, 401, 403, 404, 405, 409, 413, 415)
    document = json.loads(response.body)
    assert isinstance(document, dict) and (response.status == 200) == ("error" not in document)
    if TOKEN not in headers.get("Authorization", ""):
        assert backend.mutations == []


def test_action_result_is_serialised_as_is() -> None:
    backend = FakeBackend()
    backend.forget = lambda mac: ActionResult(True, "forgotten", "m")  # type: ignore[method-assign]
    assert call("DELETE", f"/mud/v1/devices/{MAC_A}", backend, AUTH)[1] == {
        "ok": True,
        "reason": "forgotten",
        "message": "m",
    }
