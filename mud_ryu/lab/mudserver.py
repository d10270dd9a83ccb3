"""The lab's MUD file server: HTTPS, static files from one directory, nothing else.

Run inside the ``mudsrv`` Mininet host (``python -m mud_ryu.lab.mudserver --root DIR --cert PEM --key PEM
--ready FILE``). ``<name>.json`` (or a bare ``<name>``, as in ``https://sensor.nist.local/nistmud1``) is served
as ``application/mud+json``, ``<name>.p7s`` as ``application/pkcs7-signature``; any other path (including ones
with dots, slashes or encodings beyond a plain file name) is 404. Name-based virtual hosting: when the request's
``Host`` is a plain DNS name and ``ROOT/<host>/`` exists, files come from there (one server answers for several
manufacturers' authorities, as the abstractions scenario needs); otherwise from ``ROOT``.
Requests are handled in threads, at most ``MAX_CLIENTS`` at once (the rest are closed unanswered) and each
socket has a timeout, so a stuck client cannot wedge the lab. The ready file is written after the socket listens
(readiness by file, no sleeps); SIGTERM stops the server. Taking the server down and back up is the lab runner's
job (stop and restart this process).
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

CONTENT_TYPES = {".json": "application/mud+json", ".p7s": "application/pkcs7-signature"}
_NAME = re.compile(r"^/([A-Za-z0-9_-]{1,64})(\.json|\.p7s)?$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
MAX_CLIENTS = 16
SOCKET_TIMEOUT = 5.0
MAX_FILE = 1 << 20


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        match = _NAME.match(self.path)
        suffix = (match.group(2) or "") if match else ""
        path = self._root() / f"{match.group(1)}{suffix}" if match else None
        try:
            body = path.read_bytes()[: MAX_FILE + 1] if path is not None else None
        except OSError:
            body = None
        if body is None or len(body) > MAX_FILE or match is None:
            self._send(404, "text/plain", b"not found\n")
            return
        self._send(200, CONTENT_TYPES[suffix or ".json"], body)

    def _root(self) -> Path:
        """``ROOT/<host>`` for a plain host name with a directory of its own, else ``ROOT``. The regex admits no
        dot-only, slash or empty label, so the result always stays under ``ROOT``."""
        host = (self.headers.get("Host") or "").strip().lower()
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if len(host) <= 253 and _HOST.match(host) and (self.server.root / host).is_dir():
            return self.server.root / host
        return self.server.root

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"mudserver: {self.address_string()} {format % args}\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, context: ssl.SSLContext) -> None:
        self.root = root
        self._context = context
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(SOCKET_TIMEOUT)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the bound: close, do not queue
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            tls = self._context.wrap_socket(request, server_side=True)  # handshake in the worker, under timeout
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
            self._slots.release()
            return
        try:
            super().process_request_thread(tls, client_address)
        finally:
            self._slots.release()


def serve(root: Path, cert: Path, key: Path, host: str, port: int, ready: Path | None) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    server = _Server((host, port), root, context)

    def _stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    if ready is not None:
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()} {server.server_address[1]}\n")
        tmp.rename(ready)  # atomic: a reader never sees a half-written file
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mud_ryu.lab.mudserver", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--ready", type=Path, default=None)
    args = parser.parse_args(argv)
    return serve(args.root, args.cert, args.key, args.host, args.port, args.ready)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
