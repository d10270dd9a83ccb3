"""Open vSwitch (userspace datapath) started by hand, for use INSIDE a sandbox.

``ovs-ctl`` is not used: it loads the kernel module. The daemons are started with the private
``OVS_*DIR`` directories the sandbox sets (every OVS tool honours them), readiness is polled,
and they are stopped with ``ovs-appctl exit`` or, failing that, by the PID they wrote.

This module holds the daemons (:class:`Ovs`, :class:`OvsDirs`) and the sandbox jobs; a bridge's
flows and traces are :mod:`mud_ryu.lab.ovs_bridge`, trace verdicts :mod:`mud_ryu.lab.ovs_trace`.

Host-side entry points (:func:`trace_in_sandbox`, :func:`measure_bundle_install_rate`) run the
whole job in a fresh sandbox and return plain data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from mud_ryu.lab import sandbox
from mud_ryu.lab.ovs_bridge import Bridge, run_tool
from mud_ryu.lab.ovs_trace import OFPP_LOCAL, OvsError, TraceVerdict, parse_trace

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"

# Bridge, the trace verdict and the error live in ovs_bridge / ovs_trace; importable from here as before.
__all__ = [
    "OFPP_LOCAL",
    "SCHEMA",
    "Bridge",
    "InstallRate",
    "Ovs",
    "OvsDirs",
    "OvsError",
    "TraceCase",
    "TraceVerdict",
    "bundle_rate_job",
    "measure_bundle_install_rate",
    "parse_trace",
    "running_ovs",
    "trace_in_sandbox",
    "trace_job",
]


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class OvsDirs:
    run: str
    db: str
    log: str
    etc: str

    @classmethod
    def from_env(cls) -> OvsDirs:
        missing = [n for n in sandbox.OVS_DIR_ENV if not os.environ.get(n)]
        if missing or not sandbox.in_sandbox():
            raise OvsError("not_sandboxed", "OVS is only started inside a mud_ryu.lab sandbox")
        run, db, log, etc = (os.environ[n] for n in sandbox.OVS_DIR_ENV)
        return cls(run, db, log, etc)


class Ovs:
    """ovsdb-server + ovs-vswitchd started by this object; use as a context manager."""

    def __init__(self, dirs: OvsDirs) -> None:
        self.dirs = dirs
        self._pids: dict[str, int] = {}

    def __enter__(self) -> Ovs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _pidfile(self, daemon: str) -> str:
        return os.path.join(self.dirs.run, f"{daemon}.pid")

    def start(self) -> None:
        d = self.dirs
        for stale in os.listdir(d.run):  # left over by a killed run: would confuse ovs-appctl
            if stale.endswith((".pid", ".ctl", ".sock")):
                os.unlink(os.path.join(d.run, stale))
        db = os.path.join(d.db, "conf.db")
        if not os.path.exists(db):
            run_tool(["ovsdb-tool", "create", db, SCHEMA])
        run_tool(
            [
                "ovsdb-server",
                db,
                f"--remote=punix:{d.run}/db.sock",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                "--pidfile",
                "--detach",
                "--log-file",
            ]
        )
        self._wait_pid("ovsdb-server")
        run_tool(["ovs-vsctl", "--no-wait", "init"])
        run_tool(["ovs-vswitchd", f"unix:{d.run}/db.sock", "--pidfile", "--detach", "--log-file"])
        self._wait_pid("ovs-vswitchd")
        self._poll(lambda: self.ctl_path("ovs-vswitchd") is not None, "ovs-vswitchd control socket")

    def _wait_pid(self, daemon: str) -> None:
        self._poll(lambda: _read_pid(self._pidfile(daemon)) is not None, f"{daemon} pidfile")
        pid = _read_pid(self._pidfile(daemon))
        assert pid is not None
        self._pids[daemon] = pid

    @staticmethod
    def _poll(ready: Any, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise OvsError("start_failed", f"{what} not ready after {timeout}s")
            time.sleep(0.01)

    def ctl_path(self, daemon: str) -> str | None:
        pid = self._pids.get(daemon)
        path = os.path.join(self.dirs.run, f"{daemon}.{pid}.ctl")
        return path if pid is not None and os.path.exists(path) else None

    def stop(self) -> None:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pid = self._pids.pop(daemon, None)
            if pid is None:
                continue
            with suppress(OvsError, subprocess.TimeoutExpired):
                run_tool(["ovs-appctl", "-t", daemon, "exit"])
            self._reap(pid)

    @staticmethod
    def _reap(pid: int, timeout: float = 5.0) -> None:
        """Wait for a daemon we started to be gone; SIGKILL it (by its PID) if ``exit`` failed.
        Inside the sandbox we are PID 1 and the detached daemons are our children to reap."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return
            if state == "Z":
                break
            time.sleep(0.01)
        else:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def vsctl(self, *args: str) -> str:
        return run_tool(["ovs-vsctl", "--timeout=30", *args])

    def add_bridge(self, name: str, ports: Sequence[int], kind: str = "internal") -> Bridge:
        """A netdev bridge in secure fail mode (flows never vanish) with ports ``p<N>`` at
        OpenFlow port N. ``kind``: ``internal`` ports or ``veth`` pairs (peer ``p<N>-h``)."""
        if kind not in ("internal", "veth"):
            raise ValueError(f"port kind {kind!r}")
        cmd = [
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
            "protocols=OpenFlow13",
            "fail-mode=secure",
        ]
        for port in ports:
            pname = f"p{port}"
            if kind == "veth":
                run_tool(["ip", "link", "add", pname, "type", "veth", "peer", "name", f"{pname}-h"])
                for ifname in (pname, f"{pname}-h"):
                    run_tool(["ip", "link", "set", ifname, "up"])
                if shutil.which("ethtool"):  # netdev + veth: TCP/UDP checksums are wrong otherwise
                    run_tool(["ethtool", "-K", f"{pname}-h", "tx", "off"])
                cmd += ["--", "add-port", name, pname, "--", "set", "interface", pname, f"ofport_request={port}"]
            else:
                cmd += [
                    "--",
                    "add-port",
                    name,
                    pname,
                    "--",
                    "set",
                    "interface",
                    pname,
                    "type=internal",
                    f"ofport_request={port}",
                ]
        self.vsctl(*cmd)
        bridge = Bridge(self, name)
        got = set(bridge.dp_to_of().values()) - {OFPP_LOCAL}
        if got != set(ports):
            raise OvsError("start_failed", f"bridge ports {sorted(got)} != requested {sorted(ports)}")
        return bridge

    def del_bridge(self, name: str) -> None:
        self.vsctl("--if-exists", "del-br", name)


@contextmanager
def running_ovs() -> Iterator[Ovs]:
    with Ovs(OvsDirs.from_env()) as ovs:
        yield ovs


# --- jobs that run inside a sandbox (JSON in, JSON out) --------------------------------------


def trace_job(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``{"cases": [{"ports": [...], "flows": TEXT, "packets": [FLOW, ...]}]}`` -> per case
    ``{"verdicts": [...], "flow_count": N}`` or ``{"error": ...}`` (one case's bad flows do
    not hide the others' results)."""
    results: list[dict[str, Any]] = []
    with running_ovs() as ovs:
        for case in payload["cases"]:
            bridge = ovs.add_bridge("br0", list(case["ports"]))
            try:
                bridge.add_flows(case["flows"], bundle=True)
                verdicts = bridge.trace_many(case["packets"])
                results.append({"verdicts": [v.to_json() for v in verdicts], "flow_count": len(bridge.dump_flows())})
            except OvsError as exc:
                results.append({"error": exc.message, "reason": exc.reason})
            finally:
                ovs.del_bridge("br0")
    return {"cases": results}


def bundle_rate_job(payload: Mapping[str, Any]) -> dict[str, Any]:
    text = str(payload["flows"])
    with running_ovs() as ovs:
        bridge = ovs.add_bridge("br0", list(payload.get("ports", [1, 2])))
        runs = [bridge.bundle_install_seconds(text) for _ in range(int(payload.get("repeat", 3)))]
        count = len(bridge.dump_flows())
    return {"flows": count, "seconds": runs}


# --- host-side API ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceCase:
    ports: tuple[int, ...]
    flows: str
    packets: tuple[str, ...]


def trace_in_sandbox(cases: Sequence[TraceCase], *, timeout: float = 600.0) -> list[list[TraceVerdict]]:
    """Load each case's flows into a fresh bridge in one sandboxed OVS and trace its packets."""
    payload = {"cases": [{"ports": list(c.ports), "flows": c.flows, "packets": list(c.packets)} for c in cases]}
    reply = sandbox.run_callable("mud_ryu.lab.ovs:trace_job", payload, timeout=timeout)
    out: list[list[TraceVerdict]] = []
    for res in reply["cases"]:
        if "error" in res:
            raise OvsError(str(res["reason"]), str(res["error"]))
        out.append([TraceVerdict.from_json(v) for v in res["verdicts"]])
    return out


@dataclass(frozen=True, slots=True)
class InstallRate:
    flows: int
    best_seconds: float

    @property
    def flows_per_second(self) -> float:
        return self.flows / self.best_seconds if self.best_seconds > 0 else float("inf")


def measure_bundle_install_rate(
    flow_text: str, *, ports: Sequence[int] = (1, 2), repeat: int = 3, timeout: float = 600.0
) -> InstallRate:
    """OVS's install rate for ``flow_text`` with ``ovs-ofctl --bundle add-flows`` into an empty
    userspace bridge (best of ``repeat`` runs), measured in a fresh sandbox."""
    reply = sandbox.run_callable(
        "mud_ryu.lab.ovs:bundle_rate_job",
        {"flows": flow_text, "ports": list(ports), "repeat": repeat},
        timeout=timeout,
    )
    return InstallRate(int(reply["flows"]), min(float(s) for s in reply["seconds"]))
