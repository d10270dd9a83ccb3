"""Packet-ins: taken off the framework's queue at once, worked through in bounded batches, shed when behind.

Why (issue 14): the framework hands every packet-in to the app's one event queue (128 entries); while the app works
on one, the switch connection's reader blocks on that full queue and reads nothing else -- echo requests included.
Open vSwitch drops a controller that leaves its inactivity probe unanswered for 5 s, so a burst of DHCP from many
devices (a power cut, a flood from one port beyond its meter) cost the switch its controller. So the framework's
handler only checks the per-port budget and appends the frame here (O(1)); a drainer works through the backlog in
batches of BATCH and yields between them, so the connection's reader and the echo handler run every few
milliseconds whatever the backlog. A backlog past MAX_BACKLOG is shed -- the newest frames dropped, counted by kind,
logged at most every SHED_LOG_S: every kind is one the switch sends again (a DHCP retry, the next frame of an unknown
source, a DNS retry), and a dropped frame never widens what a device may reach (its flows are unchanged). The one
exception is a lease copy: a DHCP server's ACK/Reply on a trusted port, which the switch forwards and never sends
again -- shed, the leased address would stay claimable first come by another device until the next renewal. Leases
(bounded by their trusted port's punt budget) may go LEASE_RESERVE past a full backlog.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mud_ryu.compiler.edgeflows import DNS_SUB, PUNT_SUB
from mud_ryu.compiler.pipeline import CookieKind, parse_cookie
from mud_ryu.discovery.scan import format_mac, scan_frame
from mud_ryu.dns.frame import scan_dns
from mud_ryu.enforcer.core import Enforcer
from mud_ryu.enforcer.state import Effect
from mud_ryu.guard import dhcp_lease
from mud_ryu.guard import ports as portguard
from mud_ryu.guard import source as sourceguard

LOG = logging.getLogger("mud_ryu.app")
BATCH = 64  # packet-ins worked through between two yields to the rest of the controller
MAX_BACKLOG = 4096  # packet-ins waiting; beyond, new ones are shed
LEASE_RESERVE = 1024  # lease copies taken past a full backlog (never resent by the switch)
SHED_LOG_S = 10.0


@dataclass(frozen=True, slots=True)
class PacketIn:
    dpid: int
    in_port: int
    cookie: int
    data: bytes


def kind_of(cookie: int) -> str:
    """What a packet-in is, by the cookie of the flow that sent it (for the counters and the dispatch)."""
    parts = parse_cookie(cookie)
    if parts.kind == int(CookieKind.DEVICE) and parts.sub == DNS_SUB:
        return "dns"
    if parts.kind == int(CookieKind.FORWARD):
        if parts.sub == PUNT_SUB:
            return "discovery"
        if parts.sub == portguard.LEASE_SUB:
            return "lease"
        if parts.sub == sourceguard.HELD_SUB:
            return "held-source"
        if parts.sub == sourceguard.DAD_SUB:
            return "dad"
    return "learning"


def dispatch(enforcer: Enforcer, packet: PacketIn, now: float) -> list[Effect]:
    """Hand one packet-in to the enforcer event its flow's cookie names."""
    dpid, in_port, data = packet.dpid, packet.in_port, packet.data
    kind = kind_of(packet.cookie)
    if kind == "dns":
        return enforcer.dns_seen(scan_dns(data), now, data, ingress=(dpid, in_port))
    if kind == "discovery":
        return enforcer.discovered(dpid, in_port, scan_frame(data), now)
    if kind == "lease":
        lease = dhcp_lease.scan_ack(data)
        effects: list[Effect] = []
        for granted in (lease,) if lease is not None else dhcp_lease.scan_reply6(data):
            effects += enforcer.lease_seen(dpid, in_port, granted, now)
        return effects
    if kind in ("held-source", "dad"):
        dad = kind == "dad"
        claimed = sourceguard.claimed_source(data, dad)
        if claimed is None:
            return []
        held = b"" if dad else data  # a DAD probe went on; a held frame waits for its binding
        return enforcer.source_seen(dpid, in_port, *claimed, now, held)
    return enforcer.learned(dpid, in_port, format_mac(data[6:12]), now)


class PacketInQueue:
    """The backlog of packet-ins and its drainer. ``spawn`` starts a green thread, ``sleep(0)`` yields to the
    others, ``clock`` is wall time (the enforcer's ``now``) and ``monotonic`` paces the shed log."""

    def __init__(
        self,
        enforcer: Enforcer,
        execute: Callable[[Iterable[Effect]], None],
        spawn: Callable[[Callable[[], None]], object],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self._enforcer = enforcer
        self._execute = execute
        self._spawn = spawn
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._max_backlog = max_backlog
        self._backlog: collections.deque[PacketIn] = collections.deque()
        self._draining = False
        self.shed: collections.Counter[str] = collections.Counter()  # packet-ins dropped for a full backlog, by kind
        self.handled = 0
        self._shed_logged_at = float("-inf")
        self._shed_since_log = 0

    def __len__(self) -> int:
        return len(self._backlog)

    def put(self, packet: PacketIn) -> bool:
        """Queue a packet-in (False: shed, the backlog is full); a drainer starts when none is running."""
        waiting = len(self._backlog)
        if waiting >= self._max_backlog and (
            waiting >= self._max_backlog + LEASE_RESERVE or kind_of(packet.cookie) != "lease"
        ):
            self.shed[kind_of(packet.cookie)] += 1
            self._shed_since_log += 1
            now = self._monotonic()
            if now - self._shed_logged_at >= SHED_LOG_S:
                LOG.warning("packet-in backlog full (%d): %d shed since the last report; by kind so far: %s",
                            self._max_backlog, self._shed_since_log, dict(self.shed))  # fmt: skip
                self._shed_logged_at, self._shed_since_log = now, 0
            return False
        self._backlog.append(packet)
        if not self._draining:
            self._draining = True
            self._spawn(self.drain)
        return True

    def drain(self) -> None:
        """Work through the backlog, BATCH at a time, yielding between batches; ends when it is empty."""
        try:
            while self._backlog:
                for _ in range(min(BATCH, len(self._backlog))):
                    packet = self._backlog.popleft()
                    try:
                        self._execute(dispatch(self._enforcer, packet, self._clock()))
                    except Exception:  # one bad frame must not stop the drainer (and with it every packet-in)
                        LOG.exception("packet-in from dpid %016x port %d failed", packet.dpid, packet.in_port)
                    self.handled += 1
                self._sleep(0)
        finally:
            self._draining = False
