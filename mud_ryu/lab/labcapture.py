"""Frames captured on a switch port, read with a plain AF_PACKET socket (no tcpdump, no pcap files).

The socket is bound to the switch-side end of a host's link in the sandbox's root namespace, so
it sees exactly what the device put on the wire toward the switch, before OVS touches it. Open
the capture BEFORE starting the client: the kernel queues frames in the socket until they are
read. Reading is bounded by a deadline and a frame count; nothing blocks forever.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of frames the switch sent toward the host
MAX_FRAMES = 10_000


class PortCapture:
    """Frames arriving from the host on ``ifname`` (the switch side of its link)."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind((ifname, 0))
        self.frames: list[bytes] = []

    def __enter__(self) -> PortCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _read_ready(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        data, addr = self._sock.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING:
            return b""  # toward the host: not what it sent
        return data

    def wait_for(self, match: Callable[[bytes], bool], timeout: float) -> bytes | None:
        """The first frame from the host (already read ones included) for which ``match`` is true, or
        ``None`` once ``timeout`` seconds pass."""
        for frame in self.frames:
            if match(frame):
                return frame
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and len(self.frames) < MAX_FRAMES:
            got = self._read_ready(left)
            if got is None:
                return None
            if got:
                self.frames.append(got)
                if match(got):
                    return got
        return None
