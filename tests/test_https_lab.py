"""The HTTPS lab server does what each route promises, checked with plain ssl/socket clients (and requests).

The fetcher's hostile-input suite relies on these behaviours; if the lab quietly stopped dripping or its bomb
stopped being a bomb, those tests would pass for the wrong reason. No assertion here depends on durations.
"""

from __future__ import annotations

import gzip
import select
import socket
import ssl
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.https_fixtures import REPO_ROOT, Lab, https_lab_fixture, loopback_resolver, pid_alive, run_https_lab
from tests.https_lab import MAX_HANDLERS
from tests.https_routes import SiteError, build_bomb, parse_site

_ = https_lab_fixture  # the pytest fixture ``https_lab`` is registered by importing it

MIB = 1 << 20
DRIP_BODY = b'{"ietf-mud:mud":{}}'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
SITE: dict[str, dict[str, Any]] = {
    "/mud.json": {
        "kind": "static",
        "headers": [["Content-Type", "application/mud+json"]],
        "body_file": "mud.json",
        "etag": '"v1"',
        "last_modified": LAST_MODIFIED,
    },
    "/portal.html": {"kind": "static", "headers": [["Content-Type", "text/html"]], "body": "<html>login</html>"},
    "/b64": {"kind": "static", "body_b64": "AAEC/w=="},
    "/drip": {"kind": "drip", "body": DRIP_BODY.decode(), "interval_ms": 50},
    "/drip-head": {"kind": "drip", "body": "{}", "interval_ms": 5, "drip_headers": True},
    "/endless": {"kind": "endless-chunked", "chunk_bytes": 65536},
    "/bomb": {"kind": "gzip-bomb"},
    "/deflate-bomb": {"kind": "gzip-bomb", "encoding": "deflate", "decoded_bytes": 3 * MIB + 5},
    "/long-header": {"kind": "huge-headers", "line_bytes": MIB},
    "/many-headers": {"kind": "huge-headers", "count": 10000},
    "/moved": {"kind": "redirect", "status": 301, "location": "https://127.0.0.1/x.json"},
    "/temp": {"kind": "redirect", "status": 307, "location": "http://169.254.169.254/latest/meta-data/"},
    "/error": {"kind": "status", "status": 500},
    "/same-host": {"kind": "redirect", "status": 302, "location": "https://mud.test:${port}/mud.json"},
    "/literal": {"kind": "static", "body": "${port}"},
    "/self.json": {
        "kind": "static",
        "template": True,
        "headers": [["Content-Type", "application/mud+json"], ["X-Slow", "${slow_tls_port}"]],
        "body": '{"mud-url": "https://mud.test:${port}/self.json"}',
    },
}
MUD_BODY = b'{"ietf-mud:mud": {"mud-version": 1}}'


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("https_lab")
    (tmp / "mud.json").write_bytes(MUD_BODY)
    with run_https_lab(SITE, tmp) as running:
        yield running


def connect(lab: Lab, host: str = "mud.test", timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", lab.port), timeout=timeout)
    return lab.client_context().wrap_socket(raw, server_hostname=host)


def send_request(sock: ssl.SSLSocket, path: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> None:
    lines = [f"{method} {path} HTTP/1.1", "Host: mud.test", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def read_head(sock: ssl.SSLSocket, limit: int = 4 * MIB) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and whatever body bytes arrived with the head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed inside the head: {buf[:200]!r}"
        buf += chunk
        assert len(buf) <= limit
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
    return int(lines[0].split(" ")[1]), headers, rest


def read_to_eof(sock: ssl.SSLSocket, data: bytes, limit: int = MIB) -> bytes:
    while len(data) <= limit:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("response longer than expected")


def get(lab: Lab, path: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> Response:
    with connect(lab) as sock:
        send_request(sock, path, headers, method)
        status, hdrs, rest = read_head(sock)
        return Response(status, hdrs, read_to_eof(sock, rest))


def test_static_serves_file_with_validators(lab: Lab) -> None:
    resp = get(lab, "/mud.json")
    assert (resp.status, resp.body) == (200, MUD_BODY)
    assert resp.header("Content-Type") == "application/mud+json"
    assert resp.header("Content-Length") == str(len(MUD_BODY))
    assert resp.header("ETag") == '"v1"'
    assert resp.header("Last-Modified") == LAST_MODIFIED


@pytest.mark.parametrize("inm", ['"v1"', 'W/"v1"', '"v0", "v1"', "*"])
def test_static_304_when_etag_matches(lab: Lab, inm: str) -> None:
    resp = get(lab, "/mud.json", {"If-None-Match": inm})
    assert (resp.status, resp.body, resp.header("ETag")) == (304, b"", '"v1"')


def test_static_200_when_etag_differs_even_if_date_matches(lab: Lab) -> None:
    resp = get(lab, "/mud.json", {"If-None-Match": '"v0"', "If-Modified-Since": LAST_MODIFIED})
    assert (resp.status, resp.body) == (200, MUD_BODY)


def test_static_if_modified_since(lab: Lab) -> None:
    assert get(lab, "/mud.json", {"If-Modified-Since": LAST_MODIFIED}).status == 304
    assert get(lab, "/mud.json", {"If-Modified-Since": "Thu, 22 Oct 2015 07:28:00 GMT"}).status == 304
    assert get(lab, "/mud.json", {"If-Modified-Since": "Tue, 20 Oct 2015 07:28:00 GMT"}).status == 200
    assert get(lab, "/mud.json", {"If-Modified-Since": "not a date"}).status == 200


def test_static_head_and_other_bodies(lab: Lab) -> None:
    head = get(lab, "/mud.json", method="HEAD")
    assert (head.status, head.body, head.header("Content-Length")) == (200, b"", str(len(MUD_BODY)))
    portal = get(lab, "/portal.html")
    assert (portal.status, portal.header("Content-Type"), portal.body) == (200, "text/html", b"<html>login</html>")
    assert get(lab, "/b64").body == b"\x00\x01\x02\xff"
    assert get(lab, "/nowhere").status == 404


def test_drip_sends_one_byte_per_interval(lab: Lab) -> None:
    with connect(lab) as sock:
        send_request(sock, "/drip")
        status, headers, body = read_head(sock)
        assert (status, dict(headers)["Content-Length"]) == (200, str(len(DRIP_BODY)))
        recvs = idle_after = 0
        while len(body) < len(DRIP_BODY):
            chunk = sock.recv(65536)
            assert chunk
            recvs += 1
            body += chunk
            # Nothing else waiting right after a byte: the next one has not been sent yet (a server that sent
            # all bytes at once, even as separate TLS records, would leave them queued here).
            if sock.pending() == 0 and not select.select([sock], [], [], 0)[0]:
                idle_after += 1
    assert body == DRIP_BODY
    assert recvs >= len(DRIP_BODY) - 1  # one TLS record per byte (the first may ride with the head)
    assert idle_after >= len(DRIP_BODY) // 2


def test_drip_headers_drip_too(lab: Lab) -> None:
    with connect(lab) as sock:
        send_request(sock, "/drip-head")
        buf, recvs = b"", 0
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk
            buf, recvs = buf + chunk, recvs + 1
        head, body = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert recvs >= len(head) // 2  # the head arrived one byte (one TLS record) at a time
        assert read_to_eof(sock, body) == b"{}"


def test_endless_chunked_keeps_going_past_2_mib(lab: Lab) -> None:
    with connect(lab) as sock:
        send_request(sock, "/endless")
        status, headers, buf = read_head(sock)
        assert status == 200
        assert dict(headers)["Transfer-Encoding"] == "chunked"
        assert dict(headers)["Content-Type"] == "application/mud+json"
        decoded = bytearray()
        while len(decoded) <= 2 * MIB:
            while b"\r\n" not in buf or len(buf) < buf.index(b"\r\n") + 2 + int(buf.split(b"\r\n", 1)[0], 16) + 2:
                chunk = sock.recv(65536)
                assert chunk, "the endless body ended"
                buf += chunk
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line, 16)
            assert size > 0, "a last-chunk marker: the body ended"
            decoded += buf[:size]
            assert buf[size : size + 2] == b"\r\n"
            buf = buf[size + 2 :]
    assert decoded.startswith(b"[0,0,0,")


def test_gzip_bomb_is_small_on_the_wire_and_decodes_to_zeros(lab: Lab) -> None:
    cap = 8 * MIB
    with connect(lab) as sock:
        send_request(sock, "/bomb", {"Accept-Encoding": "identity"})  # a hostile server ignores this
        status, headers, data = read_head(sock)
        assert status == 200
        assert dict(headers)["Content-Encoding"] == "gzip"
        length = int(dict(headers)["Content-Length"])
        assert length < 2 * MIB
        assert length * 500 < 1 << 30
        inflater = zlib.decompressobj(wbits=31)
        decoded = 0
        while decoded < cap:
            pending = data
            while pending and decoded < cap:
                out = inflater.decompress(pending, min(MIB, cap - decoded))  # bounded output per call
                assert out.count(0) == len(out)
                decoded += len(out)
                pending = inflater.unconsumed_tail
            if decoded < cap:
                data = sock.recv(65536)
                assert data, "bomb ended early"
    assert decoded == cap
    assert not inflater.eof


def test_deflate_bomb_decodes_fully_with_valid_checksum(lab: Lab) -> None:
    resp = get(lab, "/deflate-bomb")
    assert resp.header("Content-Encoding") == "deflate"
    assert len(resp.body) == int(resp.header("Content-Length") or 0)
    assert zlib.decompress(resp.body) == bytes(3 * MIB + 5)  # zlib checks the adler32 trailer


@pytest.mark.parametrize("decoded", [1, 1000, MIB, MIB + 7, 2 * MIB, 5 * MIB + 123])
def test_bomb_builder_round_trip(decoded: int) -> None:
    gz = build_bomb(decoded, "gzip")
    data = b"".join(gz.pieces())
    assert len(data) == gz.length
    assert gzip.decompress(data) == bytes(decoded)  # gzip checks CRC32 and ISIZE
    zl = build_bomb(decoded, "deflate")
    assert zlib.decompress(b"".join(zl.pieces())) == bytes(decoded)


def test_huge_header_line(lab: Lab) -> None:
    resp = get(lab, "/long-header")
    assert resp.status == 200
    assert len("X-Huge: " + (resp.header("X-Huge") or "")) == MIB
    assert resp.body == b"{}"


def test_many_headers(lab: Lab) -> None:
    resp = get(lab, "/many-headers")
    assert sum(1 for name, _ in resp.headers if name.startswith("X-Filler-")) == 10000
    assert resp.body == b"{}"


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [("/moved", 301, "https://127.0.0.1/x.json"), ("/temp", 307, "http://169.254.169.254/latest/meta-data/")],
)
def test_redirect_location(lab: Lab, path: str, status: int, location: str) -> None:
    resp = get(lab, path)
    assert (resp.status, resp.header("Location"), resp.body) == (status, location, b"")


def test_port_templates(lab: Lab) -> None:
    assert get(lab, "/same-host").header("Location") == lab.url("/mud.json")
    resp = get(lab, "/self.json")
    assert resp.body == f'{{"mud-url": "{lab.url("/self.json")}"}}'.encode()
    assert resp.header("Content-Length") == str(len(resp.body))
    assert resp.header("X-Slow") == str(lab.slow_tls_port)
    assert get(lab, "/literal").body == b"${port}"  # only template routes are expanded


def test_status_route(lab: Lab) -> None:
    resp = get(lab, "/error")
    assert (resp.status, resp.body) == (500, b"status 500\n")


def test_slow_tls_port_never_answers_the_client_hello(lab: Lab) -> None:
    raw = socket.create_connection(("127.0.0.1", lab.slow_tls_port), timeout=0.5)
    with pytest.raises(TimeoutError):
        lab.client_context().wrap_socket(raw, server_hostname="mud.test")
    raw.close()


def test_a_stalled_client_does_not_block_others(lab: Lab) -> None:
    # Connected to the TLS port but never sending a ClientHello: the handshake waits in its own thread.
    with socket.create_connection(("127.0.0.1", lab.port), timeout=5):
        assert get(lab, "/mud.json").status == 200


def test_connection_threads_are_bounded(tmp_path: Path) -> None:
    """MAX_HANDLERS stalled handshakes fill every slot: the next connection is closed at once, not queued."""
    with run_https_lab({"/x": {"kind": "status", "status": 200}}, tmp_path) as lab:
        stalled = [socket.create_connection(("127.0.0.1", lab.port), timeout=5) for _ in range(MAX_HANDLERS)]
        try:
            with pytest.raises(OSError):  # EOF / reset during the handshake
                connect(lab).close()
        finally:
            for sock in stalled:
                sock.close()
        # The slots come back once those handlers see EOF; poll (bounded) until a request gets through.
        for _ in range(200):
            try:
                if get(lab, "/x").status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("the lab never recovered its connection slots")


def test_server_side_time_limits_end_endless_bodies_and_slow_sockets(tmp_path: Path) -> None:
    site = {"/endless": {"kind": "endless-chunked", "chunk_bytes": 1024}}
    with run_https_lab(site, tmp_path, conn_limit_s=1.0, slow_hold_s=0.5) as lab:
        with connect(lab, timeout=30) as sock:
            send_request(sock, "/endless")
            received = 0
            while chunk := sock.recv(65536):  # ends only because the server gives up at its limit
                received += len(chunk)
        assert received > 0
        with socket.create_connection(("127.0.0.1", lab.slow_tls_port), timeout=30) as slow:
            assert slow.recv(1) == b""  # closed by the server without a byte


def test_server_exits_at_its_lifetime(tmp_path: Path) -> None:
    site = tmp_path / "site.json"
    site.write_text('{"/x": {"kind": "status", "status": 200}}', encoding="utf-8")
    cmd = [sys.executable, "-m", "tests.https_lab", "--site", str(site), "--dir", str(tmp_path)]
    proc = subprocess.Popen([*cmd, "--max-lifetime-s", "0.5"], cwd=REPO_ROOT)
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "ready.json").is_file()


def test_request_log_records_selected_headers(lab: Lab) -> None:
    sent = {
        "Accept": "application/mud+json",
        "Accept-Language": "en",
        "Accept-Encoding": "identity",
        "User-Agent": "mud-ryu-test",
        "If-None-Match": '"zz"',
        "If-Modified-Since": LAST_MODIFIED,
        "X-Not-Logged": "secret",
    }
    get(lab, "/mud.json?probe=log", sent)
    entries = [e for e in lab.requests_log() if e["target"] == "/mud.json?probe=log"]
    assert entries == [
        {
            "method": "GET",
            "path": "/mud.json",
            "target": "/mud.json?probe=log",
            "version": "HTTP/1.1",
            "sni": "mud.test",
            "headers": {**{k: v for k, v in sent.items() if k != "X-Not-Logged"}, "Host": "mud.test"},
        }
    ]


@pytest.mark.parametrize("host", ["mud.test", "files.mud.test", "other.test"])
def test_certificate_names(lab: Lab, host: str) -> None:
    with connect(lab, host=host) as sock:
        assert sock.version() is not None


def test_certificate_rejects_other_names(lab: Lab) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(lab, host="evil.test")


def test_requests_with_the_ca_bundle_and_ip_san(lab: Lab) -> None:
    resp = requests.get(lab.url("/mud.json", host="127.0.0.1"), verify=lab.ca_pem_path, timeout=10)
    assert (resp.status_code, resp.content) == (200, MUD_BODY)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(lab.url("/mud.json", host="127.0.0.1"), timeout=10)  # system roots do not know the lab CA


def test_server_process_gone_after_the_context(tmp_path: Path) -> None:
    with run_https_lab({"/x": {"kind": "status", "status": 200}}, tmp_path) as lab:
        assert pid_alive(lab.pid)
        assert get(lab, "/x").status == 200
    assert not pid_alive(lab.pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", lab.port), timeout=5).close()


def test_fixture_factory_starts_labs(https_lab: Any) -> None:
    lab = https_lab({"/y": {"kind": "static", "body": "hi"}})
    assert get(lab, "/y").body == b"hi"
    assert lab.url("/y") == f"https://mud.test:{lab.port}/y"


def test_bad_site_fails_at_start_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="unknown route kind"), run_https_lab({"/x": {"kind": "nope"}}, tmp_path):
        pass


@pytest.mark.parametrize(
    "site",
    [
        {},
        {"x": {"kind": "static"}},
        {"/x": {"kind": "static", "body": "a", "body_b64": "YQ=="}},
        {"/x": {"kind": "static", "headers": [["Bad\r\nName", "v"]]}},
        {"/x": {"kind": "redirect", "status": 304, "location": "https://mud.test/"}},
        {"/x": {"kind": "redirect"}},
        {"/x": {"kind": "huge-headers"}},
        {"/x": {"kind": "gzip-bomb", "encoding": "br"}},
        {"/x": {"kind": "drip", "interval_ms": -1}},
        {"/x": {"kind": "static", "body_file": "missing.json"}},
    ],
)
def test_parse_site_rejects_malformed_routes(site: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SiteError):
        parse_site(site, tmp_path)


def test_loopback_resolver() -> None:
    resolve = loopback_resolver({"mud.test": ["127.0.0.1"], "Other.Test": ["127.0.0.1", "::1"]})
    assert resolve("mud.test", 443) == ["127.0.0.1"]
    assert resolve("MUD.TEST.", 443) == ["127.0.0.1"]
    assert resolve("other.test", 8443) == ["127.0.0.1", "::1"]
    with pytest.raises(socket.gaierror):
        resolve("example.com", 443)
    with pytest.raises(ValueError):
        loopback_resolver({"mud.test": ["not-an-ip"]})
