"""Count a bridge's flows that match one IPv4 address, over OVS's management socket (OpenFlow 1.3 flow stats).

The DNS update benchmark polls for "the new address's flows are in the switch". ``ovs-ofctl dump-flows`` costs a
process start per poll (about 5 ms), which would be the resolution of the measurement; one flow-stats request on
an open connection to ``<rundir>/<bridge>.mgmt`` costs well under a millisecond. Hand-packed (OpenFlow 1.3.5
sections 7.1, 7.2.2 and 7.3.5.2): benchmarks do not import Ryu.

A non-strict flow-stats request returns the entries whose match is at least as specific as the request's, so
``eth_type=0x0800, ipv4_dst=A`` finds every flow that matches exactly that destination (and ``ipv4_src`` the
return flows).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

OFP_VERSION = 0x04
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPMP_FLOW = 1
OFPMPF_REPLY_MORE = 1
OXM_ETH_TYPE, OXM_IPV4_SRC, OXM_IPV4_DST = 5, 11, 12
HEADER = struct.Struct("!BBHI")
MAX_REPLY_PARTS = 1024  # one request's multipart replies; a bench table never comes near
MAX_MESSAGE = 1 << 16


def _oxm(field: int, value: bytes) -> bytes:
    return struct.pack("!HBB", 0x8000, field << 1, len(value)) + value


def _match(field: int, address: str) -> bytes:
    body = _oxm(OXM_ETH_TYPE, struct.pack("!H", 0x0800)) + _oxm(field, ipaddress.IPv4Address(address).packed)
    length = 4 + len(body)
    return struct.pack("!HH", 1, length) + body + b"\0" * (-length % 8)


def flow_stats_request(xid: int, field: int, address: str) -> bytes:
    body = struct.pack("!HH4x", OFPMP_FLOW, 0)
    body += struct.pack("!B3xII4xQQ", 0xFF, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0) + _match(field, address)
    return HEADER.pack(OFP_VERSION, OFPT_MULTIPART_REQUEST, HEADER.size + len(body), xid) + body


class FlowStats:
    """One OpenFlow connection to a bridge's management socket."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._xid = 1
        self._sock.sendall(HEADER.pack(OFP_VERSION, OFPT_HELLO, HEADER.size, self._xid))
        msg_type, _, _ = self._read()
        if msg_type != OFPT_HELLO:
            raise ConnectionError(f"expected HELLO from {path}, got type {msg_type}")

    def close(self) -> None:
        self._sock.close()

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("switch closed the connection")
            buf += chunk
        return buf

    def _read(self) -> tuple[int, int, bytes]:
        version, msg_type, length, xid = HEADER.unpack(self._read_exact(HEADER.size))
        if version != OFP_VERSION or not HEADER.size <= length <= MAX_MESSAGE:
            raise ConnectionError(f"bad OpenFlow header: version {version}, length {length}")
        return msg_type, xid, self._read_exact(length - HEADER.size)

    def count(self, field: int, address: str) -> int:
        """Entries matching ``address`` in ``field`` (OXM_IPV4_SRC or OXM_IPV4_DST), all tables."""
        self._xid += 1
        xid = self._xid
        self._sock.sendall(flow_stats_request(xid, field, address))
        entries = 0
        for _ in range(MAX_REPLY_PARTS):
            msg_type, got, body = self._read()
            if msg_type == OFPT_ECHO_REQUEST:
                self._sock.sendall(HEADER.pack(OFP_VERSION, OFPT_ECHO_REPLY, HEADER.size + len(body), got) + body)
                continue
            if msg_type == OFPT_ERROR and got == xid:
                raise ConnectionError(f"flow stats refused: {body[:4].hex()}")
            if msg_type != OFPT_MULTIPART_REPLY or got != xid:
                continue
            mp_type, flags = struct.unpack("!HH", body[:4])
            if mp_type != OFPMP_FLOW:
                raise ConnectionError(f"unexpected multipart type {mp_type}")
            off = 8
            while off + 2 <= len(body):
                (length,) = struct.unpack("!H", body[off : off + 2])
                if length < 2:
                    raise ConnectionError("flow stats entry of length < 2")
                entries += 1
                off += length
            if not flags & OFPMPF_REPLY_MORE:
                return entries
        raise ConnectionError(f"more than {MAX_REPLY_PARTS} multipart replies")

    def with_address(self, address: str) -> int:
        """Flows matching ``address`` as IPv4 destination or source."""
        return self.count(OXM_IPV4_DST, address) + self.count(OXM_IPV4_SRC, address)
