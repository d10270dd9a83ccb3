"""Open vSwitch (userspace datapath) started by hand, for use INSIDE a sandbox.

``ovs-ctl`` is not used: it loads the kernel module. The daemons are started with the private
``OVS_*DIR`` directories the sandbox sets (every OVS tool honours them), readiness is polled,
and they are stopped with ``ovs-appctl exit`` or, failing that, by the PID they wrote.

:meth:`Bridge.trace` turns ``ofproto/trace`` into a verdict: the last ``Datapath actions:``
line, with datapath port numbers mapped back to OpenFlow ports. A trace that has no such
line (a syntax error, a missing port) raises :class:`OvsError`, never reads as a drop. Many
traces go over one unixctl (JSON-RPC) connection instead of one ``ovs-appctl`` process each.

Host-side entry points (:func:`trace_in_sandbox`, :func:`measure_bundle_install_rate`) run the
whole job in a fresh sandbox and return plain data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from mud_ryu.lab import sandbox

OFPP_LOCAL = 0xFFFFFFFE
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
_TOKEN_RE = re.compile(r"[^,()]+|[(),]")


class OvsError(RuntimeError):
    """``reason``: ``not_sandboxed``, ``start_failed``, ``command_failed``, ``add_flows_failed``,
    ``trace_error``, ``unknown_port``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class TraceVerdict:
    """``outputs``: OpenFlow ports (``OFPP_LOCAL`` for the bridge port); ``other``: datapath
    actions that are neither outputs nor controller copies (none are expected from mud_ryu)."""

    outputs: frozenset[int]
    to_controller: bool
    other: tuple[str, ...]
    datapath_actions: str

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.to_controller and not self.other

    def to_json(self) -> dict[str, Any]:
        return {"outputs": sorted(self.outputs), "to_controller": self.to_controller, "other": list(self.other),
                "datapath_actions": self.datapath_actions}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TraceVerdict:
        return cls(frozenset(data["outputs"]), bool(data["to_controller"]), tuple(data["other"]),
                   str(data["datapath_actions"]))


def _split_top(actions: str) -> list[str]:
    """Split a datapath action list on the commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for tok in _TOKEN_RE.findall(actions):
        if tok == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += tok == "("
        depth -= tok == ")"
        cur += tok
    if cur.strip():
        parts.append(cur.strip())
    return parts


def parse_trace(text: str, dp_to_of: Mapping[int, int]) -> TraceVerdict:
    lines = [ln for ln in text.splitlines() if ln.startswith("Datapath actions:")]
    if not lines:
        raise OvsError("trace_error", f"no 'Datapath actions:' line in trace: {text.strip()[-500:]}")
    actions = lines[-1].partition(":")[2].strip()
    outputs: set[int] = set()
    to_controller = False
    other: list[str] = []
    for act in _split_top(actions):
        if act == "drop":
            continue
        if act.isdigit():
            dp = int(act)
            if dp not in dp_to_of:
                raise OvsError("unknown_port", f"datapath port {dp} not on the bridge ({actions})")
            outputs.add(dp_to_of[dp])
        elif act.startswith("userspace(") and "controller(" in act:
            to_controller = True
        else:
            other.append(act)
    return TraceVerdict(frozenset(outputs), to_controller, tuple(other), actions)


class _Unixctl:
    """A JSON-RPC client for a daemon's unixctl socket (what ``ovs-appctl`` speaks)."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(30)
        self._sock.connect(path)
        self._buf = ""
        self._dec = json.JSONDecoder()
        self._id = 0

    def call(self, method: str, *params: str) -> str:
        self._id += 1
        self._sock.sendall(json.dumps({"method": method, "params": list(params), "id": self._id}).encode())
        while True:
            text = self._buf.lstrip()
            if text:
                try:
                    msg, end = self._dec.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self._buf = text[end:]
                    if msg.get("id") != self._id:
                        continue
                    if msg.get("error") is not None:
                        raise OvsError("command_failed", f"{method}: {str(msg['error']).strip()}")
                    return str(msg.get("result") or "")
            chunk = self._sock.recv(65536)
            if not chunk:
                raise OvsError("command_failed", f"{method}: unixctl connection closed")
            self._buf += chunk.decode()

    def close(self) -> None:
        self._sock.close()


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise OvsError("command_failed", f"{' '.join(argv[:4])}...: {proc.stderr.strip()[:2000]}")
    return proc.stdout


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
            _run(["ovsdb-tool", "create", db, SCHEMA])
        _run(["ovsdb-server", db, f"--remote=punix:{d.run}/db.sock",
              "--remote=db:Open_vSwitch,Open_vSwitch,manager_options", "--pidfile", "--detach", "--log-file"])
        self._wait_pid("ovsdb-server")
        _run(["ovs-vsctl", "--no-wait", "init"])
        _run(["ovs-vswitchd", f"unix:{d.run}/db.sock", "--pidfile", "--detach", "--log-file"])
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
                _run(["ovs-appctl", "-t", daemon, "exit"])
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
        return _run(["ovs-vsctl", "--timeout=30", *args])

    def add_bridge(self, name: str, ports: Sequence[int], kind: str = "internal") -> Bridge:
        """A netdev bridge in secure fail mode (flows never vanish) with ports ``p<N>`` at
        OpenFlow port N. ``kind``: ``internal`` ports or ``veth`` pairs (peer ``p<N>-h``)."""
        if kind not in ("internal", "veth"):
            raise ValueError(f"port kind {kind!r}")
        cmd = ["add-br", name, "--", "set", "bridge", name, "datapath_type=netdev", "protocols=OpenFlow13",
               "fail-mode=secure"]
        for port in ports:
            pname = f"p{port}"
            if kind == "veth":
                _run(["ip", "link", "add", pname, "type", "veth", "peer", "name", f"{pname}-h"])
                for ifname in (pname, f"{pname}-h"):
                    _run(["ip", "link", "set", ifname, "up"])
                if shutil.which("ethtool"):  # netdev + veth: TCP/UDP checksums are wrong otherwise
                    _run(["ethtool", "-K", f"{pname}-h", "tx", "off"])
                cmd += ["--", "add-port", name, pname, "--", "set", "interface", pname, f"ofport_request={port}"]
            else:
                cmd += ["--", "add-port", name, pname, "--", "set", "interface", pname, "type=internal",
                        f"ofport_request={port}"]
        self.vsctl(*cmd)
        bridge = Bridge(self, name)
        got = set(bridge.dp_to_of().values()) - {OFPP_LOCAL}
        if got != set(ports):
            raise OvsError("start_failed", f"bridge ports {sorted(got)} != requested {sorted(ports)}")
        return bridge

    def del_bridge(self, name: str) -> None:
        self.vsctl("--if-exists", "del-br", name)


class Bridge:
    def __init__(self, ovs: Ovs, name: str) -> None:
        self.ovs = ovs
        self.name = name

    def add_flows(self, text: str, *, bundle: bool = True) -> None:
        """``ovs-ofctl add-flows`` from text; with ``bundle`` all-or-nothing in one transaction."""
        argv = ["ovs-ofctl", "-O", "OpenFlow13", *(["--bundle"] if bundle else []), "add-flows", self.name, "-"]
        try:
            _run(argv, stdin=text)
        except OvsError as exc:
            raise OvsError("add_flows_failed", str(exc)) from exc

    def del_flows(self) -> None:
        _run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", self.name])

    def dump_flows(self) -> list[str]:
        """Flow lines without the volatile counters (duration, n_packets, n_bytes)."""
        out = _run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", self.name])
        return [ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("OFPST_FLOW")]

    def dp_to_of(self) -> dict[int, int]:
        """Datapath port number -> OpenFlow port number, from ``dpif/show``."""
        out = _run(["ovs-appctl", "dpif/show"])
        mapping: dict[int, int] = {}
        in_bridge = False
        for line in out.splitlines():
            if re.match(r"^\s{2}\S+:$", line):
                in_bridge = line.strip() == f"{self.name}:"
                continue
            m = re.match(r"^\s{4}\S+ (\d+)/(\d+):", line)
            if in_bridge and m:
                of = int(m.group(1))
                mapping[int(m.group(2))] = OFPP_LOCAL if of == 65534 else of
        return mapping

    def trace(self, flow: str) -> TraceVerdict:
        return self.trace_many([flow])[0]

    def trace_many(self, flows: Sequence[str]) -> list[TraceVerdict]:
        ctl = self.ovs.ctl_path("ovs-vswitchd")
        if ctl is None:
            raise OvsError("trace_error", "ovs-vswitchd is not running")
        dp_map = self.dp_to_of()
        client = _Unixctl(ctl)
        try:
            return [parse_trace(self._trace_text(client, flow), dp_map) for flow in flows]
        finally:
            client.close()

    def _trace_text(self, client: _Unixctl, flow: str) -> str:
        try:
            return client.call("ofproto/trace", self.name, flow)
        except OvsError as exc:  # a flow OVS cannot parse: an error, never a drop
            raise OvsError("trace_error", f"{flow}: {exc.message}") from exc

    def bundle_install_seconds(self, text: str) -> float:
        """Wall time of one ``--bundle add-flows`` of ``text`` into this (emptied) bridge."""
        self.del_flows()
        start = time.perf_counter()
        self.add_flows(text, bundle=True)
        return time.perf_counter() - start


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
                results.append({"verdicts": [v.to_json() for v in verdicts],
                                "flow_count": len(bridge.dump_flows())})
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
        "mud_ryu.lab.ovs:bundle_rate_job", {"flows": flow_text, "ports": list(ports), "repeat": repeat},
        timeout=timeout,
    )
    return InstallRate(int(reply["flows"]), min(float(s) for s in reply["seconds"]))
