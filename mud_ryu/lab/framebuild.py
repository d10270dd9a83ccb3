"""Raw frames the lab forges on purpose (a spoofed DHCPDISCOVER): built by hand, since no client would send them."""

from __future__ import annotations

import struct

MAGIC_COOKIE = b"\x63\x82\x53\x63"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def dhcp_discover(mac: str, url: str, xid: int = 0x4D554421) -> bytes:
    """A broadcast DHCPDISCOVER from ``mac`` (Ethernet source and chaddr) with option 161 = ``url``."""
    hw = bytes.fromhex(mac.replace(":", ""))
    options = bytes([53, 1, 1]) + bytes([161, len(url)]) + url.encode() + b"\xff"
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                        b"\0" * 4, b"\0" * 4, hw, b"", b"") + MAGIC_COOKIE + options  # fmt: skip
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    ip = header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + udp
    return b"\xff" * 6 + hw + b"\x08\x00" + ip
