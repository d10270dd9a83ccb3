"""A scripted OpenFlow 1.3 switch on a TCP socket: it answers a controller the way a switch must and records what
the controller sends, so a test can drive the real app (``ryu-manager mud_ryu.app``) through switch behaviours Open
vSwitch cannot be made to show -- no meter support, or an error for a chosen flow-mod.

It answers HELLO, ECHO, FEATURES, BARRIER and the multipart requests the app makes (port description, meter
features, flow statistics: an empty table); it can announce a port (PORT_STATUS) and refuse a message with an
OFPT_ERROR carrying the offending request's xid, as OpenFlow 1.3.5 s7.4.4 says.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.ofhandshake import read_message

OFP_VERSION = 0x04
HEADER = struct.Struct("!BBHI")
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY, FEATURES_REQUEST, FEATURES_REPLY = 0, 1, 2, 3, 5, 6
PORT_STATUS, FLOW_MOD, MULTIPART_REQUEST, MULTIPART_REPLY = 12, 14, 18, 19
BARRIER_REQUEST, BARRIER_REPLY, METER_MOD = 20, 21, 29
MP_FLOW, MP_METER_FEATURES, MP_PORT_DESC = 1, 11, 13
OFPIT_METER = 6
OFPMBT_DROP = 1
OXM_IN_PORT = 0x80000004
PORT = struct.Struct("!I4x6s2x16sIIIIIIII")
FLOW_MOD_FIXED = struct.Struct("!QQBBHHHIIIH2x")


@dataclass(frozen=True)
class Sent:
    """One message the controller sent."""

    type: int
    xid: int
    body: bytes


@dataclass(frozen=True)
class FlowMod:
    xid: int
    table: int
    command: int
    priority: int
    in_port: int | None
    meter: int | None


@dataclass
class ScriptedSwitch:
    dpid: int
    ports: list[int]
    meters: bool  # whether the meter features reply offers usable meters
    refuse: Callable[[Sent], tuple[int, int] | None] = lambda _m: None  # (error type, code) to refuse a message
    received: list[Sent] = field(default_factory=list)
    _sock: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def connect(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._sock.settimeout(None)  # the reader blocks until the controller speaks or the test closes
        self._send(HELLO, 1, b"")
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def messages(self) -> list[Sent]:
        with self._lock:
            return list(self.received)

    def flow_mods(self) -> list[FlowMod]:
        return [parse_flow_mod(m) for m in self.messages() if m.type == FLOW_MOD]

    def meter_ids(self) -> list[int]:
        return [struct.unpack_from("!HHI", m.body)[2] for m in self.messages() if m.type == METER_MOD]

    def port_added(self, port_no: int) -> None:
        self._send(PORT_STATUS, 0, struct.pack("!B7x", 0) + _port(port_no))

    def wait_for(self, predicate: Callable[[list[Sent]], bool], within_s: float, what: str) -> None:
        end = time.monotonic() + within_s
        while time.monotonic() < end:
            if predicate(self.messages()):
                return
            time.sleep(0.02)  # polling interval, not a fixed wait
        raise AssertionError(f"the controller never sent {what}")

    def _send(self, msg_type: int, xid: int, body: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(HEADER.pack(OFP_VERSION, msg_type, HEADER.size + len(body), xid) + body)

    def _serve(self) -> None:
        try:
            while True:
                msg_type, xid, body = read_message(self._sock)  # type: ignore[arg-type]
                sent = Sent(msg_type, xid, body)
                with self._lock:
                    self.received.append(sent)
                self._answer(sent)
        except (OSError, ConnectionError):
            return  # the controller or the test closed the connection

    def _answer(self, m: Sent) -> None:
        error = self.refuse(m)
        if error is not None:
            offending = HEADER.pack(OFP_VERSION, m.type, HEADER.size + len(m.body), m.xid) + m.body
            self._send(ERROR, m.xid, struct.pack("!HH", *error) + offending[:64])
        elif m.type == ECHO_REQUEST:
            self._send(ECHO_REPLY, m.xid, m.body)
        elif m.type == FEATURES_REQUEST:
            self._send(FEATURES_REPLY, m.xid, struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0, 0))
        elif m.type == BARRIER_REQUEST:
            self._send(BARRIER_REPLY, m.xid, b"")
        elif m.type == MULTIPART_REQUEST:
            kind = struct.unpack_from("!H", m.body)[0]
            self._send(MULTIPART_REPLY, m.xid, struct.pack("!HH4x", kind, 0) + self._multipart(kind))

    def _multipart(self, kind: int) -> bytes:
        if kind == MP_PORT_DESC:
            return b"".join(_port(p) for p in self.ports)
        if kind == MP_METER_FEATURES:
            max_meter, bands = (1024, 1 << OFPMBT_DROP) if self.meters else (0, 0)
            return struct.pack("!IIIBB2x", max_meter, bands, 0, 1 if self.meters else 0, 0)
        return b""  # flow statistics: the table holds none of the app's flows; any other kind: nothing to report


def parse_flow_mod(m: Sent) -> FlowMod:
    """The fields a test asks about: table, command, priority, the in_port match and the meter instruction."""
    _cookie, _mask, table, command, _idle, _hard, priority, *_rest = FLOW_MOD_FIXED.unpack_from(m.body)
    at = FLOW_MOD_FIXED.size
    _match_type, match_len = struct.unpack_from("!HH", m.body, at)
    in_port = None
    i = at + 4
    while i < at + match_len:
        (header,) = struct.unpack_from("!I", m.body, i)
        if header == OXM_IN_PORT:
            (in_port,) = struct.unpack_from("!I", m.body, i + 4)
        i += 4 + (header & 0xFF)
    i = at + (match_len + 7) // 8 * 8
    meter = None
    while i + 4 <= len(m.body):
        kind, length = struct.unpack_from("!HH", m.body, i)
        if kind == OFPIT_METER:
            (meter,) = struct.unpack_from("!I", m.body, i + 4)
        i += max(length, 4)
    return FlowMod(m.xid, table, command, priority, in_port, meter)


def _port(port_no: int) -> bytes:
    mac = bytes([0x02, 0, 0, 0, 0, port_no & 0xFF])
    return PORT.pack(port_no, mac, f"p{port_no}".encode(), 0, 0, 0, 0, 0, 0, 0, 0)
