"""How many MUD URL resolutions one device, one access port and the whole controller may have in flight at once.

What it stops (THREATS.md row 25): a device that cycles through first-use URLs on hosts that stall holds the
worker's fetch slots for a whole fetch deadline each, and with enough URLs in flight every other device waits
behind it. The worker bounds fetches globally and per host; only the controller knows who asked, so the bound per
requester lives here: at most ``per_device`` URLs in flight for one MAC and ``per_port`` for one (switch, port).
A URL already in flight costs nothing more to a second device announcing it (it joins the resolution). A request
over a bound is refused with ``fetch:busy``: the device stays where it is (quarantined, or on its last verified
policy) and its next announcement -- a DHCP client retransmits -- tries again once a slot is free. That is the
back-off: the refused device waits for its own resolutions, never the others.

Pure and bounded: at most ``total`` URLs tracked; an entry older than ``timeout_s`` (an answer that never came)
stops counting, as the enforcer asks again for it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K")
BUSY = "fetch:busy"
DEFAULT_PER_DEVICE = 2
DEFAULT_PER_PORT = 4
DEFAULT_TOTAL = 4096


@dataclass(frozen=True, slots=True)
class _Charge:
    mac: str
    port: tuple[int, int]
    at: float


class ResolveBudget:
    """In-flight resolutions charged to the device and port that asked first."""

    def __init__(
        self,
        per_device: int = DEFAULT_PER_DEVICE,
        per_port: int = DEFAULT_PER_PORT,
        total: int = DEFAULT_TOTAL,
        timeout_s: float = 30.0,
    ) -> None:
        if min(per_device, per_port, total) < 1 or timeout_s <= 0:
            raise ValueError("resolution bounds must be positive")
        self.per_device, self.per_port, self.total, self.timeout_s = per_device, per_port, total, timeout_s
        self._charges: dict[str, _Charge] = {}  # URL -> who asked first
        self._by_mac: dict[str, set[str]] = {}
        self._by_port: dict[tuple[int, int], set[str]] = {}
        self.refused = 0  # requests refused since start (for the operator's counters)

    def __len__(self) -> int:
        return len(self._charges)

    def admit(
        self, url: str, mac: str, port: tuple[int, int], now: float, port_limit: int | None = None
    ) -> str | None:
        """Charge a new resolution of ``url`` to ``mac`` on ``port``; None when admitted (or already in flight:
        joining costs nothing), else why not (``fetch:busy``). ``port_limit``: this port's own bound (a shared port
        carries many devices), ``per_port`` by default."""
        if url in self._charges:
            return None
        self._expire(mac, port, now)
        if (
            len(self._charges) >= self.total
            or len(self._by_mac.get(mac, ())) >= self.per_device
            or len(self._by_port.get(port, ())) >= (port_limit or self.per_port)
        ):
            self.refused += 1
            return BUSY
        self._charges[url] = _Charge(mac, port, now)
        self._by_mac.setdefault(mac, set()).add(url)
        self._by_port.setdefault(port, set()).add(url)
        return None

    def which_bound(self, mac: str, port: tuple[int, int], port_limit: int | None = None) -> str:
        """Which bound a refusal hit, for the alert's message."""
        if len(self._by_mac.get(mac, ())) >= self.per_device:
            return f"{self.per_device} resolutions already in flight for this device"
        if len(self._by_port.get(port, ())) >= (port_limit or self.per_port):
            return f"{port_limit or self.per_port} resolutions already in flight for this port"
        return f"{self.total} resolutions already in flight"

    def done(self, url: str) -> None:
        """The answer for ``url`` came: its slot is free."""
        charge = self._charges.pop(url, None)
        if charge is None:
            return
        _discard(self._by_mac, charge.mac, url)
        _discard(self._by_port, charge.port, url)

    def _expire(self, mac: str, port: tuple[int, int], now: float) -> None:
        """Drop the answers that never came for this requester (and, when full, for anyone)."""
        urls = set(self._by_mac.get(mac, ())) | set(self._by_port.get(port, ()))
        if len(self._charges) >= self.total:
            urls |= set(self._charges)
        for url in urls:
            charge = self._charges[url]
            if now < charge.at or now - charge.at >= self.timeout_s:  # a clock that went back frees it too
                self.done(url)


def _discard(index: dict[K, set[str]], key: K, url: str) -> None:
    urls = index.get(key)
    if urls is not None:
        urls.discard(url)
        if not urls:
            del index[key]
