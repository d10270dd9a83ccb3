"""A fake OpenFlow 1.3 switch that loads a controller with packet-ins (BENCHMARKS.md item 3, over a socket).

Each :class:`FakeSwitch` is one TCP connection to a controller on 127.0.0.1 with a given dpid and N ports. It
answers what a controller asks at connect (FEATURES, port descriptions, meter features, flow statistics: an
empty table, BARRIER, ECHO), sends its own ECHO_REQUEST every 250 ms and records each round trip, counts what the
controller sends, and sends PACKET_INs built by :mod:`fake_switch_wire` (``struct`` only, no Ryu objects).

It learns the controller's own flows from the FLOW_MODs sent at connect instead of hard-coding cookies: the
learning copy (table 0, no match, output to the controller: mud_ryu's learning flow, or simple_switch_13's
table-miss) and the DHCP punt (table 0, ``udp_src=68,udp_dst=67``, output to the controller: mud_ryu's discovery
punt, one per access port). A packet-in then carries that flow's cookie and table, as a real switch's would.

What counts as the controller's answer to a packet-in: any FLOW_MOD (add/modify) whose match names the frame's
source MAC (``eth_src``/``eth_dst``), or a PACKET_OUT carrying a frame from it. mud_ryu's classification flow of a
device (table 0, ``in_port+eth_src``, write-metadata with the managed bit) also tells the device's profile:
quarantine (profile 1) or a real one (>= 2); the next BARRIER_REQUEST answered confirms it, as a switch does.

Threads, not eventlet: a reader (parses and answers; never blocks on sending, so a controller stuck writing can
always drain), a writer (control messages first, then packet-in chunks, so an echo or barrier reply never waits
behind our own backlog, only behind the controller's) and the echo ticker. Every loop ends when the switch is
closed; every wait has a deadline.

Standalone use: ``python benchmarks/fake_switch.py --port 6653 --path learning --count 10000`` against a running
controller (``ryu-manager ryu.app.simple_switch_13`` or ``mud_ryu.app``) prints what it measured.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_switch_loads as loads
import fake_switch_wire as w

ECHO_INTERVAL_S = 0.25
ECHO_XID_BASE = 0xEC000000  # our echo requests; the controller's own xids never reach this range in a run
CHUNK = 32  # packet-ins per write: an echo waits for one chunk at most on our side
MANAGED_BIT = 1 << 56  # mud_ryu's metadata: the source is a managed (MUD) device; bits 0-15 its profile
QUARANTINE = 1


class FakeSwitch:
    """One switch: connect, wait until the controller set it up, send packet-ins, read what came back."""

    def __init__(self, dpid: int, ports: Sequence[int], controller_port: int, echo_interval: float = ECHO_INTERVAL_S):
        self.dpid, self.ports, self.controller_port = dpid, list(ports), controller_port
        self.echo_interval = echo_interval
        self.counts: collections.Counter[int] = collections.Counter()  # message type -> received
        self.answered: dict[bytes, float] = {}  # MAC -> first answer (FLOW_MOD naming it or PACKET_OUT from it)
        self.answers_per_mac: collections.Counter[bytes] = collections.Counter()
        self.quarantined: dict[bytes, float] = {}  # MAC -> barrier answered after its quarantine classification
        self.enforced: dict[bytes, float] = {}  # MAC -> barrier answered after its classification under a profile
        self.learn_flow: tuple[int, int] | None = None  # (cookie, table) of the learning copy / table-miss
        self.punt_flow: tuple[int, int] | None = None  # (cookie, table) of the DHCP punt
        self.punt_ports: set[int] = set()
        self.echo: list[tuple[float, float]] = []  # (sent at, round trip s)
        self.last_flow_mod = 0.0
        self.barriers_after_setup = 0
        self.first_sent = self.last_sent = 0.0
        self.disconnected: str | None = None
        self._echo_out: dict[int, float] = {}
        self._echo_seq = itertools.count()
        self._unconfirmed: list[tuple[bytes, int]] = []
        self._control: collections.deque[bytes] = collections.deque()
        self._bulk: collections.deque[bytes] = collections.deque()
        self._bulk_done = threading.Event()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # ---- life
    def connect(self, timeout: float = 10.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", self.controller_port), timeout=timeout)
        # Blocking: a controller may stop reading for seconds under load (that is what is measured), and a timed-out
        # sendall cannot say how much it sent. The reader waits in select() instead, to notice close().
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._queue(w.message(w.HELLO, 1), control=True)
        for target in (self._reader, self._writer, self._echo_loop):
            thread = threading.Thread(target=target, name=f"fake-switch-{self.dpid:x}-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already gone: the controller closed first
                self._sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def wait_ready(self, timeout: float, *, punts: bool) -> bool:
        """Until the controller installed its learning flow (and, with ``punts``, a DHCP punt on every port and a
        barrier behind them), then one echo round trip: Ryu answers echoes from the same event queue that moved the
        switch to MAIN_DISPATCHER, so after it the app receives packet-ins."""

        def set_up() -> bool:
            if self.learn_flow is None:
                return False
            return not punts or (self.punt_ports >= set(self.ports) and self.barriers_after_setup > 0)

        if not wait_until(set_up, timeout, lambda: self.disconnected is not None):
            return False
        return self.echo_round_trip(timeout) is not None

    def echo_round_trip(self, timeout: float) -> float | None:
        before = len(self.echo)
        self._send_echo()
        if wait_until(lambda: len(self.echo) > before, timeout, lambda: self.disconnected is not None):
            return self.echo[-1][1]
        return None

    # ---- load
    def send(self, messages: Sequence[bytes]) -> None:
        """Queue ``messages`` (packet-ins) for the writer, in chunks; returns at once (see :meth:`wait_sent`)."""
        self._bulk_done.clear()
        with self._wake:
            self.first_sent = 0.0  # set again by the writer as the first chunk goes out
            for i in range(0, len(messages), CHUNK):
                self._bulk.append(b"".join(messages[i : i + CHUNK]))
            self._wake.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        return self._bulk_done.wait(timeout)

    def echo_since(self, start: float, end: float | None = None) -> list[float]:
        """Round trips of the echoes sent in [start, end]; an echo still unanswered counts as its age so far (a
        lower bound), so a controller that stops answering shows up as a growing RTT, not as a missing sample."""
        now = time.monotonic()
        stop = end if end is not None else now
        done = [rtt for sent, rtt in list(self.echo) if start <= sent <= stop]
        pending = [now - sent for sent in list(self._echo_out.values()) if start <= sent <= stop]
        return done + pending

    def unanswered_echoes(self) -> int:
        return len(self._echo_out)

    # ---- threads
    def _queue(self, data: bytes, *, control: bool) -> None:
        with self._wake:
            (self._control if control else self._bulk).append(data)
            self._wake.notify_all()

    def _writer(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            with self._wake:
                while not self._control and not self._bulk and not self._stop.is_set():
                    self._bulk_done.set()
                    self._wake.wait(0.5)
                if self._stop.is_set():
                    return
                bulk = not self._control
                data = self._bulk.popleft() if bulk else self._control.popleft()
            try:
                if bulk and not self.first_sent:
                    self.first_sent = time.monotonic()
                self._sock.sendall(data)
                if bulk:
                    self.last_sent = time.monotonic()
            except OSError as error:
                self.disconnected = self.disconnected or f"write: {error}"
                return

    def _echo_loop(self) -> None:
        while not self._stop.wait(self.echo_interval):
            self._send_echo()

    def _send_echo(self) -> None:
        xid = ECHO_XID_BASE + next(self._echo_seq) % 0xFFFFFF
        self._echo_out[xid] = time.monotonic()
        self._queue(w.message(w.ECHO_REQUEST, xid), control=True)

    def _reader(self) -> None:
        assert self._sock is not None
        buf = bytearray()
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self._sock], [], [], 0.5)
                if not readable:
                    continue
                chunk = self._sock.recv(1 << 18)
            except (OSError, ValueError) as error:  # ValueError: select() on a socket closed meanwhile
                self.disconnected = self.disconnected or f"read: {error}"
                return
            if not chunk:
                self.disconnected = self.disconnected or "controller closed the connection"
                return
            buf += chunk
            at = 0
            while len(buf) - at >= w.HEADER.size:
                _version, msg_type, length, xid = w.HEADER.unpack_from(buf, at)
                if length < w.HEADER.size:
                    self.disconnected = f"bad message length {length}"
                    return
                if len(buf) - at < length:
                    break
                self._handle(msg_type, xid, bytes(buf[at + w.HEADER.size : at + length]))
                at += length
            del buf[:at]

    def _handle(self, msg_type: int, xid: int, body: bytes) -> None:
        self.counts[msg_type] += 1
        now = time.monotonic()
        if msg_type == w.FLOW_MOD:
            self._flow_mod(w.parse_flow_mod(body), now)
        elif msg_type == w.PACKET_OUT:
            src = w.packet_out_source(body)
            if src is not None:
                self.answered.setdefault(src, now)
                self.answers_per_mac[src] += 1
        elif msg_type == w.BARRIER_REQUEST:
            self._queue(w.message(w.BARRIER_REPLY, xid), control=True)
            for mac, profile in self._unconfirmed:
                (self.quarantined if profile == QUARANTINE else self.enforced).setdefault(mac, now)
            self._unconfirmed.clear()
            if self.punt_flow is not None or self.learn_flow is not None:
                self.barriers_after_setup += 1
        elif msg_type == w.ECHO_REQUEST:
            self._queue(w.message(w.ECHO_REPLY, xid, body), control=True)
        elif msg_type == w.ECHO_REPLY:
            sent = self._echo_out.pop(xid, None)
            if sent is not None:
                self.echo.append((sent, now - sent))
        elif msg_type == w.FEATURES_REQUEST:
            self._queue(w.features_reply(xid, self.dpid), control=True)
        elif msg_type == w.GET_CONFIG_REQUEST:
            self._queue(w.message(w.GET_CONFIG_REPLY, xid, struct.pack("!HH", 0, 0xFFFF)), control=True)
        elif msg_type == w.MULTIPART_REQUEST:
            self._multipart(xid, struct.unpack_from("!H", body)[0])

    def _multipart(self, xid: int, kind: int) -> None:
        if kind == w.MP_PORT_DESC:
            for reply in w.port_desc_replies(xid, self.dpid, self.ports):
                self._queue(reply, control=True)
        elif kind == w.MP_METER_FEATURES:
            self._queue(w.meter_features_reply(xid), control=True)
        else:  # flow statistics (an empty table), or anything else: nothing to report
            self._queue(w.empty_multipart_reply(xid, kind), control=True)

    def _flow_mod(self, fm: w.FlowMod, now: float) -> None:
        self.last_flow_mod = now
        if fm.command not in (w.FC_ADD, w.FC_MODIFY, w.FC_MODIFY_STRICT):
            return
        fields = fm.fields
        if fm.to_controller and fm.table == 0:
            if not fields:
                self.learn_flow = (fm.cookie, fm.table)
            elif fields.get(w.OXM_UDP_SRC) == b"\x00\x44" and fields.get(w.OXM_UDP_DST) == b"\x00\x43":
                self.punt_flow = (fm.cookie, fm.table)
                if w.OXM_IN_PORT in fields:
                    self.punt_ports.add(int.from_bytes(fields[w.OXM_IN_PORT], "big"))
        mac = fields.get(w.OXM_ETH_SRC) or fields.get(w.OXM_ETH_DST)
        if mac is None:
            return
        self.answered.setdefault(mac, now)
        self.answers_per_mac[mac] += 1
        if fm.table == 0 and w.OXM_IN_PORT in fields and fm.metadata is not None and fm.metadata & MANAGED_BIT:
            self._unconfirmed.append((mac, fm.metadata & 0xFFFF))


def wait_until(done: Callable[[], bool], timeout: float, abort: Callable[[], bool] = lambda: False) -> bool:
    """Poll ``done`` (every 10 ms, not a fixed sleep) until it holds, ``abort`` holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        if abort():
            return False
        time.sleep(0.01)
    return done()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--port", type=int, default=6653, help="the controller's OpenFlow port on 127.0.0.1")
    ap.add_argument("--dpid", type=lambda s: int(s, 0), default=1)
    ap.add_argument("--ports", type=int, default=128, help="switch ports (1..N)")
    ap.add_argument("--path", choices=["learning", "discovery"], default="learning")
    ap.add_argument("--url", default="https://mud.bench/shared.json", help="discovery: the announced MUD URL")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    sw = FakeSwitch(args.dpid, range(1, args.ports + 1), args.port)
    sw.connect()
    try:
        if not sw.wait_ready(args.timeout, punts=False):
            print(f"not set up by the controller within {args.timeout}s ({sw.disconnected})", file=sys.stderr)
            return 1
        start = time.monotonic()
        if args.path == "learning":
            macs, msgs = loads.learning_load(sw, 1, args.count)
        else:
            macs, msgs = loads.discovery_load(sw, 1, args.count, args.url)
        sw.send(msgs)
        done = wait_until(lambda: all(m in sw.answered for m in macs), args.timeout, lambda: bool(sw.disconnected))
        end = max((sw.answered[m] for m in macs if m in sw.answered), default=time.monotonic())
        answered = sum(m in sw.answered for m in macs)
        rtts = sorted(sw.echo_since(start))
        print(json.dumps({"path": args.path, "sent": len(msgs), "answered": answered, "complete": done,
                          "answered_per_s": round(answered / max(end - sw.first_sent, 1e-9), 1),
                          "echo_p50_ms": round(rtts[len(rtts) // 2] * 1000, 1) if rtts else None,
                          "echo_max_ms": round(rtts[-1] * 1000, 1) if rtts else None,
                          "flow_mods": sw.counts[w.FLOW_MOD], "packet_outs": sw.counts[w.PACKET_OUT]}))  # fmt: skip
    finally:
        sw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
