"""The controller's worker client with the stdlib's subprocess and threads: results come back through the
callback, and a worker that dies is restarted with the requests it had not answered."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from mud_ryu.fetch.client import WorkerClient
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.wire import WireResult

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


def test_under_eventlet_one_worker_serves_requests_spaced_in_time(tmp_path: Path) -> None:
    """The app's way (monkey-patched, green socket pair, green Popen): one worker answers requests with quiet
    moments between them -- no restart. Until this test, the worker inherited the green socket's O_NONBLOCK, took
    the first quiet moment on its stdin for end of input, quit, and was restarted a second later: every device
    waited ~0.7-1.4 s for its resolution (found by benchmarks/enforce_latency.py, 700 ms p50 instead of 3 ms)."""
    import json
    import sys

    done = subprocess.run([sys.executable, "-m", "tests.green_worker_job", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answered"] == ["url:not-https"] * 3
    assert report["restarts"] == 0 and report["same_worker"]


def test_the_worker_reads_blocking_whatever_its_parent_left(tmp_path: Path) -> None:
    """A parent handing over non-blocking descriptors (as a green socket is) must not make the worker quit early."""
    import json
    import socket
    import sys

    settings = tmp_path / "worker.json"
    settings.write_text(json.dumps({"cache_path": str(tmp_path / "cache.sqlite3"), "signature_policy": "off"}))
    mine, theirs = socket.socketpair()
    os.set_blocking(theirs.fileno(), False)
    proc = subprocess.Popen([sys.executable, "-m", "mud_ryu.fetch.worker", str(settings)], stdin=theirs.fileno(),
                            stdout=theirs.fileno(), stderr=subprocess.DEVNULL)  # fmt: skip
    theirs.close()
    mine.settimeout(30)
    try:
        from mud_ryu.fetch.manager import MudRequest
        from mud_ryu.fetch.wire import encode_request

        for ident in (1, 2):
            mine.sendall(encode_request(ident, MudRequest(f"http://mud.test/{ident}.json"), NOW))
            line = b""
            while not line.endswith(b"\n"):
                line += mine.recv(1 << 16)
            assert json.loads(line)["id"] == ident
            time.sleep(0.3)  # a quiet stdin: a worker reading it non-blocking would have seen EAGAIN as EOF by now
            assert proc.poll() is None
    finally:
        mine.close()
        proc.wait(timeout=30)


def test_a_restart_that_fails_to_start_is_tried_again(tmp_path: Path) -> None:
    """The first restart's spawn fails (as a refused fork would): the client keeps trying, and the request sent
    while no worker ran is answered by the successor."""
    results: list[WireResult] = []
    calls: list[int] = []

    def popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(11, "fork refused")
        return subprocess.Popen(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    settings = {"cache_path": str(tmp_path / "cache.sqlite3"), "signature_policy": "off", "deadline_s": 2.0}
    client = WorkerClient(
        settings, str(tmp_path / "worker.json"), results.append,
        popen=popen, spawn=_spawn, sleep=time.sleep, restart_delay_s=0.05,
    )  # fmt: skip
    client.start()
    try:
        first = client._proc
        os.kill(first.pid, signal.SIGKILL)
        assert _wait(lambda: len(calls) >= 2, 30)
        client.request("http://mud.test/not-https.json", NOW)
        assert _wait(lambda: len(results) == 1, 30)
        assert results[0].reason == "url:not-https" and len(calls) == 3
    finally:
        client.stop()
