"""Network namespaces as lab hosts, and the tiny traffic agent that runs in them (sandbox only).

A host is a network namespace held open by a ``sleep`` started under ``unshare --net``; commands
enter it with ``nsenter --net=/proc/PID/ns/net``. ``ip netns`` is not used, so nothing is
created under ``/run/netns`` (which would be on the host's file system). Everything here is
meant to run inside a :mod:`mud_ryu.lab.sandbox`, whose PID namespace also ends every process
started here when the job ends.

The agent (``python -m mud_ryu.lab.netns serve|probe``, JSON on stdin) gives each probe an
observed verdict with real sockets:

* ``allowed``: the TCP handshake completed and the server's greeting came back, or a UDP/DNS
  reply came back, or a ping was answered;
* ``blocked``: nothing came back within the bounded attempts (the switch dropped it);
* ``refused``: a TCP RST came back -- packets did pass, the listener was missing; the demo
  always starts a listener, so this is an error of the lab, never read as ``blocked``.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from mud_ryu.lab import sandbox

GREETING = b"mud-ryu-lab\n"
CONNECT_TIMEOUT = 1.0
TCP_ATTEMPTS = 2
UDP_ATTEMPTS = 3
HOLDER_LIFETIME = 300  # seconds; the sandbox ends it earlier


class NetnsError(RuntimeError):
    """``reason``: ``not_sandboxed``, ``command_failed``, ``agent_failed``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _run(argv: Sequence[str], stdin: str | None = None, timeout: float = 30.0) -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise NetnsError("command_failed", f"{' '.join(argv)}: {proc.stderr.strip()[:1000]}")
    return proc.stdout


@dataclass(frozen=True, slots=True)
class Netns:
    name: str
    pid: int  # the holder process whose network namespace this is

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *cmd]

    def run(self, *cmd: str) -> str:
        return _run(self.argv(cmd))


@dataclass(frozen=True, slots=True)
class Iface:
    """How a host is attached: the sandbox-side veth end to move in, its MAC and addresses."""

    host_end: str
    mac: str
    addresses: tuple[str, ...]  # CIDR, e.g. "10.0.0.2/24"
    default_route: bool = False  # on-link default route out of eth0 (no router in the lab)


class Hosts:
    """Creates namespaces and ends their holders (by PID) on exit."""

    def __init__(self) -> None:
        if not sandbox.in_sandbox():
            raise NetnsError("not_sandboxed", "lab hosts are only created inside a mud_ryu.lab sandbox")
        self._holders: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._holders:
            with suppress(ProcessLookupError):
                proc.kill()
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def create(self, name: str, iface: Iface) -> Netns:
        # unshare without --fork execs sleep in the new namespace: the Popen pid is the holder
        holder = subprocess.Popen(["unshare", "--net", "--", "sleep", str(HOLDER_LIFETIME)])
        self._holders.append(holder)
        ns = Netns(name, holder.pid)
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise NetnsError("command_failed", f"{name}: namespace holder did not unshare")
            time.sleep(0.005)
        _run(["ip", "link", "set", iface.host_end, "netns", str(holder.pid)])
        ns.run("ip", "link", "set", "lo", "up")
        ns.run("ip", "link", "set", iface.host_end, "name", "eth0")
        ns.run("ip", "link", "set", "eth0", "address", iface.mac)
        for addr in iface.addresses:
            ns.run("ip", "addr", "add", addr, "dev", "eth0")
        ns.run("ip", "link", "set", "eth0", "up")
        # netdev datapath + veth: without this TCP/UDP leave with bad checksums (RUNTIME.md)
        ns.run("ethtool", "-K", "eth0", "tx", "off")
        if iface.default_route:
            ns.run("ip", "route", "add", "default", "dev", "eth0")
        return ns


# --- servers ---------------------------------------------------------------------------------


@contextmanager
def serving(ns: Netns, tcp: Sequence[tuple[str, int]], udp: Sequence[tuple[str, int]],
            lifetime: float = 60.0) -> Iterator[None]:
    """Listeners in ``ns`` for the duration of the block; returns once all are bound (polled)."""
    spec = json.dumps({"tcp": [list(t) for t in tcp], "udp": [list(u) for u in udp], "lifetime": lifetime})
    proc = subprocess.Popen(ns.argv([sys.executable, "-m", "mud_ryu.lab.netns", "serve"]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(spec.encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            raise NetnsError("agent_failed", f"{ns.name}: servers not ready ({line[:200]!r})")
        yield
    finally:
        with suppress(BrokenPipeError):
            proc.stdin.close()  # EOF: the server exits
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def probe(ns: Netns, probes: Sequence[Mapping[str, Any]], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Run ``probes`` concurrently from ``ns``; one ``{"id", "observed", "detail"}`` each."""
    out = _run(ns.argv([sys.executable, "-m", "mud_ryu.lab.netns", "probe"]),
               stdin=json.dumps(list(probes)), timeout=timeout)
    result = json.loads(out)
    assert isinstance(result, list)
    return result


# --- the agent (runs inside a host namespace) --------------------------------------------------


def dns_query(name: str, qid: int) -> bytes:
    """A standard recursive A query for ``name``."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def dns_answer(query: bytes, addr: str) -> bytes | None:
    """An answer to ``query`` with one A record, or ``None`` for anything that is not a query."""
    if len(query) < 17 or query[2] & 0x80:
        return None
    qid = query[:2]
    end = query.find(b"\0", 12)
    if end < 0 or len(query) < end + 5:
        return None
    question = query[12:end + 5]
    header = qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    record = struct.pack("!HHHLH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(addr)
    return header + question + record


def _serve(spec: Mapping[str, Any]) -> int:
    socks: dict[socket.socket, str] = {}
    for addr, port in spec["tcp"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(16)
        socks[s] = "tcp"
    for addr, port in spec["udp"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        socks[s] = "dns" if port == 53 else "udp"
    print("READY", flush=True)
    deadline = time.monotonic() + float(spec["lifetime"])
    watched: list[Any] = [*socks, sys.stdin]
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(watched, [], [], left)
        for s in ready:
            if s is sys.stdin:
                if not sys.stdin.readline():
                    return 0  # the demo closed our stdin: done
                continue
            kind = socks[s]
            if kind == "tcp":
                conn, _ = s.accept()
                with conn:
                    conn.settimeout(CONNECT_TIMEOUT)
                    with suppress(OSError):
                        conn.sendall(GREETING)
            else:
                data, peer = s.recvfrom(2048)
                reply = dns_answer(data, "192.0.2.10") if kind == "dns" else data
                if reply is not None:
                    s.sendto(reply, peer)
    return 0


def _tcp(p: Mapping[str, Any]) -> tuple[str, str]:
    detail = ""
    for _ in range(TCP_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if p.get("src") or p.get("sport"):
                s.bind((p.get("src") or "", int(p.get("sport") or 0)))
            s.settimeout(CONNECT_TIMEOUT)
            try:
                s.connect((p["dst"], int(p["port"])))
                got = s.recv(len(GREETING))
            except ConnectionRefusedError:
                return "refused", "RST received (no listener)"
            except TimeoutError:
                detail = f"no answer in {TCP_ATTEMPTS} x {CONNECT_TIMEOUT}s"
                continue
            except OSError as exc:
                if exc.errno != errno.EHOSTUNREACH:
                    raise
                # ARP got no answer (a link just came back, or the switch dropped it): nothing came back.
                detail = "no ARP answer (EHOSTUNREACH)"
                continue
            if got == GREETING:
                return "allowed", "handshake + greeting"
            return "error", f"unexpected data {got[:32]!r}"
    return "blocked", detail


def _udp(p: Mapping[str, Any]) -> tuple[str, str]:
    for attempt in range(UDP_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(CONNECT_TIMEOUT)
            qid = 0x4D00 + attempt
            msg = dns_query(str(p.get("qname", "www.nist.local")), qid) if p["kind"] == "dns" else b"probe"
            s.sendto(msg, (p["dst"], int(p["port"])))
            try:
                data = s.recv(2048)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                return "refused", "ICMP port unreachable (no listener)"
            if p["kind"] == "dns":
                if data[:2] == struct.pack("!H", qid) and data[2] & 0x80:
                    return "allowed", f"DNS answer A {socket.inet_ntoa(data[-4:])}"
                return "error", "malformed DNS answer"
            return ("allowed", "echo") if data == msg else ("error", "wrong echo")
    return "blocked", f"no reply in {UDP_ATTEMPTS} x {CONNECT_TIMEOUT}s"


def _ping(p: Mapping[str, Any]) -> tuple[str, str]:
    for _ in range(TCP_ATTEMPTS):
        proc = subprocess.run(["ping", "-n", "-c", "1", "-W", "1", p["dst"]], capture_output=True, check=False,
                              timeout=10)
        if proc.returncode == 0:
            return "allowed", "echo reply"
    return "blocked", f"no echo reply in {TCP_ATTEMPTS} x 1s"


def _one(p: Mapping[str, Any]) -> dict[str, Any]:
    kinds = {"tcp": _tcp, "udp": _udp, "dns": _udp, "ping": _ping}
    try:
        observed, detail = kinds[p["kind"]](p)
    except Exception as exc:  # reported as a probe error (a mismatch), never as blocked
        observed, detail = "error", f"{type(exc).__name__}: {exc}"
    return {"id": p["id"], "observed": observed, "detail": detail}


def _probe(probes: Sequence[Mapping[str, Any]]) -> int:
    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        results = list(pool.map(_one, probes))
    json.dump(results, sys.stdout)
    return 0


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if argv[:1] == ["serve"]:
        return _serve(json.loads(sys.stdin.readline()))
    if argv[:1] == ["probe"]:
        return _probe(json.loads(sys.stdin.read()))
    print("usage: python -m mud_ryu.lab.netns serve|probe  (JSON on stdin)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
