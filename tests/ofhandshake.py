"""A minimal OpenFlow 1.3 switch side, enough to make a controller see a switch connect.

Used to prove that ``ryu-manager mud_ryu.app`` really loaded the app (not only that a port
opened): the app logs the connection once FEATURES_REPLY arrives.
"""

from __future__ import annotations

import socket
import struct

OFP_VERSION = 0x04
OFPT_HELLO, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 2, 3
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY = 5, 6
HEADER = struct.Struct("!BBHI")


def read_message(sock: socket.socket) -> tuple[int, int, bytes]:
    """Read one OpenFlow message: (type, xid, body)."""
    head = _read_exact(sock, HEADER.size)
    _version, msg_type, length, xid = HEADER.unpack(head)
    return msg_type, xid, _read_exact(sock, length - HEADER.size)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("controller closed the connection")
        buf += chunk
    return buf


def connect_as_switch(port: int, dpid: int, timeout: float = 10.0) -> socket.socket:
    """Connect to a controller on 127.0.0.1:port and complete HELLO + FEATURES."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(HEADER.pack(OFP_VERSION, OFPT_HELLO, HEADER.size, 1))
    while True:
        msg_type, xid, _body = read_message(sock)
        if msg_type == OFPT_ECHO_REQUEST:
            sock.sendall(HEADER.pack(OFP_VERSION, OFPT_ECHO_REPLY, HEADER.size, xid))
        elif msg_type == OFPT_FEATURES_REQUEST:
            body = struct.pack("!QIBB2xII", dpid, 0, 5, 0, 0, 0)
            sock.sendall(HEADER.pack(OFP_VERSION, OFPT_FEATURES_REPLY, HEADER.size + len(body), xid) + body)
            return sock
