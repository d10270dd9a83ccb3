"""The controller's worker client with the stdlib's subprocess and threads: results come back through the
callback, and a worker that dies is restarted with the requests it had not answered."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from mud_ryu.refresh import Outcome
from mud_ryu.resolve_wire import WireResult
from mud_ryu.worker_client import WorkerClient

NOW = 1_767_225_600.0


def _spawn(target: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def _wait(predicate: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_results_arrive_and_a_dead_worker_is_restarted(tmp_path: Path) -> None:
    results: list[WireResult] = []
    settings = {"cache_path": str(tmp_path / "cache.sqlite3"), "signature_policy": "off", "deadline_s": 2.0}
    client = WorkerClient(
        settings, str(tmp_path / "worker.json"), results.append,
        popen=subprocess.Popen, spawn=_spawn, sleep=time.sleep, restart_delay_s=0.05,
    )  # fmt: skip
    client.start()
    try:
        client.request("http://mud.test/not-https.json", NOW)
        assert _wait(lambda: len(results) == 1, 30)
        assert (results[0].outcome, results[0].reason) == (Outcome.FIRST_CONTACT_FAILED, "url:not-https")
        assert client.pending() == 0
        first = client._proc
        os.kill(first.pid, signal.SIGKILL)
        assert _wait(lambda: client.restarts == 1 and client._proc is not first, 30)
        client.request("https://user@mud.test/x.json", NOW)
        assert _wait(lambda: len(results) == 2, 30)
        assert results[1].reason == "url:userinfo"
    finally:
        client.stop()
    assert client._proc is None
