"""What ``benchmarks/packet_in.py`` and ``benchmarks/mass_join.py`` run the fake switch against, all on loopback.

* :class:`Controller`: ``ryu-manager`` with one app on a free 127.0.0.1 port (mud_ryu.app with a ``mud.conf`` and
  a private state directory, or ``ryu.app.simple_switch_13``), ready once its port accepts, stopped by its PID.
  ``PYTHONPATH`` starts with this checkout, so ``mud_ryu.app`` is the code next to the benchmark, not whichever
  copy the interpreter has installed. ``PATH`` starts with a stub ``ovs-vsctl`` that fails at once: mud_ryu checks
  a connecting bridge's fail-mode through a local OVSDB, and a fake switch has none (nor may a benchmark touch
  the host's Open vSwitch).
* :class:`MudServer`: the lab's HTTPS MUD server (:mod:`mud_ryu.lab.mudserver`) on a free loopback port with a
  fresh lab PKI, serving signed files; the settings it returns let the app reach it and only it (``mud.bench`` ->
  127.0.0.1, 127.0.0.1/32 past the SSRF guard, its TLS CA and signing CA), signatures required.
* :func:`refused_url`: a MUD URL on a loopback port nothing listens on, so a fetch is refused at once.
* :func:`rss_kb`: resident memory of a process (and its children: the resolver worker) from ``/proc``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.modules.pop("tests", None)  # the checkout's tests package (the MUD file builder), not another one

from mud_ryu.lab import labctl, labpki  # noqa: E402
from tests.mudfiles import ip_mud_file  # noqa: E402

HOST = "mud.bench"
MUD_APP, SIMPLE_APP = "mud_ryu.app", "ryu.app.simple_switch_13"
STOP_WAIT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused_url(name: str = "unreachable") -> str:
    """A URL the URL gate accepts whose server refuses the connection at once (a closed loopback port)."""
    return f"https://{HOST}:{free_port()}/{name}.json"


class Controller:
    """``ryu-manager <app>`` on 127.0.0.1:``port`` with its log in ``workdir``; ``settings``: mud_ryu's [mud]."""

    def __init__(self, app: str, workdir: Path, settings: dict[str, Any] | None = None, timeout: float = 60.0):
        self.app, self.workdir = app, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf: Path | None = None
        if settings is not None:
            conf = workdir / "mud.conf"
            conf.write_text(labctl.render_conf(settings))
        argv = labctl.ryu_manager_argv(conf, ofp_port=self.port, app=app)
        if app == MUD_APP:  # the operator API on a port of its own (Ryu's default 8080 may be taken)
            argv[-1:-1] = ["--wsapi-host", "127.0.0.1", "--wsapi-port", str(free_port())]
        self.log_path = workdir / "ryu-manager.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=_env(workdir))  # fmt: skip
        try:
            labctl.wait_listening(self.port, timeout, self.proc)
        except labctl.ControllerError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to our own child by its PID, SIGKILL after STOP_WAIT_S."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_WAIT_S)
        self._log.close()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _env(workdir: Path) -> dict[str, str]:
    stub = workdir / "bin"
    stub.mkdir(exist_ok=True)
    vsctl = stub / "ovs-vsctl"
    vsctl.write_text("#!/bin/sh\n# benchmark stub: no local OVSDB here\nexit 1\n")
    vsctl.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{stub}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *extra])
    env.pop("MUD_RYU_FRAMEWORK", None)  # Ryu, as ryu-manager runs it
    return env


class MudServer:
    """The lab MUD server with signed files ``names`` (``<name>.json`` + ``.p7s``) under a fresh PKI."""

    def __init__(self, workdir: Path, names: list[str], timeout: float = 20.0) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.pki = labpki.create(workdir / "pki", HOST, datetime.now(UTC))
        root = workdir / "mud"
        root.mkdir(exist_ok=True)
        ready = workdir / "mudserver.ready"
        argv = [sys.executable, "-m", "mud_ryu.lab.mudserver", "--root", str(root), "--cert",
                str(self.pki.server_cert), "--key", str(self.pki.server_key), "--host", "127.0.0.1", "--port", "0",
                "--ready", str(ready)]  # fmt: skip
        with (workdir / "mudserver.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=_env(workdir))
        deadline = time.monotonic() + timeout
        while not ready.exists():  # written after the socket listens: readiness by file, polled
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"MUD server not ready (exit {self.proc.poll()})")
            time.sleep(0.02)
        self.port = int(ready.read_text().split()[1])
        for name in names:  # served from disk on each request: files written now are served
            body = self._body(name)
            (root / f"{name}.json").write_bytes(body)
            (root / f"{name}.p7s").write_bytes(labpki.sign_detached(body, self.pki.signer))

    def url(self, name: str) -> str:
        return f"https://{HOST}:{self.port}/{name}.json"

    def _body(self, name: str) -> bytes:
        """TCP 443 to one peer (a typical small profile); its mud-url and mud-signature name where it is served."""
        tree = json.loads(ip_mud_file(self.url(name), "203.0.113.10", 443, systeminfo=f"ofload bench {name}"))
        tree["ietf-mud:mud"]["mud-signature"] = self.url(name)[: -len(".json")] + ".p7s"
        return json.dumps(tree, indent=2).encode()

    def settings(self, state_dir: Path) -> dict[str, Any]:
        return {
            "state_dir": str(state_dir), "signature_policy": "required",
            "trust_anchors": [str(self.pki.signing_ca)], "tls_ca_bundle": str(self.pki.tls_ca),
            "static_hosts": [f"{HOST}=127.0.0.1"], "allowed_networks": ["127.0.0.1/32"],
            "fetch_deadline": "5.0",
        }  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> MudServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rss_kb(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def machine() -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, ``q`` in 0..100."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
