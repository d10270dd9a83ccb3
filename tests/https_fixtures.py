"""Start the HTTPS lab server (``tests/https_lab.py``) in a child process for a test, and stop it by PID.

Use ``run_https_lab(site, tmp_path)`` as a context manager, or the ``https_lab`` pytest fixture (a factory) after
``from tests.https_fixtures import https_lab_fixture  # noqa: F401`` in the test module. ``loopback_resolver`` maps
the lab's names (``mud.test``, ``*.mud.test``, ``other.test``) to 127.0.0.1 for a fetcher's resolver hook.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 30.0  # CA + 1 GiB bomb precompute take well under a second; this only bounds a broken start
STOP_TIMEOUT_S = 5.0
POLL_S = 0.02

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True, slots=True)
class Lab:
    """A running lab server. Connect to 127.0.0.1:``port`` with SNI/Host one of the certificate's names."""

    port: int
    slow_tls_port: int  # accepts TCP, never answers the ClientHello, closes after --slow-hold-s
    ca_pem_path: str  # the only root that signs the server certificate; use it as the client's CA bundle
    pid: int
    directory: Path
    log_path: Path

    def url(self, path: str, host: str = "mud.test") -> str:
        return f"https://{host}:{self.port}{path}"

    def slow_url(self, path: str, host: str = "mud.test") -> str:
        return f"https://{host}:{self.slow_tls_port}{path}"

    def requests_log(self) -> list[dict[str, Any]]:
        """Every request received so far: method, path, target, version, sni, headers (the logged subset)."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def client_context(self) -> ssl.SSLContext:
        """A verifying TLS client context that trusts only the lab CA."""
        return ssl.create_default_context(cafile=self.ca_pem_path)


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, stderr: Path, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.exists():
            data: dict[str, Any] = json.loads(ready.read_text(encoding="utf-8"))
            return data
        if proc.poll() is not None:
            raise RuntimeError(f"https_lab exited with {proc.returncode}: {stderr.read_text(errors='replace')}")
        time.sleep(POLL_S)
    raise RuntimeError(f"https_lab not ready after {timeout_s} s: {stderr.read_text(errors='replace')}")


def _wait_accepting(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(POLL_S)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM our own child by PID, SIGKILL if it has not gone after a bounded wait; always reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def run_https_lab(
    site: Mapping[str, Mapping[str, Any]],
    tmp_path: Path,
    *,
    conn_limit_s: float = 60.0,
    slow_hold_s: float = 30.0,
    max_lifetime_s: float = 1800.0,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[Lab]:
    """Run the lab with ``site`` (path -> route, see tests/https_routes.py) until the block exits.

    Relative ``body_file`` paths are resolved against ``tmp_path``."""
    directory = Path(tempfile.mkdtemp(prefix="https_lab-", dir=tmp_path))
    site_path = Path(tmp_path) / f"{directory.name}-site.json"
    site_path.write_text(json.dumps(site), encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "tests.https_lab",
        "--site",
        str(site_path),
        "--dir",
        str(directory),
        "--conn-limit-s",
        str(conn_limit_s),
        "--slow-hold-s",
        str(slow_hold_s),
        "--max-lifetime-s",
        str(max_lifetime_s),
    ]
    stdout, stderr = directory / "stdout.txt", directory / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        ready = _wait_ready(proc, directory / "ready.json", stderr, startup_timeout_s)
        if ready["pid"] != proc.pid:
            raise RuntimeError(f"ready file names pid {ready['pid']}, the child is {proc.pid}")
        _wait_accepting(int(ready["port"]), startup_timeout_s)
        yield Lab(
            port=int(ready["port"]),
            slow_tls_port=int(ready["slow_tls_port"]),
            ca_pem_path=str(ready["ca_pem_path"]),
            pid=proc.pid,
            directory=directory,
            log_path=Path(ready["log_path"]),
        )
    finally:
        _stop(proc)


@pytest.fixture(name="https_lab")
def https_lab_fixture(tmp_path: Path) -> Iterator[Callable[[Mapping[str, Mapping[str, Any]]], Lab]]:
    """A factory: ``lab = https_lab({...site...})``; every lab it started is stopped at the end of the test."""
    with contextlib.ExitStack() as stack:

        def start(site: Mapping[str, Mapping[str, Any]]) -> Lab:
            return stack.enter_context(run_https_lab(site, tmp_path))

        yield start


def loopback_resolver(mapping: Mapping[str, list[str]]) -> Resolver:
    """A resolver hook ``(host, port) -> [address, ...]`` answering only for the names in ``mapping``
    (case-insensitive, a trailing dot ignored); any other name fails like DNS would (socket.gaierror)."""
    table: dict[str, list[str]] = {}
    for name, addresses in mapping.items():
        table[name.lower().rstrip(".")] = [str(ipaddress.ip_address(a)) for a in addresses]

    def resolve(host: str, port: int) -> list[str]:
        del port  # the lab resolves names, not services
        found = table.get(host.lower().rstrip("."))
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"loopback_resolver: no addresses for {host!r}")
        return list(found)

    return resolve


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (signal 0 probes without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
