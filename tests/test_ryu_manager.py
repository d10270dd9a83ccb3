"""The unmodified ``ryu-manager`` starts ``mud_ryu.app`` on Python 3.11 (eventlet shim via .pth)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ofhandshake import connect_as_switch

BIN = Path(sys.executable).parent
MANAGERS = [("ryu-manager", "ryu"), ("osken-manager", "os_ken")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate: object, deadline_s: float, what: str) -> None:
    assert callable(predicate)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)  # polling interval, not a fixed wait
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(params=MANAGERS, ids=[m for m, _ in MANAGERS])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, str]]:
    command, framework = request.param
    if not (BIN / command).exists():
        pytest.skip(f"{command} not installed (os-ken is optional)")
    port = _free_port()
    log = tmp_path / "ryu.log"
    conf = tmp_path / "mud.conf"
    conf.write_text(f"[mud]\nstate_dir = {tmp_path / 'state'}\n")
    env = {k: v for k, v in os.environ.items() if k != "MUD_RYU_FRAMEWORK"}
    proc = subprocess.Popen(
        [
            str(BIN / command),
            "--ofp-listen-host",
            "127.0.0.1",
            "--ofp-tcp-listen-port",
            str(port),
            # Ryu serves the operator API: give it a free port (os-ken 3 has no WSGI module, hence no option)
            *(["--wsapi-port", str(_free_port())] if framework == "ryu" else []),
            "--config-file",
            str(conf),
            "mud_ryu.app",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        yield proc, port, log, framework
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_manager_starts_app_and_stops_on_sigterm(
    manager: tuple[subprocess.Popen[bytes], int, Path, str],
) -> None:
    """Plain `ryu-manager mud_ryu.app` (and os-ken's `osken-manager`) load the app, which
    sees a switch connect; SIGTERM stops it cleanly."""
    proc, port, log, framework = manager
    _wait_for(lambda: _listening(port) or proc.poll() is not None, 30, "ryu-manager to listen")
    assert proc.poll() is None, log.read_text()
    sock = connect_as_switch(port, dpid=0xABCDEF)
    try:
        _wait_for(lambda: "switch connected dpid=0000000000abcdef" in log.read_text(), 15, "the app's log line")
    finally:
        sock.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) is not None
    text = log.read_text()
    assert "ALREADY_HANDLED" not in text and "Traceback" not in text, text
    assert f"started on {framework}" in text
