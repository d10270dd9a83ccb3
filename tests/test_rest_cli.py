"""``mud-ryu devices/device/alerts/approve/revoke/forget`` against a real local HTTP server serving the handler.

The server is stdlib ``wsgiref`` (``http.server`` underneath) on 127.0.0.1:0 running :func:`mud_ryu.api.wsgi.make_app`
around :func:`rest_api.handle` and the in-memory backend: the CLI and the handler must speak the same contract.
"""

from __future__ import annotations

import http.server
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.api.handlers import MAX_BODY_BYTES, handle
from mud_ryu.api.types import DeviceView
from mud_ryu.cli import main
from tests.api_server import serve, serve_api
from tests.rest_fakes import MAC_A, MAC_B, SHA2, URL1, URL2, FakeBackend

TOKEN = "cli-test-token"


@dataclass
class Api:
    url: str
    backend: FakeBackend


def _api(token: str | None) -> Iterator[Api]:
    backend = FakeBackend()
    for url in serve_api(backend, token):
        yield Api(url, backend)


@pytest.fixture
def api() -> Iterator[Api]:
    yield from _api(TOKEN)


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


@pytest.fixture(autouse=True)
def _no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUD_RYU_TOKEN", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- reads ---------------------------------------------------------------------------------------------------


def test_devices_table(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "devices", "--api", api.url)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].split() == ["MAC", "DPID", "PORT", "STATE", "FLOWS", "PROFILE", "VIA", "LAST", "DECISION", "URL"]
    assert lines[1].split() == [
        MAC_A, "0000000000000001", "3", "enforced", "2", "2", "dhcpv4", "violation/big-change-refused", URL1,
    ]  # fmt: skip
    assert lines[2].split() == [MAC_B, "0000000000000abc", "7", "quarantined", "0", "-", "lldp", "-", "-"]


def test_devices_json_is_exactly_what_the_handler_answers(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "devices", "--api", api.url, "--json")
    direct = handle("GET", "/mud/v1/devices", {}, b"", FakeBackend(), None)
    assert code == 0 and json.loads(out) == json.loads(direct.body)


def test_device_detail(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "device", MAC_A.upper(), "--api", api.url)
    assert code == 0 and api.backend.calls == [("device", MAC_A)]
    assert f"mac: {MAC_A}" in out and f"url: {URL1}" in out
    assert f"pending: {URL2} (needs-approval, big-change-refused) since 2023-11-14T22:15:00Z" in out
    assert f"pending sha256: {SHA2}" in out  # what an approval must name
    assert f"2023-11-14T22:13:20Z  {'a' * 64}  {URL1}" in out  # the history line
    assert "flows (2):" in out and "actions=goto_table:4" in out
    assert "last_decision: violation/big-change-refused at 2023-11-14T22:15:00Z" in out


def test_unknown_device_is_the_servers_code_and_exit_1(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "device", "02:00:00:00:00:01", "--api", api.url)
    assert (code, out) == (1, "") and err.startswith("error: unknown-device (HTTP 404): ")


@pytest.mark.parametrize("mac", ["00:11:22", "02:00:00:00:00:01" + " " * 47 + "junk"])
def test_a_bad_mac_is_a_usage_error_before_any_request(api: Api, capsys: pytest.CaptureFixture[str], mac: str) -> None:
    code, _, err = run(capsys, "device", mac, "--api", api.url)
    assert code == 2 and "not a MAC address" in err and api.backend.calls == []


def test_alerts_with_limit(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "alerts", "--api", api.url, "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and api.backend.calls == [("alerts", "2")] and len(lines) == 3
    assert lines[0].split() == ["AT", "CODE", "MAC", "DPID", "PORT", "URL", "MESSAGE"]
    assert lines[1].split()[:5] == ["1970-01-01T00:00:30Z", "spoofed-announcement", MAC_A, "0000000000000001", "5"]
    code, _, err = run(capsys, "alerts", "--api", api.url, "--limit", "0")
    assert code == 1 and err.startswith("error: bad-limit (HTTP 400)")


def test_server_text_cannot_drive_the_terminal(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "https://evil.example/\x1b[2J\x07\r" + "a" * 50
    api.backend.devices = lambda: [  # type: ignore[method-assign]
        DeviceView(MAC_A, "01", 1, hostile, "dhcp\x1b]0;pwned\x07", "quarantined", None, None, 0, None)
    ]
    code, out, _ = run(capsys, "devices", "--api", api.url)
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b[2J" in out
    code, out, _ = run(capsys, "devices", "--api", api.url, "--json")
    assert code == 0 and "\x1b" not in out and json.loads(out)["devices"][0]["url"] == hostile


# ---- state changes -------------------------------------------------------------------------------------------


def test_approve_revoke_forget_with_a_token_file(api: Api, token_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "approve", MAC_A, "--url", URL2, "--sha256", SHA2, "--api", api.url,
                       "--token-file", token_file)  # fmt: skip
    assert (code, out) == (0, f"OK approved: {URL2} approved for {MAC_A}\n")
    code, out, _ = run(capsys, "approve", MAC_A, "--url", URL1, "--sha256", "d" * 64, "--chosen", "--api", api.url,
                       "--token-file", token_file)  # fmt: skip
    assert code == 0 and api.backend.mutations == [("approve", MAC_A, URL2, SHA2, "False"),
                                                   ("approve", MAC_A, URL1, "d" * 64, "True")]  # fmt: skip
    assert run(capsys, "revoke", MAC_A, "--api", api.url, "--token-file", token_file)[:2] == (
        0,
        f"OK revoked: {MAC_A} quarantined until a URL is approved\n",
    )
    code, out, _ = run(capsys, "forget", MAC_A, "--api", api.url, "--token-file", token_file, "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "reason": "forgotten", "message": f"{MAC_A} forgotten"}
    assert MAC_A not in api.backend.detail


def test_token_from_the_environment(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUD_RYU_TOKEN", TOKEN)
    assert run(capsys, "revoke", MAC_A, "--api", api.url)[0] == 0
    assert api.backend.mutations == [("revoke", MAC_A)]


def test_no_token_is_a_usage_error_and_nothing_is_sent(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "forget", MAC_A, "--api", api.url)
    assert code == 2 and "MUD_RYU_TOKEN" in err and api.backend.calls == []


def test_wrong_token_is_the_servers_code(api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    code, _, err = run(capsys, "revoke", MAC_A, "--api", api.url, "--token-file", str(wrong))
    assert code == 1 and err.startswith("error: bad-token (HTTP 401)") and api.backend.calls == []


def test_server_without_a_token_refuses_changes(token_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    for open_api in _api(None):
        code, _, err = run(capsys, "approve", MAC_A, "--url", URL2, "--sha256", SHA2, "--api", open_api.url,
                           "--token-file", token_file)  # fmt: skip
        assert code == 1 and err.startswith("error: token-not-configured (HTTP 403)")
        assert run(capsys, "devices", "--api", open_api.url)[0] == 0  # reads stay open


def test_backend_refusal_is_exit_1(api: Api, token_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad_url = ("--url", "http://x.example/a.json", "--sha256", SHA2)
    code, _, err = run(capsys, "approve", MAC_A, *bad_url, "--api", api.url, "--token-file", token_file)
    assert code == 1 and err.startswith("error: bad-url:not-https (HTTP 400)")
    code, _, err = run(capsys, "revoke", MAC_B, "--api", api.url, "--token-file", token_file)
    assert code == 1 and err.startswith("error: already-quarantined (HTTP 409)")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "one token"), ("two words", "one token"), ("x" * 5000, "too large")],
)
def test_bad_token_files(tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    code, _, err = run(capsys, "revoke", MAC_A, "--api", "http://127.0.0.1:9", "--token-file", str(path))
    assert code == 2 and message in err
    code, _, err = run(capsys, "revoke", MAC_A, "--token-file", str(tmp_path / "missing"))
    assert code == 2 and "cannot read the token file" in err


def test_plain_http_to_another_host_warns(token_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A bad MAC stops the command after the warning and before any connection: no traffic leaves the host.
    code, _, err = run(capsys, "revoke", "bad-mac", "--api", "http://192.0.2.1:9", "--token-file", token_file)
    assert code == 2 and "warning: sending the API token over plain http" in err and "not a MAC" in err
    for quiet in ("http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9", "https://192.0.2.1:9"):
        assert run(capsys, "revoke", "bad-mac", "--api", quiet, "--token-file", token_file)[2].startswith("error:")


# ---- transport trouble ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("api_url", ["ftp://127.0.0.1/", "127.0.0.1:8080", "http:///x", "http://127.0.0.1:8080/?a=1"])
def test_bad_api_url_is_exit_2(api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "devices", "--api", api_url)
    assert code == 2 and "--api must be" in err


def test_connection_refused_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "devices", "--api", f"http://127.0.0.1:{_closed_port()}")
    assert (code, out) == (2, "") and "cannot reach" in err


class _Redirecting(http.server.BaseHTTPRequestHandler):
    target = ""

    def _answer(self) -> None:
        if self.path.startswith("/mud/v1/alerts"):  # not the API: HTML
            body = b"<html>captive portal</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
        else:
            body = b""
            self.send_response(307)
            self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_redirects_are_never_followed_and_html_is_refused(
    api: Api, token_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = type("Redirect", (_Redirecting,), {"target": api.url})
    for other in serve(http.server.HTTPServer(("127.0.0.1", 0), handler)):
        code, _, err = run(capsys, "revoke", MAC_A, "--api", other, "--token-file", token_file)
        assert code == 2 and "redirect (307)" in err
        code, _, err = run(capsys, "alerts", "--api", other)
        assert code == 2 and "without a JSON body" in err
    assert api.backend.calls == []  # the token never reached the redirect's target


# ---- the WSGI adapter --------------------------------------------------------------------------------------------


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_body_is_413_without_reading_it(api: Api) -> None:
    head = (
        f"POST /mud/v1/devices/{MAC_A}/approve HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * MAX_BODY_BYTES}\r\n\r\n"
    ).encode()
    answer = _raw(api.url, head + b"{" * (MAX_BODY_BYTES + 1))  # the rest of the announced body never comes
    assert answer.startswith(b"HTTP/1.0 413 ") and b'"error":"body-too-large"' in answer
    assert api.backend.calls == []


def test_percent_encoded_mac_and_unicode_path_through_wsgi(api: Api) -> None:
    answer = _raw(api.url, f"GET /mud/v1/devices/{MAC_A.replace(':', '%3A')} HTTP/1.0\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 200 ") and api.backend.calls == [("device", MAC_A)]
    answer = _raw(api.url, b"GET /mud/v1/devices/%C3%A9%25zz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400 ") and b"bad-mac" in answer


def test_an_encoded_slash_is_refused_over_http(api: Api) -> None:
    # PATH_INFO reads /mud/v1/devices/<mac>/revoke; the raw target is one segment "<mac>%2Frevoke".
    request = f"POST /mud/v1/devices/{MAC_A}%2Frevoke HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    answer = _raw(api.url, request.encode())
    assert answer.startswith(b"HTTP/1.0 400 ") and b'"error":"encoded-separator"' in answer
    assert api.backend.calls == []
