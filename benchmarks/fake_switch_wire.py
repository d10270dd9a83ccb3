"""The OpenFlow 1.3 bytes of the fake switch (``benchmarks/fake_switch.py``), hand-written with ``struct``.

Independent of Ryu and of mud_ryu on purpose: the load generator must not share code (or bugs, or costs) with
the controller it measures, and building messages from pre-packed structs is ~100x cheaper than building Ryu
objects, so the generator is never the bottleneck. Only what a switch must say at connect and under load is here:
HELLO, FEATURES_REPLY, ECHO, BARRIER_REPLY, the multipart replies a controller asks for at connect (port
descriptions, meter features, an empty flow table), PACKET_IN; and, going the other way, just enough decoding of
FLOW_MOD and PACKET_OUT to tell which host a controller's answer is about.

Frames: a minimal Ethernet/IPv4/UDP/BOOTP builder for DHCPDISCOVERs (with or without option 161, the MUD URL)
and an ARP request for the plain learning path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OFP_VERSION = 0x04
HEADER = struct.Struct("!BBHI")
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY = 0, 1, 2, 3
FEATURES_REQUEST, FEATURES_REPLY, GET_CONFIG_REQUEST, GET_CONFIG_REPLY = 5, 6, 7, 8
PACKET_IN, PACKET_OUT, FLOW_MOD = 10, 13, 14
MULTIPART_REQUEST, MULTIPART_REPLY, BARRIER_REQUEST, BARRIER_REPLY = 18, 19, 20, 21
METER_MOD = 29
MP_FLOW, MP_METER_FEATURES, MP_PORT_DESC = 1, 11, 13
MPF_REPLY_MORE = 1
FC_ADD, FC_MODIFY, FC_MODIFY_STRICT = 0, 1, 2
NO_BUFFER = 0xFFFFFFFF
OFPP_CONTROLLER = 0xFFFFFFFD
OFPR_NO_MATCH, OFPR_ACTION = 0, 1
MAX_MESSAGE = 0xFFFF  # the 16-bit length field: a port description reply is split below this
PORTS_PER_REPLY = 500  # 500 x 64 bytes + headers < 64 KiB

# OXM fields of the OpenFlow basic class (0x8000), by field number.
OXM_IN_PORT, OXM_ETH_DST, OXM_ETH_SRC, OXM_ETH_TYPE, OXM_IP_PROTO, OXM_UDP_SRC, OXM_UDP_DST = 0, 3, 4, 5, 10, 15, 16
OXM_BASIC = 0x8000
IT_GOTO, IT_WRITE_METADATA, IT_WRITE_ACTIONS, IT_APPLY_ACTIONS = 1, 2, 3, 4
AT_OUTPUT = 0

_FEATURES = struct.Struct("!QIBB2xII")
_MP_HEAD = struct.Struct("!HH4x")
_PORT = struct.Struct("!I4x6s2x16sIIIIIIII")
_METER_FEATURES = struct.Struct("!IIIBB2x")
_PACKET_IN = struct.Struct("!IHBBQ")
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
_PACKET_OUT = struct.Struct("!IIH6x")
_OXM_IN_PORT = struct.Struct("!HHII4x")  # match type, length, in_port OXM header, value, padding to 8


def message(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(OFP_VERSION, msg_type, HEADER.size + len(body), xid) + body


def features_reply(xid: int, dpid: int, n_tables: int = 254) -> bytes:
    return message(FEATURES_REPLY, xid, _FEATURES.pack(dpid, 0, n_tables, 0, 0, 0))


def port_desc_replies(xid: int, dpid: int, ports: list[int]) -> list[bytes]:
    """The port descriptions, split over as many replies as the 16-bit length needs (REPLY_MORE on all but the
    last), as a switch with hundreds of ports must."""
    chunks = [ports[i : i + PORTS_PER_REPLY] for i in range(0, len(ports), PORTS_PER_REPLY)] or [[]]
    out = []
    for k, chunk in enumerate(chunks):
        flags = MPF_REPLY_MORE if k < len(chunks) - 1 else 0
        body = b"".join(_port(dpid, p) for p in chunk)
        out.append(message(MULTIPART_REPLY, xid, _MP_HEAD.pack(MP_PORT_DESC, flags) + body))
    return out


def _port(dpid: int, port_no: int) -> bytes:
    mac = bytes([0x0A, (dpid >> 8) & 0xFF, dpid & 0xFF, (port_no >> 16) & 0xFF, (port_no >> 8) & 0xFF, port_no & 0xFF])
    # config 0, state 0 (link up), 1 Gb/s copper full duplex in every feature word: a plain access port.
    return _PORT.pack(port_no, mac, f"p{port_no}".encode()[:15], 0, 0, 0x820, 0x820, 0x820, 0, 1_000_000, 1_000_000)


def meter_features_reply(xid: int, max_meter: int = 65536) -> bytes:
    """Meters with the DROP band (bit 1 of band_types) and packets-per-second (capabilities bit 1): what mud_ryu
    needs to meter its punts."""
    body = _METER_FEATURES.pack(max_meter, 1 << 1, 0b1111, 1, 0)
    return message(MULTIPART_REPLY, xid, _MP_HEAD.pack(MP_METER_FEATURES, 0) + body)


def empty_multipart_reply(xid: int, kind: int) -> bytes:
    """An empty answer (e.g. flow statistics: this switch holds none of the controller's flows)."""
    return message(MULTIPART_REPLY, xid, _MP_HEAD.pack(kind, 0))


def packet_in(cookie: int, table: int, in_port: int, frame: bytes, reason: int = OFPR_ACTION) -> bytes:
    """A PACKET_IN of the whole ``frame`` (no buffer), matched on ``in_port``; xid 0 as switches send them."""
    head = _PACKET_IN.pack(NO_BUFFER, len(frame), reason, table, cookie)
    match = _OXM_IN_PORT.pack(1, 12, (OXM_BASIC << 16) | (OXM_IN_PORT << 9) | 4, in_port)
    return message(PACKET_IN, 0, head + match + b"\x00\x00" + frame)


# ---- frames


def mac(group: int, index: int) -> bytes:
    """Locally administered unicast MACs, one block of 2**32 per ``group``: 02:<group>:<index, 4 bytes>."""
    return bytes([0x02, group & 0xFF]) + (index & 0xFFFFFFFF).to_bytes(4, "big")


def format_mac(raw: bytes) -> str:
    return raw.hex(":")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(src: bytes, dst: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame + b"\x00" * max(0, 60 - len(frame))


def arp_request(src: bytes, sender_ip: int, target_ip: int) -> bytes:
    """Who-has ``target_ip``, broadcast: what a new host sends first (the learning path)."""
    arp = struct.pack("!HHBBH6sI6sI", 1, 0x0800, 6, 4, 1, src, sender_ip, b"\x00" * 6, target_ip)
    return ethernet(src, b"\xff" * 6, 0x0806, arp)


def dhcp_discover(
    src: bytes, url: str | None, *, chaddr: bytes | None = None, xid: int = 0x4D554400, msg_type: int = 1
) -> bytes:
    """DHCPDISCOVER (or ``msg_type``, e.g. 7 = RELEASE) from ``src`` (chaddr = ``src`` unless given: a different
    one is the malformed ``chaddr-mismatch`` case), with option 161 = ``url`` when given (RFC 8520 s10)."""
    options = b"\x63\x82\x53\x63" + bytes([53, 1, msg_type])  # magic cookie, option 53 = the message type
    if url is not None:
        raw = url.encode()
        options += bytes([161, len(raw)]) + raw
    options += b"\xff"
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"", b"", b"", b"",
                        (chaddr or src) + b"\x00" * 10, b"", b"") + options  # fmt: skip
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp  # UDP checksum 0: none (allowed over IPv4)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x00" * 4, b"\xff" * 4)
    head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
    return ethernet(src, b"\xff" * 6, 0x0800, head + udp)


# ---- decoding what the controller sent


@dataclass(frozen=True, slots=True)
class FlowMod:
    """What the fake switch needs of a FLOW_MOD: which flow it is, which host it is about, what it writes."""

    cookie: int
    table: int
    command: int
    priority: int
    fields: dict[int, bytes]  # OXM field number -> value (masks dropped)
    metadata: int | None  # the WRITE_METADATA value
    to_controller: bool  # an output to the controller port among its actions


def parse_flow_mod(body: bytes) -> FlowMod:
    """``body``: the message after its 8-byte header."""
    cookie, _mask, table, command, _idle, _hard, priority, *_ = _FLOW_MOD.unpack_from(body)
    at = _FLOW_MOD.size
    _mtype, mlen = struct.unpack_from("!HH", body, at)
    fields = _oxm_fields(body, at + 4, at + mlen)
    i = at + (mlen + 7) // 8 * 8
    metadata, to_controller = None, False
    while i + 4 <= len(body):
        kind, length = struct.unpack_from("!HH", body, i)
        if kind == IT_WRITE_METADATA:
            (metadata,) = struct.unpack_from("!Q", body, i + 8)
        elif kind in (IT_APPLY_ACTIONS, IT_WRITE_ACTIONS):
            to_controller = to_controller or _outputs_to_controller(body, i + 8, i + length)
        i += max(length, 8)
    return FlowMod(cookie, table, command, priority, fields, metadata, to_controller)


def _oxm_fields(body: bytes, start: int, end: int) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    i = start
    while i + 4 <= end:
        (header,) = struct.unpack_from("!I", body, i)
        length = header & 0xFF
        if header >> 16 == OXM_BASIC:
            value_len = length // 2 if header & 0x100 else length  # a masked field: value then mask
            fields[(header >> 9) & 0x7F] = body[i + 4 : i + 4 + value_len]
        i += 4 + length
    return fields


def _outputs_to_controller(body: bytes, start: int, end: int) -> bool:
    i = start
    while i + 8 <= end:
        kind, length = struct.unpack_from("!HH", body, i)
        if kind == AT_OUTPUT and struct.unpack_from("!I", body, i + 4)[0] == OFPP_CONTROLLER:
            return True
        i += max(length, 8)
    return False


def packet_out_source(body: bytes) -> bytes | None:
    """The Ethernet source of the frame a PACKET_OUT carries (None without a frame)."""
    _buffer, _in_port, actions_len = _PACKET_OUT.unpack_from(body)
    data = body[_PACKET_OUT.size + actions_len :]
    return bytes(data[6:12]) if len(data) >= 14 else None
