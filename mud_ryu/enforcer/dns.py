"""The enforcer's DNS events: devices' queries and the answers held for them, the worker's proactive resolutions,
and expiry. Every change recompiles the profiles that use the names (:meth:`ProfileBook.recompile_for_dns`) and
sends each switch only the changed flows (:meth:`FlowBook.sync_profiles`); a held answer is released to its device
after those flows (a :class:`PacketOut` the app sends behind a barrier). The bindings are saved to a
:class:`~mud_ryu.dns.store.DnsStore` every few seconds and restored at start, so a controller restart keeps the
flows of addresses devices were given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mud_ryu.dns.bind import Ignored
from mud_ryu.dns.frame import DnsAnswer, DnsQuery
from mud_ryu.dns.store import DnsStore, DnsStoreError
from mud_ryu.enforcer.flows import FlowBook
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.profiles import ProfileBook
from mud_ryu.enforcer.state import Effect, PacketOut

log = logging.getLogger(__name__)
DNS_SAVE_INTERVAL_S = 2.0  # at most this much of what answers taught is lost to a crash (it then fails closed)

# Held DNS answers that are not released: not from a configured resolver, or answering no query the device sent.
DROPPED_ANSWERS = frozenset({"not-resolver", "unsolicited", "wrong-txid", "wrong-client"})


class DnsEvents:
    """The DNS events of one enforcer: the devices (whose answers are released to them), the binding table
    (``state.dns``), which ports are trusted (answers count only from the resolver's side), the recompilation of
    the profiles that use a changed name and the sync of their flows. Owned by
    :class:`~mud_ryu.enforcer.core.Enforcer`, which hands it each DNS event; it keeps only its own state (the store
    and when it last saved)."""

    def __init__(self, state: EnforcerState, profiles: ProfileBook, flows: FlowBook) -> None:
        self._state = state
        self._profiles = profiles
        self._flows = flows
        self.store: DnsStore | None = None
        self._saved_at = float("-inf")

    def _recompile(self, names: frozenset[str]) -> list[Effect]:
        return self._flows.sync_profiles(self._profiles.recompile_for_dns(names))

    def restore(self, store: DnsStore, now: float) -> None:
        """At start, before any switch is reconciled: bind again what was bound before the restart (until each
        binding's saved expiry) and compile the profiles with it, so reconciliation keeps those flows (R11). A store
        that cannot be read restores nothing: the names wait for the devices' next answers (fail closed)."""
        self.store = store
        try:
            rows = store.load()
        except DnsStoreError as error:
            log.error("DNS bindings not restored (%s): %s", error.reason, error.message)
            return
        update = self._state.dns.restore(rows, now)
        if not update.empty:
            self._recompile(frozenset(update.names()))
        log.info("DNS bindings restored: %d of %d saved rows, %d names", sum(map(len, update.added.values())),
                 len(rows), len(update.added))  # fmt: skip

    def save(self, now: float, *, force: bool = False) -> None:
        """Save the bindings when they changed, at most every DNS_SAVE_INTERVAL_S (the app's DNS task calls this;
        ``force``: now, at shutdown)."""
        if self.store is None or (not force and now - self._saved_at < DNS_SAVE_INTERVAL_S):
            return
        self._saved_at = now
        try:
            self.store.save(self._state.dns.expiries())
        except DnsStoreError as error:
            log.warning("DNS bindings not saved (%s): %s", error.reason, error.message)

    def seen(self, scanned: object, now: float, frame: bytes, ingress: tuple[int, int]) -> list[Effect]:
        """A punted DNS query or a held DNS answer (:func:`mud_ryu.dns.frame.scan_dns`) that came in on ``ingress``
        (dpid, port). Answers from the configured resolvers to queries that were seen may add addresses to the names
        active profiles use; the answer is then released to its device after the flows that allow those addresses
        (``frame``: the held bytes). An answer counts only when it entered from the resolver's side (a trusted port):
        a device that asked for a name and forges the resolver's answer to itself from its own port is dropped and
        counted (``wrong-port``), whatever its transaction id."""
        state = self._state
        if isinstance(scanned, DnsQuery):
            state.dns.query_seen(scanned, now)
            return []
        if not isinstance(scanned, DnsAnswer):
            return []
        if not state.trusted_ingress(*ingress):
            state.dns.refuse("wrong-port")
            return []
        device = state.devices.get(scanned.client_mac)
        update = state.dns.answer_seen(scanned, now)
        if isinstance(update, Ignored):
            if update.reason in DROPPED_ANSWERS:
                return []  # spoofed or unsolicited: the device never sees it
            effects: list[Effect] = []
        else:
            effects = [] if update.empty else self._recompile(frozenset(update.names()))
        if device is not None and device.state != "absent" and frame:
            effects.append(PacketOut(device.dpid, device.port, frame))
        return effects

    def resolved(self, answers: Mapping[str, tuple[tuple[str, ...], float]], now: float) -> list[Effect]:
        """The worker resolved a profile's names through the configured resolvers: bind them (the same rules as
        answers seen on the wire: TTL clamp, caps, expiry)."""
        names: set[str] = set()
        for name, (addresses, ttl) in answers.items():
            try:
                update = self._state.dns.seed(name, addresses, ttl, now)
            except ValueError:
                continue
            if not isinstance(update, Ignored):
                names.update(update.names())
        return self._recompile(frozenset(names)) if names else []

    def expire(self, now: float) -> list[Effect]:
        """Addresses past their TTL leave their names' sets (after the new ones, if any, went in)."""
        update = self._state.dns.expire(now)
        return [] if update.empty else self._recompile(frozenset(update.names()))
