"""Raw frames and namespace sockets for the enforcement latency benchmark (runs inside a sandbox).

Devices are not real clients: one AF_PACKET socket in the ``devices`` namespace sends DHCPDISCOVERs
(option 161) from many source MACs, so the offered rate is exact and the send instant is known to the
microsecond. The data-plane probe is a hand-made TCP SYN from the device's MAC, captured by another
AF_PACKET socket in the ``peer`` namespace: what arrives there passed the switch, nothing else counts.

Sockets are created inside a namespace with ``setns(2)`` on the calling thread and the thread goes back
at once; a socket keeps the namespace it was created in.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the frame builders live with the tests; a site-packages "tests" package must not shadow them
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.modules.pop("tests", None)
from tests import discovery_frames as df  # noqa: E402

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
DHCPRELEASE = 7
MAX_CAPTURED = 50_000  # frames one capture keeps; a probe window never comes near


def packet_socket_in(holder_pid: int, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ``ifname`` in the network namespace of ``holder_pid``."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{holder_pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into the namespace of pid {holder_pid}")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((ifname, 0))
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:  # never leave this thread in the wrong namespace
                raise OSError(ctypes.get_errno(), "setns back to the sandbox namespace")
    finally:
        os.close(target)
        os.close(own)
    return sock


def bench_mac(group: int, index: int) -> str:
    """Locally administered unicast MACs, one block per phase: 02:b0:<group>:00:<index>."""
    return f"02:b0:{group:02x}:00:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}"


def announce_frame(mac: str, url: str) -> bytes:
    """DHCPDISCOVER from ``mac`` (chaddr = source MAC) carrying ``url`` in option 161."""
    return df.dhcpv4_frame(df.v4_options(msg_type=1, url=url), src=mac)


def release_frame(mac: str) -> bytes:
    """DHCPRELEASE from ``mac`` without a URL: the enforcer marks the device absent and removes its flows."""
    return df.dhcpv4_frame(df.v4_options(msg_type=DHCPRELEASE, url=None), src=mac)


def tcp_syn(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int) -> bytes:
    """A TCP SYN with correct IPv4 and TCP checksums (no offload involved: the frame is sent raw)."""
    src_b, dst_b = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    head = struct.pack("!HHIIBBHHH", sport, dport, 0x4D554400, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = src_b + dst_b + struct.pack("!BBH", 0, 6, len(head))
    tcp = head[:16] + struct.pack("!H", df.checksum(pseudo + head)) + head[18:]
    return df.ethernet(df.ipv4(tcp, proto=6, src=src_ip, dst=dst_ip), ETH_P_IP, src=src_mac, dst=dst_mac)


def syn_key(frame: bytes) -> tuple[str, int] | None:
    """(source MAC, TCP destination port) of an untagged IPv4 TCP SYN frame, else ``None``."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    tcp = frame[14 + ihl :]
    if len(tcp) < 14 or not tcp[13] & 0x02:
        return None
    return frame[6:12].hex(":"), struct.unpack("!H", tcp[2:4])[0]


class Capture:
    """SYNs arriving at the peer: keyed by (source MAC, destination port), read until a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.seen: set[tuple[str, int]] = set()
        self.frames = 0

    def close(self) -> None:
        self._sock.close()

    def read_until(self, deadline: float, stop_when: set[tuple[str, int]] | None = None) -> None:
        """Collect until ``deadline`` (monotonic), or earlier once every key in ``stop_when`` was seen."""
        while self.frames < MAX_CAPTURED and (left := deadline - time.monotonic()) > 0:
            if stop_when is not None and stop_when <= self.seen:
                return
            ready, _, _ = select.select([self._sock], [], [], left)
            if not ready:
                return
            data, addr = self._sock.recvfrom(65535)
            self.frames += 1
            if addr[2] == PACKET_OUTGOING:
                continue
            key = syn_key(data)
            if key is not None:
                self.seen.add(key)
