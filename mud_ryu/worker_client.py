"""The controller's side of the resolver worker: start it, send requests, deliver results, restart it if it dies.

Framework-neutral: the app passes its event library's ``Popen`` (green pipes under eventlet) and ``spawn``, so the
reader runs as a green thread of the controller and delivers results on the controller's own loop; tests pass the
stdlib's ``subprocess.Popen`` and threads. Requests in flight when the worker dies are sent again to its successor;
restarts are spaced (``restart_delay_s``) so a worker that dies at once cannot spin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mud_ryu.manager import MudRequest
from mud_ryu.resolve_wire import WireError, WireResult, decode_result, encode_request

log = logging.getLogger(__name__)

Spawn = Callable[..., Any]
Sleep = Callable[[float], None]


class WorkerClient:
    def __init__(
        self,
        settings: dict[str, Any],
        settings_path: str,
        on_result: Callable[[WireResult], None],
        *,
        popen: Callable[..., Any],
        spawn: Spawn,
        sleep: Sleep,
        python: str = sys.executable,
        restart_delay_s: float = 1.0,
    ) -> None:
        self._settings_path = settings_path
        self._on_result = on_result
        self._popen = popen
        self._spawn = spawn
        self._sleep = sleep
        self._python = python
        self._restart_delay_s = restart_delay_s
        self._next_id = 1
        self._in_flight: dict[int, bytes] = {}
        self._proc: Any = None
        self._stopping = False
        self.restarts = 0
        path = Path(settings_path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings, indent=2))
        tmp.replace(path)

    def start(self) -> None:
        self._proc = self._popen(
            [self._python, "-m", "mud_ryu.resolve_worker", self._settings_path],
            stdin=-1, stdout=-1, close_fds=True,
            bufsize=-1,  # eventlet's green Popen defaults to unbuffered: one read(1) per byte of every result
        )  # fmt: skip
        log.info("resolver worker started, pid %s", self._proc.pid)
        for line in list(self._in_flight.values()):
            self._write(line)
        self._spawn(self._read_loop, self._proc)

    def request(self, url: str, now: float, force: bool = False) -> None:
        ident = self._next_id
        self._next_id += 1
        line = encode_request(ident, MudRequest(url, force), now)
        self._in_flight[ident] = line
        self._write(line)

    def pending(self) -> int:
        return len(self._in_flight)

    def _write(self, line: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            log.warning("resolver worker not accepting requests (%s); it will be restarted", exc)

    def _read_loop(self, proc: Any) -> None:
        for line in proc.stdout:
            try:
                result = decode_result(line)
            except WireError as exc:
                log.error("resolver worker sent a bad line (%s); ignored", exc)
                continue
            self._in_flight.pop(result.id, None)
            try:
                self._on_result(result)
            except Exception:  # the loop must outlive a bug in one result's handling
                log.exception("handling the resolution of %s failed", result.url[:255])
        code = proc.wait()
        if self._stopping or proc is not self._proc:
            return
        log.error("resolver worker exited with %s; restarting in %.1f s", code, self._restart_delay_s)
        self.restarts += 1
        self._sleep(self._restart_delay_s)
        if not self._stopping:
            self.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout_s)
        except Exception:  # TimeoutExpired under either subprocess flavour
            proc.kill()
            proc.wait(timeout=timeout_s)
