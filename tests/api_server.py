"""A real HTTP server on loopback for the CLI tests: the REST API (any Backend) served from a thread."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from mud_ryu.api.types import Backend
from mud_ryu.api.wsgi import make_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def get_environ(self) -> dict[str, Any]:
        # wsgiref gives only the decoded PATH_INFO; pass the request target as received, as Ryu's eventlet.wsgi
        # (RAW_PATH_INFO) and most servers (REQUEST_URI) do, so the API routes on the raw path as in the app.
        environ = dict(super().get_environ())
        environ["REQUEST_URI"] = self.path
        return environ


def serve(server: http.server.HTTPServer) -> Iterator[str]:
    """Run ``server`` in a thread for one iteration; yields its base URL, then shuts it down."""
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def serve_api(backend: Backend, token: str | None) -> Iterator[str]:
    """The ``/mud/v1`` API over ``backend`` on an ephemeral loopback port."""
    server: WSGIServer = make_server("127.0.0.1", 0, make_app(backend, token), handler_class=_QuietHandler)
    yield from serve(server)
