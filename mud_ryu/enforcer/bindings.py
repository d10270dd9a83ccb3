"""The enforcer's IP source guard events: a device's first frame from an unbound address (claimed, first come), a
DHCP server's answer seen on a trusted port (the lease binds, for its lifetime, and the routers it names are
protected), leases running out, and the lease table saved for a restart (:mod:`mud_ryu.guard.lease_store`).

See :mod:`mud_ryu.guard.bindings` for the table's rules and :mod:`mud_ryu.guard.source` for the flows.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable

from mud_ryu.enforcer.flows import FlowBook
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.state import Alert, Effect, PacketOut
from mud_ryu.guard.bindings import Refused
from mud_ryu.guard.dhcp_lease import Lease
from mud_ryu.guard.lease_store import FOREVER, LeaseStore, LeaseStoreError

log = logging.getLogger(__name__)
RESUBMIT_MEMORY = 4096  # held frames remembered as put back once
LEASE_SAVE_INTERVAL_S = 2.0
ROUTER_HOLD_MAX_S = 86400.0  # a router stays protected at most this long after the last ACK naming it
ROUTER_KEY = "router"  # the lease store's key for the learned routers' rows (a MAC never spells it)


class BindingEvents:
    """The IP source guard's events of one enforcer: the devices, the address bindings (``state.bindings``), the
    switches and which ports are trusted, and the sync of the owners whose flows a binding changes. Owned by
    :class:`~mud_ryu.enforcer.core.Enforcer`, which hands it each event; it keeps only its own state (held frames
    put back once, the lease store and when it last saved)."""

    def __init__(self, state: EnforcerState, flows: FlowBook) -> None:
        self._state = state
        self._flows = flows
        self._resubmitted: dict[bytes, None] = {}  # digests of held frames put back (oldest first)
        self.lease_store: LeaseStore | None = None
        self._leases_saved_at = -math.inf

    def source_seen(self, dpid: int, port: int, mac: str, address: str, now: float, held: bytes = b"") -> list[Effect]:
        """A managed device sent from ``address``, which is not bound to it (``held``: the frame, held at the
        controller) or announced it with a DAD probe. Bound when no one else holds it (:mod:`mud_ryu.guard.bindings`):
        its binding flows go in and the held frame goes back into the pipeline behind them; refused: alerted, the
        frame stays dropped."""
        device = self._state.devices.get(mac)
        if device is None or device.state == "absent" or (device.dpid, device.port) != (dpid, port):
            return []  # not a device placed here (its own classification would have caught a wrong port)
        result = self._state.bindings.claim(mac, address)
        if isinstance(result, Refused):
            why = f"{address} refused ({result.reason}{': held by ' + result.holder if result.holder else ''})"
            return [Alert("address-refused", mac, dpid, port, "", why)]
        effects = self._flows.sync(dpid, [("device", mac)])
        if held and self._first_resubmit(held):
            # Put back once: frames held while the binding was on its way pass now; one held although its address
            # is bound (an ARP with another sender MAC) comes back and stays dropped, never a loop.
            effects.append(PacketOut(dpid, port, held, resubmit=True))
        return effects

    def _first_resubmit(self, frame: bytes) -> bool:
        key = hashlib.blake2b(frame, digest_size=16).digest()
        if key in self._resubmitted:
            return False
        self._resubmitted[key] = None
        if len(self._resubmitted) > RESUBMIT_MEMORY:
            self._resubmitted.pop(next(iter(self._resubmitted)))
        return True

    def lease_seen(self, dpid: int, port: int, lease: Lease, now: float) -> list[Effect]:
        """A DHCPv4 ACK or a DHCPv6 Reply address that came in on (dpid, port). From a trusted port (and, with IPv4
        servers configured, from one of them or a relay agent listed with them) its address is bound to its client
        until the lease ends (see :meth:`AddressBindings.assign`), and the routers it names are protected as long
        (a day at most); a device that had claimed either loses it, and the operator is told."""
        if not self._state.trusted_ports(dpid) or not self._state.trusted_ingress(dpid, port):
            return []  # without configured trusted ports anyone could send an "ACK": claims stay first come
        servers = [s for s in self._state.settings.dhcp_servers if ":" not in s]
        if lease.server and servers and lease.server not in servers:
            why = f"DHCP ACK from {lease.server}, not a configured DHCP server or relay: ignored"
            return [Alert("lease-refused", lease.client_mac, dpid, port, "", why)]
        effects: list[Effect] = []
        for router in lease.routers:
            displaced = self._state.bindings.protect_router(router, now + min(lease.lifetime_s, ROUTER_HOLD_MAX_S))
            if displaced is not None:
                why = f"{router} is a router named by the DHCP server: no longer {displaced}'s"
                effects += self._rebind([displaced], dpid, why)
        previous = self._state.bindings.holder(lease.address)
        result = self._state.bindings.assign(lease.client_mac, lease.address, now + lease.lifetime_s)
        if isinstance(result, Refused):
            why = f"lease of {lease.address} not bound ({result.reason}): the address stays first come"
            return [*effects, Alert("lease-refused", lease.client_mac, dpid, port, "", why)]
        effects += self._resync([lease.client_mac])
        if previous is not None and previous != lease.client_mac:
            effects += self._rebind([previous], dpid, f"{lease.address} was leased to {lease.client_mac}: "
                                                      f"no longer {previous}'s")  # fmt: skip
        return effects

    def _rebind(self, macs: Iterable[str], dpid: int, why: str) -> list[Effect]:
        """Devices that lost an address: their binding flows follow, and the operator hears of it."""
        effects = self._resync(macs)
        for mac in macs:
            holder = self._state.devices.get(mac)
            where = (holder.dpid, holder.port) if holder is not None else (dpid, 0)
            effects.append(Alert("address-reassigned", mac, *where, "", why))
        return effects

    def _resync(self, macs: Iterable[str]) -> list[Effect]:
        effects: list[Effect] = []
        for mac in dict.fromkeys(macs):
            device = self._state.devices.get(mac)
            if device is not None and device.state != "absent" and device.dpid in self._state.switches:
                effects += self._flows.sync(device.dpid, [("device", mac)])
        return effects

    def lease_expire(self, now: float) -> list[Effect]:
        """Leases not renewed by their end: the addresses are free again (a device still sending from one claims
        it again, first come, if no one else got it meanwhile)."""
        gone = self._state.bindings.expire(now)
        if gone:
            log.info("%d DHCP leases ended without a renewal", len(gone))
        return self._resync(mac for mac, _ in gone)

    def restore_leases(self, store: LeaseStore, now: float) -> None:
        """At start, before any switch is reconciled: the leases still running (a store that cannot be read
        restores none: the hosts' next renewals bind them again)."""
        self.lease_store = store
        try:
            rows = store.load()
        except LeaseStoreError as error:
            log.error("DHCP leases not restored (%s): %s", error.reason, error.message)
            return
        table: dict[str, dict[str, float]] = {}
        for mac, address, until in rows:
            if mac == ROUTER_KEY:
                if until > now:
                    self._state.bindings.protect_router(address, until)
                continue
            table.setdefault(mac, {})[address] = math.inf if until >= FOREVER else until
        log.info("%d DHCP leases restored", self._state.bindings.restore(table, now))

    def save_leases(self, now: float, *, force: bool = False) -> None:
        """Save the lease table when it changed, at most every LEASE_SAVE_INTERVAL_S (``force``: at shutdown)."""
        if self.lease_store is None or (not force and now - self._leases_saved_at < LEASE_SAVE_INTERVAL_S):
            return
        self._leases_saved_at = now
        bindings = self._state.bindings
        leases = {mac: {a: min(t, FOREVER) for a, t in table.items()} for mac, table in bindings.leases().items()}
        leases[ROUTER_KEY] = {a: min(t, FOREVER) for a, t in bindings.routers().items()}
        try:
            self.lease_store.save(leases)
        except LeaseStoreError as error:
            log.warning("DHCP leases not saved (%s): %s", error.reason, error.message)
