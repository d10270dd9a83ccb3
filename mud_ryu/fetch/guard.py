"""Per-fetch bookkeeping that has to live outside ``requests``: the total deadline and the concurrency slots.

Why a watchdog: ``requests`` only knows per-read timeouts, so a server that drips one byte every few seconds, or
stalls in the TLS handshake, keeps a fetch alive for as long as it likes. The watchdog holds a duplicate of every
socket the fetch opened and shuts them all down when the total deadline passes; a ``shutdown`` acts on the
connection itself, so whatever read or handshake was blocked returns at once, whichever library was inside it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mud_ryu.fetch.types import FetchError

Clock = Callable[[], float]


class Deadline:
    """A total deadline for one fetch, enforced by shutting down its sockets from a timer thread."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self._clock = clock
        self._expires_at = clock() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired or self._clock() >= self._expires_at

    def remaining(self) -> float:
        return max(0.0, self._expires_at - self._clock())

    def check(self, during: str) -> None:
        if self.expired:
            raise FetchError("deadline", f"the fetch exceeded its total deadline during {during}")

    def bounded(self, timeout: float) -> float:
        """A timeout no later than the deadline (and never zero, which sockets read as non-blocking)."""
        return max(0.001, min(timeout, self.remaining()))

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (immediately if it already has)."""
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            expired = self._expired
        if expired:
            _shutdown(dup)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed or never connected: nothing left to interrupt
        sock.shutdown(socket.SHUT_RDWR)


class ConcurrencyLimiter:
    """At most ``total`` fetches at once and at most ``per_host`` to one host (THREATS.md: a flood of devices
    announcing URLs must not turn the controller into a traffic generator aimed at one server)."""

    def __init__(self, total: int, per_host: int) -> None:
        self._total = total
        self._per_host = per_host
        self._cond = threading.Condition()
        self._in_flight = 0
        self._by_host: dict[str, int] = {}

    def _free(self, host: str) -> bool:
        return self._in_flight < self._total and self._by_host.get(host, 0) < self._per_host

    @contextmanager
    def slot(self, host: str, deadline: Deadline, max_wait_s: float) -> Iterator[None]:
        """Hold one slot for ``host``; wait at most ``max_wait_s`` (a queued fetch must keep time to run)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._free(host), timeout=min(max_wait_s, deadline.remaining())):
                raise FetchError("busy", f"no fetch slot for {host} became free in time")
            self._in_flight += 1
            self._by_host[host] = self._by_host.get(host, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                left = self._by_host[host] - 1
                if left:
                    self._by_host[host] = left
                else:
                    del self._by_host[host]
                self._cond.notify_all()

    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight
