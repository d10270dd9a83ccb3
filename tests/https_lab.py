"""A hostile (and benign) HTTPS MUD server for the fetcher's test suite (THREATS.md rows 3-7, R7).

Run as ``python -m tests.https_lab --site SITE.json --dir DIR``. It makes a throw-away CA with ``trustme``, serves
TLS on 127.0.0.1 (ephemeral ports only), and writes into DIR: ``ca.pem`` (the client's CA bundle),
``requests.jsonl`` (one line per request received) and, last and atomically, ``ready.json`` (ports, pid, paths).

It is a separate process on purpose: a test measures its own memory while fetching a gzip bomb or an endless body,
so the server's buffers must not count. Every loop is bounded in count and time so that a client which stops
reading, or a test that dies, never leaves a thread (or the process) behind for long. Route kinds and their JSON
schema live in ``tests/https_routes.py``; ``tests/https_fixtures.py`` starts the server for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path

import trustme

from tests.https_routes import (
    MAX_STATIC_BYTES,
    Drip,
    EndlessChunked,
    GzipBomb,
    HugeHeaders,
    Redirect,
    Route,
    SiteError,
    Static,
    StatusRoute,
    load_site,
    with_ports,
)

CERT_NAMES = ("mud.test", "*.mud.test", "other.test", "127.0.0.1")
LOGGED_HEADERS = (
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "User-Agent",
    "If-None-Match",
    "If-Modified-Since",
    "Host",
)
MAX_HANDLERS = 64  # concurrent connection threads; one more is closed at once, never queued behind a slow one
MAX_HEAD_BYTES = 64 * 1024  # request head
HANDSHAKE_TIMEOUT_S = 10.0
LINGER_S = 2.0  # how long a finished response waits for the client's own close
SLOW_TLS_MAX_HELD = 256
POLL_S = 0.2  # how often the accept loops look at the stop conditions


class _Expired(Exception):
    """The connection reached its server-side time limit."""


class _Conn:
    """One TLS connection with a hard deadline: every send is bounded by the time that is left."""

    def __init__(self, sock: ssl.SSLSocket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Expired
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._remaining())
        self.sock.sendall(data)

    def pause(self, seconds: float) -> None:
        time.sleep(min(seconds, self._remaining()))

    def recv(self, n: int) -> bytes:
        self.sock.settimeout(min(self._remaining(), HANDSHAKE_TIMEOUT_S))
        return self.sock.recv(n)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-case name -> first value

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def read_request(conn: _Conn) -> Request | None:
    """The request head (request body, if any, is ignored); None when the client sent no complete head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD_BYTES:
            return None
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buf += chunk
    lines = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return Request(parts[0], parts[1], parts[2], headers)


class RequestLog:
    """JSON lines, one per request, written and flushed before the response starts (so a client that has seen
    any response byte can already read its own line)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")

    def record(self, req: Request, sni: str | None) -> None:
        entry = {
            "method": req.method,
            "path": req.path,
            "target": req.target,
            "version": req.version,
            "sni": sni,
            "headers": {name: req.headers[name.lower()] for name in LOGGED_HEADERS if name.lower() in req.headers},
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    if not any(name.lower() == "connection" for name, _ in headers):
        headers = [*headers, ("Connection", "close")]
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _with_length(headers: list[tuple[str, str]], length: int) -> list[tuple[str, str]]:
    """Content-Length unless the route sets its own (a route may lie about the length on purpose)."""
    if any(name.lower() == "content-length" for name, _ in headers):
        return headers
    return [*headers, ("Content-Length", str(length))]


def _strip_weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(route: Static, req: Request) -> bool:
    """RFC 9110 s13.1: If-None-Match (weak comparison) wins over If-Modified-Since, which needs a valid date."""
    if req.method not in ("GET", "HEAD") or route.status != 200:
        return False
    inm = req.headers.get("if-none-match")
    if inm is not None:
        if route.etag is None:
            return False
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or _strip_weak(route.etag) in {_strip_weak(t) for t in tags}
    ims = req.headers.get("if-modified-since")
    if ims is None or route.last_modified is None:
        return False
    try:
        return parsedate_to_datetime(route.last_modified) <= parsedate_to_datetime(ims)
    except (TypeError, ValueError):  # unparsable date, or naive vs aware datetimes
        return False


def _live(route: Static) -> Static:
    """The route with its body re-read from ``live_file`` (bounded like any static body)."""
    assert route.live_file is not None
    with route.live_file.open("rb") as handle:
        body = handle.read(MAX_STATIC_BYTES + 1)[:MAX_STATIC_BYTES]
    etag = route.etag or f'"{hashlib.sha256(body).hexdigest()[:16]}"'
    return dataclasses.replace(route, body=body, etag=etag)


def _serve_static(conn: _Conn, req: Request, route: Static) -> None:
    if route.live_file is not None:
        route = _live(route)
    validators = [("ETag", route.etag)] if route.etag else []
    if route.last_modified:
        validators.append(("Last-Modified", route.last_modified))
    if not_modified(route, req):
        conn.send(_head(304, validators))
        return
    conn.send(_head(route.status, _with_length([*route.headers, *validators], len(route.body))))
    if req.method != "HEAD":
        conn.send(route.body)


def _serve_drip(conn: _Conn, route: Drip) -> None:
    headers = _with_length([("Content-Type", route.content_type), *route.headers], len(route.body))
    head = _head(200, headers)
    if route.drip_headers:
        for i in range(len(head)):
            conn.send(head[i : i + 1])
            conn.pause(route.interval_s)
    else:
        conn.send(head)
    for i in range(len(route.body)):
        conn.pause(route.interval_s)
        conn.send(route.body[i : i + 1])


def _serve_endless(conn: _Conn, route: EndlessChunked) -> None:
    """A JSON array that never closes: '[' then '0,0,0,...' in chunks until the deadline or the client leaves."""
    conn.send(_head(200, [("Content-Type", route.content_type), ("Transfer-Encoding", "chunked")]))
    conn.send(b"1\r\n[\r\n")
    payload = (b"0," * (route.chunk_bytes // 2 + 1))[: route.chunk_bytes]
    chunk = f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
    while True:  # ends by _Expired (deadline) or OSError (client gone)
        conn.send(chunk)


def _serve_bomb(conn: _Conn, route: GzipBomb) -> None:
    headers = [
        ("Content-Type", route.content_type),
        ("Content-Encoding", route.stream.encoding),
        ("Content-Length", str(route.stream.length)),
    ]
    conn.send(_head(200, headers))
    for piece in route.stream.pieces():
        conn.send(piece)


def _serve_huge_headers(conn: _Conn, route: HugeHeaders) -> None:
    parts = [b"HTTP/1.1 200 OK\r\nContent-Type: application/mud+json\r\nContent-Length: 2\r\n"]
    if route.line_bytes:
        prefix = b"X-Huge: "
        parts.append(prefix + b"a" * max(0, route.line_bytes - len(prefix)) + b"\r\n")
    conn.send(b"".join(parts))
    batch: list[bytes] = []
    for i in range(route.count):
        batch.append(f"X-Filler-{i}: {i}\r\n".encode())
        if len(batch) == 1024:
            conn.send(b"".join(batch))
            batch.clear()
    conn.send(b"".join(batch) + b"Connection: close\r\n\r\n{}")


def respond(conn: _Conn, req: Request, route: Route | None) -> None:
    if route is None:
        body = b"not found\n"
        conn.send(_head(404, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]) + body)
    elif isinstance(route, Static):
        _serve_static(conn, req, route)
    elif isinstance(route, Drip):
        _serve_drip(conn, route)
    elif isinstance(route, EndlessChunked):
        _serve_endless(conn, route)
    elif isinstance(route, GzipBomb):
        _serve_bomb(conn, route)
    elif isinstance(route, HugeHeaders):
        _serve_huge_headers(conn, route)
    elif isinstance(route, Redirect):
        conn.send(_head(route.status, [("Location", route.location), ("Content-Length", "0")]))
    elif isinstance(route, StatusRoute):
        headers = [("Content-Type", route.content_type), ("Content-Length", str(len(route.body)))]
        conn.send(_head(route.status, headers) + route.body)


def _close_politely(sock: ssl.SSLSocket) -> None:
    """Send close_notify and give the client a bounded moment to close too, so the response is not cut by a
    reset (unread client bytes at close()) and strict clients see a clean TLS end rather than a ragged EOF."""
    try:
        sock.settimeout(LINGER_S)
        sock.unwrap()
    except OSError:
        pass


@dataclass(frozen=True, slots=True)
class Server:
    ctx: ssl.SSLContext
    site: dict[str, Route]
    log: RequestLog
    conn_limit_s: float
    slots: threading.BoundedSemaphore
    sni: threading.local  # the handshake runs in the handler thread, so a thread-local carries the SNI name

    def handle(self, raw: socket.socket) -> None:
        """One connection, in its own thread: the TLS handshake happens here, never in the accept loop."""
        deadline = time.monotonic() + self.conn_limit_s
        tls: ssl.SSLSocket | None = None
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            self.sni.name = None
            tls = self.ctx.wrap_socket(raw, server_side=True)
            conn = _Conn(tls, deadline)
            req = read_request(conn)
            if req is None:
                return
            self.log.record(req, self.sni.name)
            respond(conn, req, self.site.get(req.path))
            _close_politely(tls)
        except (OSError, _Expired):
            pass  # handshake failure, client gone, or our deadline: all end the connection
        finally:
            (tls or raw).close()
            raw.close()
            self.slots.release()

    def accept_forever(self, listener: socket.socket, keep_running: _StopCheck) -> None:
        listener.settimeout(POLL_S)
        while keep_running():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            if not self.slots.acquire(blocking=False):
                raw.close()  # at capacity: refuse rather than queue behind slow clients
                continue
            threading.Thread(target=self.handle, args=(raw,), daemon=True).start()


class _StopCheck:
    """True while the server should keep running: parent alive and lifetime not exceeded."""

    def __init__(self, max_lifetime_s: float) -> None:
        self._parent = os.getppid()
        self._end = time.monotonic() + max_lifetime_s

    def __call__(self) -> bool:
        return os.getppid() == self._parent and time.monotonic() < self._end


def hold_slow_tls(listener: socket.socket, hold_s: float, keep_running: _StopCheck) -> None:
    """Accept TCP and never send a byte (a stalled TLS handshake); close each after ``hold_s``."""
    held: list[tuple[socket.socket, float]] = []
    listener.settimeout(POLL_S)
    while keep_running():
        try:
            sock, _ = listener.accept()
            if len(held) < SLOW_TLS_MAX_HELD:
                held.append((sock, time.monotonic() + hold_s))
            else:
                sock.close()
        except TimeoutError:
            pass
        now = time.monotonic()
        for sock, _ in [h for h in held if h[1] <= now]:
            sock.close()
        held = [h for h in held if h[1] > now]


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _write_ready(directory: Path, ready: dict[str, object]) -> None:
    tmp = directory / "ready.json.tmp"
    tmp.write_text(json.dumps(ready), encoding="utf-8")
    os.replace(tmp, directory / "ready.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.https_lab", description=__doc__.split("\n", 1)[0])
    ap.add_argument("--site", required=True, type=Path, help="JSON mapping path -> route")
    ap.add_argument("--dir", required=True, type=Path, help="where ca.pem, requests.jsonl and ready.json go")
    ap.add_argument("--conn-limit-s", type=float, default=60.0, help="server-side limit of one connection")
    ap.add_argument("--slow-hold-s", type=float, default=30.0, help="how long the slow TLS port holds a socket")
    ap.add_argument("--max-lifetime-s", type=float, default=1800.0, help="the server exits after this long")
    args = ap.parse_args(argv)
    try:
        site = load_site(args.site)
    except SiteError as exc:
        print(f"https_lab: bad site config: {exc}", file=sys.stderr)
        return 2
    directory: Path = args.dir
    ca = trustme.CA()
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*CERT_NAMES).configure_cert(ctx)
    sni = threading.local()

    def remember_sni(_sock: ssl.SSLSocket | ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.name = name

    ctx.sni_callback = remember_sni
    log_path = directory / "requests.jsonl"
    main_sock, slow_sock = _listen(), _listen()
    ports = {"port": main_sock.getsockname()[1], "slow_tls_port": slow_sock.getsockname()[1]}
    site = with_ports(site, ports)
    server = Server(ctx, site, RequestLog(log_path), args.conn_limit_s, threading.BoundedSemaphore(MAX_HANDLERS), sni)
    keep_running = _StopCheck(args.max_lifetime_s)
    threading.Thread(target=hold_slow_tls, args=(slow_sock, args.slow_hold_s, keep_running), daemon=True).start()
    ready: dict[str, object] = {
        "pid": os.getpid(),
        **ports,
        "ca_pem_path": str(ca_path),
        "log_path": str(log_path),
    }
    _write_ready(directory, ready)
    server.accept_forever(main_sock, keep_running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
