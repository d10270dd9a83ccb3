"""The sandboxed half of ``benchmarks/enforce_latency.py``: one lab, every phase, raw observations out.

Runs as ``sandbox.run_callable("latency_lab:job", payload)`` (fresh net/pid/mount namespaces). Builds:

* two PKIs (TLS for ``mud.bench``, MUD signing) and one signed MUD file per URL, served by
  :mod:`mud_ryu.lab.mudserver` on 127.0.0.1:443 in the sandbox's root namespace;
* a userspace OVS bridge ``br0`` (fail-mode secure, OpenFlow 1.3), port 1 = namespace ``devices``,
  port 2 = namespace ``peer`` (10.0.0.1/24);
* ``ryu-manager mud_ryu.app`` with signatures required, the bench CA as trust anchor, the bench TLS
  CA, ``mud.bench`` -> 127.0.0.1 and 127.0.0.1/32 allowed, connected as br0's controller.

Each phase offers ``devices`` new devices at ``rate`` per second (DHCPDISCOVER from a fresh MAC each),
waits (bounded) for their confirmations in the controller's log, probes a sample of them through the
data plane, then releases them (DHCPRELEASE) so the next phase starts from the same population. The
job returns send stamps and every log observation; the host side turns them into latencies.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import latency_net as net

from mud_ryu.lab import labctl, labpki, netns, ovs

HOST = "mud.bench"
OFP_PORT = 6653
PEER_MAC, DEVICES_MAC = "02:b0:00:00:00:01", "02:b0:00:00:00:fe"
PEER_IP = "10.0.0.1"


def probe_src_ip(mac: str) -> str:
    """Each device's own source address (the IP source guard binds one holder per address): 10.64.x.y from the
    MAC's last two octets."""
    octets = mac.split(":")
    return f"10.64.{int(octets[-2], 16)}.{int(octets[-1], 16)}"
ALLOWED_PORT, FORBIDDEN_PORT = 443, 8080
WARM_MAC = net.bench_mac(0xFF, 1)
CACHED_NAME = "shared"
WARMUP_TIMEOUT = 60.0
RELEASE_TIMEOUT = 15.0
PROBE_WAIT = 2.0

# ryu-manager logs through this config, so every line carries its wall-clock creation time (outcome lines have
# no monotonic stamp of their own; the job measures the wall/monotonic offset once to place them).
LOG_CONFIG = """[loggers]
keys=root
[handlers]
keys=stderr
[formatters]
keys=stamped
[logger_root]
level=INFO
handlers=stderr
[handler_stderr]
class=StreamHandler
args=(sys.stderr,)
formatter=stamped
[formatter_stamped]
format=%(created).6f %(name)s %(message)s
"""
_STAMP = re.compile(r"^(?P<wall>[0-9]+\.[0-9]+) ")
_CONFIRM = re.compile(
    r"confirmed mac=(?P<mac>\S+) dpid=\S+ port=\d+ state=(?P<state>\w+) url=\S+ monotonic=(?P<mono>[0-9.]+)"
)
_OUTCOME = re.compile(r"MUD URL (?P<url>\S+): (?P<outcome>\S+)")


def url_of(name: str) -> str:
    return f"https://{HOST}/{name}.json"


def mud_body(name: str) -> bytes:
    """The bench's MUD file for ``name``: TCP to the peer's ALLOWED_PORT only; its mud-url is the URL it is
    served at and its mud-signature the .p7s next to it (both checked by the enforcer)."""
    from tests.mudfiles import ip_mud_file

    tree = json.loads(ip_mud_file(url_of(name), PEER_IP, ALLOWED_PORT, systeminfo=f"latency bench {name}"))
    tree["ietf-mud:mud"]["mud-signature"] = f"https://{HOST}/{name}.p7s"
    return json.dumps(tree, indent=2).encode()


class LogTail:
    """Reads the controller's log as it grows; keeps each MAC's confirmations (state, monotonic) in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.confirms: dict[str, list[tuple[str, float]]] = {}
        self.outcomes: dict[str, list[tuple[str, float]]] = {}  # URL -> (outcome, wall-clock time)
        self.alerts: list[str] = []
        self.errors: list[str] = []

    def poll(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read(8 << 20)
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if m := _CONFIRM.search(line):
                self.confirms.setdefault(m["mac"], []).append((m["state"], float(m["mono"])))
            elif m := _OUTCOME.search(line):
                stamp = _STAMP.match(line)
                wall = float(stamp["wall"]) if stamp else float("nan")
                self.outcomes.setdefault(m["url"], []).append((m["outcome"], wall))
            elif "ALERT" in line:
                self.alerts.append(line[:300])
            elif "Traceback" in line or " error " in line.lower() or line.startswith("ERROR"):
                self.errors.append(line[:300])

    def enforced(self, mac: str) -> bool:
        """The device's flows under its profile were confirmed: a state=enforced line after its first line
        (the first confirmation is always the admission barrier; see enforce_latency.enforcement_stamp)."""
        return any(state == "enforced" for state, _ in self.confirms.get(mac, [])[1:])

    def wait(self, done: Any, deadline: float) -> bool:
        while time.monotonic() < deadline:
            self.poll()
            if done():
                return True
            time.sleep(0.01)
        self.poll()
        return bool(done())


def _write_mud(directory: Path, names: list[str], signer: labpki.Issued) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        body = mud_body(name)
        (directory / f"{name}.json").write_bytes(body)
        (directory / f"{name}.p7s").write_bytes(labpki.sign_detached(body, signer))


@contextlib.contextmanager
def _mud_server(workdir: Path, pki: labpki.LabPki, mud_dir: Path) -> Iterator[None]:
    ready = workdir / "mudserver.ready"
    argv = [sys.executable, "-m", "mud_ryu.lab.mudserver", "--root", str(mud_dir), "--cert", str(pki.server_cert),
            "--key", str(pki.server_key), "--host", "127.0.0.1", "--port", "443", "--ready", str(ready)]  # fmt: skip
    with (workdir / "mudserver.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15.0
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MUD server not ready (exit {proc.poll()})")
            time.sleep(0.02)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _controller(workdir: Path, settings: Mapping[str, Any], app: str) -> labctl.ControllerProcess:
    """``ryu-manager --config-file mud.conf --log-config-file logging.conf mud_ryu.app``, listening on OFP_PORT."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf, log_conf = workdir / "mud.conf", workdir / "logging.conf"
    conf.write_text(labctl.render_conf(settings))
    log_conf.write_text(LOG_CONFIG)
    argv = labctl.ryu_manager_argv(conf, ofp_port=OFP_PORT, app=app)
    argv[-1:-1] = ["--log-config-file", str(log_conf)]
    return labctl.ControllerProcess(argv, workdir / "ryu-manager.log", port=OFP_PORT)


def _phase_names(phases: list[Mapping[str, Any]]) -> list[list[str]]:
    """The MUD file name each device of each phase announces."""
    return [
        [CACHED_NAME if p["mode"] == "cached" else f"f{k}-{i}" for i in range(int(p["devices"]))]
        for k, p in enumerate(phases)
    ]


def _send_paced(sock: Any, frames: list[bytes], rate: float) -> list[float]:
    """Send ``frames`` at ``rate``/s on a fixed schedule (no drift); returns each frame's send stamp."""
    stamps: list[float] = []
    start = time.monotonic() + 0.05
    for i, frame in enumerate(frames):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamps.append(time.monotonic())
        sock.send(frame)
    return stamps


def _probe(devices_sock: Any, peer_pid: int, macs: list[str]) -> list[dict[str, Any]]:
    """Per sampled device: a forbidden SYN, then an allowed one; what reached the peer's wire."""
    capture = net.Capture(net.packet_socket_in(peer_pid, "eth0"))
    try:
        for mac in macs:
            devices_sock.send(net.tcp_syn(mac, PEER_MAC, probe_src_ip(mac), PEER_IP, 40000, FORBIDDEN_PORT))
            devices_sock.send(net.tcp_syn(mac, PEER_MAC, probe_src_ip(mac), PEER_IP, 40001, ALLOWED_PORT))
        allowed = {(mac, ALLOWED_PORT) for mac in macs}
        capture.read_until(time.monotonic() + PROBE_WAIT, stop_when=allowed)
        capture.read_until(time.monotonic() + 0.3)  # a forbidden frame sent first has had its chance too
        return [{"mac": mac, "allowed_arrived": (mac, ALLOWED_PORT) in capture.seen,
                 "forbidden_arrived": (mac, FORBIDDEN_PORT) in capture.seen} for mac in macs]  # fmt: skip
    finally:
        capture.close()


def _run_phase(
    k: int, phase: Mapping[str, Any], names: list[str], sock: Any, peer_pid: int, tail: LogTail,
    settings: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    macs = [net.bench_mac(k + 1, i) for i in range(len(names))]
    frames = [net.announce_frame(mac, url_of(name)) for mac, name in zip(macs, names, strict=True)]
    tail.poll()
    urls = sorted({url_of(n) for n in names})
    seen_before = {u: len(tail.outcomes.get(u, [])) for u in urls}  # a shared URL's earlier answers are not ours
    standing = sum(1 for lines in tail.confirms.values() if lines and lines[-1][0] != "absent")
    sent = _send_paced(sock, frames, float(phase["rate"]))
    tail.wait(lambda: all(tail.enforced(m) for m in macs), sent[-1] + float(settings["phase_timeout"]))
    enforced = [m for m in macs if tail.enforced(m)]
    sample = enforced[:: max(1, len(enforced) // int(settings["probe_sample"]))][: int(settings["probe_sample"])]
    probes = _probe(sock, peer_pid, sample) if sample else []
    admitted = [m for m in macs if m in tail.confirms]
    _send_paced(sock, [net.release_frame(m) for m in macs], float(settings["release_rate"]))
    released = tail.wait(lambda: all(tail.confirms[m][-1][0] == "absent" for m in admitted),
                         time.monotonic() + RELEASE_TIMEOUT)  # fmt: skip
    return {
        "mode": phase["mode"], "rate": phase["rate"], "devices": len(macs), "standing_at_start": standing,
        "sent": [{"mac": m, "url": url_of(n), "monotonic": s} for m, n, s in zip(macs, names, sent, strict=True)],
        "confirms": {m: tail.confirms.get(m, []) for m in macs},
        "outcomes": {u: tail.outcomes.get(u, [])[seen_before[u] :] for u in urls},
        "probes": probes, "released": released,
    }  # fmt: skip


def _warm_up(sock: Any, tail: LogTail) -> float:
    """Announce the shared URL from one device until it is enforced: the switch is connected and reconciled,
    and the shared file is fetched, verified and cached before any timing starts."""
    frame = net.announce_frame(WARM_MAC, url_of(CACHED_NAME))
    start = time.monotonic()
    deadline = start + WARMUP_TIMEOUT
    while time.monotonic() < deadline:
        sock.send(frame)
        if tail.wait(lambda: tail.enforced(WARM_MAC), min(deadline, time.monotonic() + 1.0)):
            return time.monotonic() - start
    raise RuntimeError(f"warm-up device not enforced in {WARMUP_TIMEOUT}s; log errors: {tail.errors[-5:]}")


def job(payload: Mapping[str, Any]) -> dict[str, Any]:
    phases: list[Mapping[str, Any]] = list(payload["phases"])
    workdir = Path("/tmp/bench")
    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    pki = labpki.create(workdir / "pki", HOST, now)
    names = _phase_names(phases)
    mud_dir = workdir / "mud"
    _write_mud(mud_dir, sorted({CACHED_NAME, *(n for ns in names for n in ns)}), pki.signer)
    settings = {
        "state_dir": str(workdir / "state"), "signature_policy": "required",
        "trust_anchors": [str(pki.signing_ca)], "tls_ca_bundle": str(pki.tls_ca),
        "static_hosts": [f"{HOST}=127.0.0.1"], "allowed_networks": ["127.0.0.1/32"],
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        stack.enter_context(_mud_server(workdir, pki, mud_dir))
        sw = stack.enter_context(ovs.running_ovs())
        sw.add_bridge("br0", [1, 2], kind="veth")
        hosts = stack.enter_context(netns.Hosts())
        devices = hosts.create("devices", netns.Iface("p1-h", DEVICES_MAC, ()))
        peer = hosts.create("peer", netns.Iface("p2-h", PEER_MAC, (f"{PEER_IP}/24",)))
        for ns in (devices, peer):  # no router solicitations or MLD reports in the measurements
            ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ctl = stack.enter_context(_controller(workdir / "ctl", settings, str(payload.get("app", labctl.DEFAULT_APP))))
        sw.vsctl("set-controller", "br0", f"tcp:127.0.0.1:{OFP_PORT}")
        tail = LogTail(ctl.log_path)
        sock = net.packet_socket_in(devices.pid, "eth0")
        stack.callback(sock.close)
        warm_s = _warm_up(sock, tail)
        results = [_run_phase(k, p, names[k], sock, peer.pid, tail, payload) for k, p in enumerate(phases)]
        alive = ctl.proc.poll() is None
        keep = int(payload.get("log_lines", 0))  # diagnostics: the controller log's last lines
        log_tail = ctl.log_path.read_text(errors="replace").splitlines()[-keep:] if keep > 0 else []
    return {
        "warmup_s": warm_s, "monotonic_minus_wall": time.monotonic() - time.time(), "phases": results,
        "controller_alive": alive, "alerts": tail.alerts[-50:], "errors": tail.errors[-50:], "log_tail": log_tail,
        "settings": settings,
    }  # fmt: skip
