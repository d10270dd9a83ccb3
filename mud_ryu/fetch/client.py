"""The controller's side of the resolver worker: start it, send requests, deliver results, restart it if it dies.

Framework-neutral: the app passes its event library's ``Popen`` and ``spawn`` (sockets are green under eventlet), so
the reader runs as a green thread of the controller and delivers results on the controller's own loop; tests pass
the stdlib's ``subprocess.Popen`` and threads. Requests in flight when the worker dies are sent again to its successor;
restarts are spaced (``restart_delay_s``) so a worker that dies at once cannot spin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mud_ryu.fetch.manager import MudRequest
from mud_ryu.fetch.wire import (
    WireError,
    WireNames,
    WireResult,
    decode_any_result,
    encode_names_request,
    encode_request,
)

log = logging.getLogger(__name__)

MAX_BUFFER = 8 << 20  # a result line holds at most a 1 MiB body in base64; anything longer is a broken worker
Spawn = Callable[..., Any]
Sleep = Callable[[float], None]


class WorkerClient:
    def __init__(
        self,
        settings: dict[str, Any],
        settings_path: str,
        on_result: Callable[[WireResult], None],
        *,
        on_names: Callable[[WireNames], None] | None = None,
        popen: Callable[..., Any],
        spawn: Spawn,
        sleep: Sleep,
        python: str = sys.executable,
        restart_delay_s: float = 1.0,
    ) -> None:
        self._settings_path = settings_path
        self._on_result = on_result
        self._on_names = on_names
        self._popen = popen
        self._spawn = spawn
        self._sleep = sleep
        self._python = python
        self._restart_delay_s = restart_delay_s
        self._next_id = 1
        self._in_flight: dict[int, bytes] = {}
        self._proc: Any = None
        self._sock: socket.socket | None = None
        self._stopping = False
        self.restarts = 0
        path = Path(settings_path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings, indent=2))
        tmp.replace(path)

    def start(self) -> None:
        # A socket pair, not pipes: the worker sees it as its stdin and stdout, and the controller side is a plain
        # socket -- under eventlet a green socket, the one primitive it handles everywhere. (Its green Popen wraps
        # pipe file objects it does not own; the first request was lost now and then.)
        mine, theirs = socket.socketpair()
        # Under eventlet both ends are green, i.e. O_NONBLOCK on their file descriptions. The worker's end is handed
        # over blocking: a child reading a non-blocking stdin takes a quiet moment (EAGAIN) for end of input and
        # quits between requests. The two ends are separate descriptions, so ours stays non-blocking for the green
        # reader. (The worker also sets its own descriptors blocking: it does not rely on its parent.)
        os.set_blocking(theirs.fileno(), True)
        try:
            self._proc = self._popen(
                [self._python, "-m", "mud_ryu.fetch.worker", self._settings_path],
                stdin=theirs.fileno(), stdout=theirs.fileno(), close_fds=True,
            )  # fmt: skip
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self._sock = mine
        log.info("resolver worker started, pid %s", self._proc.pid)
        for line in list(self._in_flight.values()):
            self._write(line)
        self._spawn(self._read_loop, self._proc, mine)

    def request(self, url: str, now: float, force: bool = False) -> None:
        ident = self._next_id
        self._next_id += 1
        line = encode_request(ident, MudRequest(url, force), now)
        self._in_flight[ident] = line
        self._write(line)

    def request_names(self, names: tuple[str, ...]) -> None:
        """Resolve a profile's DNS names through the configured resolvers (answered through ``on_names``)."""
        ident = self._next_id
        self._next_id += 1
        line = encode_names_request(ident, names)
        self._in_flight[ident] = line
        self._write(line)

    def pending(self) -> int:
        return len(self._in_flight)

    def _write(self, line: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendall(line)
        except OSError as exc:
            log.warning("resolver worker not accepting requests (%s); it will be restarted", exc)

    def _read_loop(self, proc: Any, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            if len(buffer) > MAX_BUFFER:
                log.error("resolver worker sent an over-long line; restarting it")
                proc.kill()
                break
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._deliver(line)
        with contextlib.suppress(OSError):
            sock.close()
        code = proc.wait()
        if self._stopping or proc is not self._proc:
            return
        log.error("resolver worker exited with %s; restarting in %.1f s", code, self._restart_delay_s)
        self.restarts += 1
        # Until a successor runs: a start that fails (fork refused, descriptors exhausted) must not end the restarts
        # for good, or every later resolution would wait forever with its devices quarantined.
        while True:
            self._sleep(self._restart_delay_s)
            if self._stopping:
                return
            try:
                self.start()
            except OSError as exc:
                log.error("resolver worker could not be started (%s); trying again in %.1f s", exc,
                          self._restart_delay_s)  # fmt: skip
            else:
                return

    def _deliver(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            result = decode_any_result(line)
        except WireError as exc:
            log.error("resolver worker sent a bad line (%s); ignored", exc)
            return
        self._in_flight.pop(result.id, None)
        try:
            if isinstance(result, WireNames):
                if self._on_names is not None:
                    self._on_names(result)
                return
            self._on_result(result)
        except Exception:  # the loop must outlive a bug in one result's handling
            log.exception("handling resolution %d failed", result.id)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        proc, self._proc = self._proc, None
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the worker reads EOF and exits
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout_s)
        except Exception:  # TimeoutExpired under either subprocess flavour
            proc.kill()
            proc.wait(timeout=timeout_s)
