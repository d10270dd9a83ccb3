"""The enforcer's core: switch, device and resolution events in, flow updates and requests out.

Pure and single-threaded (the app calls it from its one event loop): no sockets, no clock (``now`` is an argument),
no framework. Every event returns a list of effects for the app to carry out:

* :class:`FlowUpdate` -- for one switch: add these rules, barrier, delete these (make-before-break: while both
  sets are in the table a packet meets either the old or the new verdict, never one both deny), barrier; the MACs
  in ``confirms`` have their records saved when the final barrier comes back;
* :class:`ResolveRequest` -- resolve this MUD URL in the worker (the answer comes back as :meth:`resolved`);
* :class:`Alert` -- tell the operator (quarantine, spoofing, refused URL, ...).

What the switch should hold is kept per *owner* (the switch's shared flows, one port's punts, one device, one
profile, one learned host), so an event recomputes and diffs only the owners it touches.

Device life: an announcement classifies the device at once under the quarantine profile (DHCP, ARP and ND
only: fail closed while its file is fetched) and asks for its URL; the resolution installs its profile (shared
with every device of the same URL on that switch) or keeps it quarantined. Identity is (switch, port, MAC): an
announcement of a known MAC from another port while its own port is up is a spoof, alerted and ignored (its data
frames are dropped by the anti-spoofing flow); after a port-down the device may reappear elsewhere (a move).

The enforcer is composed, not layered: it owns one :class:`~mud_ryu.enforcer.network.EnforcerState` (devices,
switches, profiles, bindings, id maps and the indices over them) and hands each event to the collaborator for it,
each built on that state with the others it needs passed in (FAUCET's Valve and its managers are the model):

* :class:`~mud_ryu.enforcer.profiles.ProfileBook` -- verified files compiled, put in force, recompiled;
* :class:`~mud_ryu.enforcer.flows.FlowBook` -- the desired flows per owner and the diff against each switch;
* :class:`~mud_ryu.enforcer.resolution.Resolution` -- resolutions in flight and what the worker's answers do;
* :class:`~mud_ryu.enforcer.admission.Admission` -- announcements, learned hosts, binding a device;
* :class:`~mud_ryu.enforcer.dns.DnsEvents`, :class:`~mud_ryu.enforcer.bindings.BindingEvents` -- DNS answers, and
  the IP source guard's claims and leases;
* :class:`~mud_ryu.enforcer.refusals.RefusedFlows` -- flows a switch refused, resent after a backoff.

This module keeps start-up from the stores, the switch and port events, reconciliation, operator syncs and barrier
confirmations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import Band, table_id
from mud_ryu.dns.bind import DnsBindings
from mud_ryu.dns.store import DnsStore
from mud_ryu.enforcer.admission import Admission
from mud_ryu.enforcer.bindings import BindingEvents
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.enforcer.dns import DnsEvents
from mud_ryu.enforcer.flows import FlowBook
from mud_ryu.enforcer.my_controller import MyControllerEntry
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.profiles import ProfileBook
from mud_ryu.enforcer.refusals import RefusedFlows
from mud_ryu.enforcer.resolution import RECHECK_S, RESOLVE_TIMEOUT_S, Resolution
from mud_ryu.enforcer.state import Alert, Device, Effect, FlowUpdate, Owner, Profile, ResolveRequest, SwitchState
from mud_ryu.fetch.wire import WireResult
from mud_ryu.guard import source as sourceguard
from mud_ryu.guard.bindings import AddressBindings
from mud_ryu.guard.dhcp_lease import Lease
from mud_ryu.guard.lease_store import LeaseStore
from mud_ryu.openflow.flowkey import FlowKey, rule_key
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStoreError
from mud_ryu.policy.types import DeviceId, TrustState
from mud_ryu.settings import MudSettings

log = logging.getLogger(__name__)

__all__ = ["RECHECK_S", "RESOLVE_TIMEOUT_S", "Alert", "Device", "Effect", "Enforcer", "FlowUpdate", "ResolveRequest"]


class Enforcer:
    def __init__(
        self,
        settings: MudSettings,
        store: DeviceStore,
        trust: TrustGate,
        now: float,
        dns_store: DnsStore | None = None,
        lease_store: LeaseStore | None = None,
    ) -> None:
        """``dns_store``, ``lease_store``: where DNS-learned bindings and DHCP leases are kept across restarts (None:
        in memory only)."""
        self.trust = trust
        self.state = EnforcerState(settings, store)
        self.profile_book = ProfileBook(self.state)
        self.flows = FlowBook(self.state, self.profile_book)
        self.resolution = Resolution(self.state, self.profile_book, self.flows, trust)
        self.admission = Admission(self.state, self.flows, self.resolution, trust)
        self.dns_events = DnsEvents(self.state, self.profile_book, self.flows)
        self.binding_events = BindingEvents(self.state, self.flows)
        self.refusals = RefusedFlows(self.state, self.flows)
        self._trust_over_rows()
        for device in self.devices.values():
            if device.url and device.sha256 and device.url not in self.profiles:
                body = store.body(device.sha256)
                if body is not None:
                    self.profile_book.install(device.url, device.sha256, body)
        if dns_store is not None:
            self.dns_events.restore(dns_store, now)
        if lease_store is not None:
            self.binding_events.restore_leases(lease_store, now)
        log.info("enforcer state: %d devices, %d profiles loaded", len(self.devices), len(self.profiles))

    # ---- the state others read (the API, the app's effects, the operator actions)
    @property
    def settings(self) -> MudSettings:
        return self.state.settings

    @property
    def store(self) -> DeviceStore:
        return self.state.store

    @property
    def devices(self) -> dict[str, Device]:
        return self.state.devices

    @property
    def switches(self) -> dict[int, SwitchState]:
        return self.state.switches

    @property
    def profiles(self) -> dict[str, Profile]:
        return self.state.profiles

    @property
    def dns(self) -> DnsBindings:
        return self.state.dns

    @property
    def bindings(self) -> AddressBindings:
        return self.state.bindings

    # ---- admission and resolution: handed to the collaborators ---------------------------------------------------

    def discovered(self, dpid: int, port: int, scanned: object, now: float) -> list[Effect]:
        """A punted DHCP/DHCPv6/LLDP frame (:meth:`Admission.discovered`)."""
        return self.admission.discovered(dpid, port, scanned, now)

    def learned(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        """A source the switch did not know, or a client without a URL (:meth:`Admission.learned`)."""
        return self.admission.learned(dpid, port, mac, now)

    def resolved(self, result: WireResult, now: float) -> list[Effect]:
        """The worker answered for a MUD URL (:meth:`Resolution.resolved`)."""
        return self.resolution.resolved(result, now)

    def retry_lost(self, now: float) -> list[Effect]:
        """Resolutions never answered are asked again (:meth:`Resolution.retry_lost`)."""
        return self.resolution.retry_lost(now)

    # ---- the operator's my-controller entries
    def my_controller_entries(self) -> list[MyControllerEntry]:
        """Every per-URL my-controller entry (:meth:`ProfileBook.my_controller_entries`)."""
        return self.profile_book.my_controller_entries()

    def set_my_controller(self, url: str, addresses: Iterable[str] | None) -> list[Effect]:
        """Set or clear the operator's my-controller entry for a MUD URL and send the recompiled profiles' flows
        (:meth:`ProfileBook.set_my_controller`, which raises before anything changes)."""
        return self.flows.sync_profiles(self.profile_book.set_my_controller(url, addresses))

    # ---- the IP source guard's events: handed to the collaborator ------------------------------------------------

    def source_seen(self, dpid: int, port: int, mac: str, address: str, now: float, held: bytes = b"") -> list[Effect]:
        """A managed device sent from an address not bound to it (:meth:`BindingEvents.source_seen`)."""
        return self.binding_events.source_seen(dpid, port, mac, address, now, held)

    def lease_seen(self, dpid: int, port: int, lease: Lease, now: float) -> list[Effect]:
        """A DHCP server's answer seen on a trusted port (:meth:`BindingEvents.lease_seen`)."""
        return self.binding_events.lease_seen(dpid, port, lease, now)

    def lease_expire(self, now: float) -> list[Effect]:
        """Leases that ran out (:meth:`BindingEvents.lease_expire`)."""
        return self.binding_events.lease_expire(now)

    def save_leases(self, now: float, *, force: bool = False) -> None:
        """Save the lease table when it changed (:meth:`BindingEvents.save_leases`)."""
        self.binding_events.save_leases(now, force=force)

    # ---- DNS events: handed to the collaborator ----------------------------------------------------------------

    def dns_seen(self, scanned: object, now: float, frame: bytes = b"", *, ingress: tuple[int, int]) -> list[Effect]:
        """A punted DNS query or held answer (:meth:`DnsEvents.seen`)."""
        return self.dns_events.seen(scanned, now, frame, ingress)

    def dns_resolved(self, answers: Mapping[str, tuple[tuple[str, ...], float]], now: float) -> list[Effect]:
        """The worker's proactive resolution of profile names (:meth:`DnsEvents.resolved`)."""
        return self.dns_events.resolved(answers, now)

    def dns_expire(self, now: float) -> list[Effect]:
        """Addresses past their TTL leave their names' sets (:meth:`DnsEvents.expire`)."""
        return self.dns_events.expire(now)

    def save_dns(self, now: float, *, force: bool = False) -> None:
        """Save the DNS bindings when they changed (:meth:`DnsEvents.save`)."""
        self.dns_events.save(now, force=force)

    def _trust_over_rows(self) -> None:
        """At start the trust store, not the device rows, decides who may be enforced: a revoke (or a refused update)
        commits trust first and the device row after its flows, so a crash or a failed row write between the two
        leaves a row saying "enforced" for a device its trust quarantines. Restoring from the row would undo the
        revoke; such a device starts quarantined, as does any whose trust cannot be read (fail closed). So does one
        whose trust at that place does not hold exactly the row's URL and file: rows are written behind (a crash
        loses the last turn's), so a row can predate a trust move to another port (no pin is left at the row's
        place) or an accepted change (the row's file is a rollback now); its next announcement and the worker's
        answer restore what its trust holds (R2: no device has a policy without a pin)."""
        for device in self.devices.values():
            if device.state != "enforced":
                continue
            try:
                record = self.trust.record(DeviceId(device.dpid, device.port, device.mac))
                holds = record.state is TrustState.TRUSTED and (record.current_url, record.current_sha256) == (
                    device.url, device.sha256)  # fmt: skip
            except TrustStoreError as error:
                log.error("trust of %s unreadable at start (%s): quarantined", device.mac, error.reason)
                holds = False
            if not holds:
                log.warning("%s: its row said enforced, its trust does not hold that file there: starting quarantined",
                            device.mac)  # fmt: skip
                device.state, device.reason = "quarantined", "trust:quarantined"

    # ---- switch events
    def switch_up(self, dpid: int, ports: Iterable[int], metered: bool) -> None:
        """A switch connected. Nothing is sent until :meth:`reconcile` hears what it already holds."""
        sw = SwitchState(dpid, metered, set(ports))
        trusted = self.state.trusted_ports(dpid)
        if trusted:
            log.info("dpid=%016x trusted ports (uplinks, servers): %s", dpid, ", ".join(map(str, sorted(trusted))))
        else:
            log.warning(
                "dpid=%016x has no uplink_ports or server_ports: every port without a MUD device counts as "
                "trusted (may claim server addresses, send DHCP offers, RAs); configure them",
                dpid,
            )
        if not any(":" not in s for s in self.settings.dhcp_servers):
            log.warning("no IPv4 dhcp_servers configured: MUD devices' DHCP client messages may go to any IPv4 peer")
        old = self.switches.get(dpid)
        if old is not None:
            sw.hosts = old.hosts
        self.switches[dpid] = sw

    def reconcile(self, dpid: int, held: Iterable[tuple[FlowKey, object]], now: float = 0.0) -> list[Effect]:
        """``held``: the app's flows the switch reported, as (key, app reference). Keep what is wanted, add what is
        missing, delete only what nothing wants: a controller restart deletes no valid flow (THREATS.md R11).
        Compared as normalised keys (:mod:`mud_ryu.openflow.flowkey`), because the switch re-encodes what it was
        sent."""
        sw = self.switches[dpid]
        held = list(held)
        learned_slot = (table_id("classify_src"), int(Band.LEARNED))
        binding_slot = (table_id("source_guard"), sourceguard.BINDING_PRIORITY)
        for key, _ in held:  # source bindings of devices placed here survive a controller restart: adopt them
            if (key.table_id, key.priority) == binding_slot:
                fields = dict(key.match)
                mac, address = fields.get("eth_src"), fields.get("ipv4_src", fields.get("ipv6_src"))
                device = self.devices.get(mac) if isinstance(mac, str) else None
                if device is not None and device.dpid == dpid and device.state != "absent" and address is not None:
                    self.bindings.adopt(device.mac, [str(address)])
        for key, _ in held:  # learned hosts survive a controller restart: adopt them
            if (key.table_id, key.priority) == learned_slot:
                fields = dict(key.match)
                mac, port = fields.get("eth_src"), fields.get("in_port")
                if isinstance(mac, str) and isinstance(port, int) and self.admission.learnable(dpid, port, mac):
                    sw.hosts.setdefault(mac, port)
        self.state.reindex()  # the device map is the truth after a restart or an outside removal
        wanted = self.flows.reset(sw)
        want = {rule_key(r): r for flows in wanted.values() for r in flows}
        want_slots = {k.slot for k in want}
        held_keys = {key for key, _ in held}
        adds = tuple(r for k, r in want.items() if k not in held_keys)
        stale = tuple(ref for key, ref in held if key.slot not in want_slots)
        log.info("reconcile dpid=%016x: %d held, %d wanted, %d to add, %d stale",
                 dpid, len(held_keys), len(want), len(adds), len(stale))  # fmt: skip
        resolving = self.resolution.resolving
        requests = self.resolution.asked([url for url in self._urls_on(dpid) if url not in resolving], now)
        return [FlowUpdate(dpid, adds, (), stale=stale), *requests]

    def _urls_on(self, dpid: int) -> list[str]:
        return sorted({d.url for d in self.devices.values() if d.dpid == dpid and d.url and d.state != "absent"})

    def switch_down(self, dpid: int) -> None:
        self.switches.pop(dpid, None)
        self.refusals.forget(dpid)

    def port_up(self, dpid: int, port: int) -> list[Effect]:
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        sw.ports_up.add(port)
        return self.flows.sync(dpid, [("punt", port)])

    def port_down(self, dpid: int, port: int, now: float) -> list[Effect]:
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        sw.ports_up.discard(port)
        touched: list[Owner] = [("punt", port)]
        for mac in [m for m, p in sw.hosts.items() if p == port]:
            del sw.hosts[mac]
            touched.append(("host", mac))
        gone = []
        for device in self.devices.values():
            if device.dpid == dpid and device.port == port and device.state != "absent":
                device.state, device.reason, device.updated_at = "absent", "port-down", now
                touched.append(("device", device.mac))
                gone.append(device.mac)
        return self.flows.sync(dpid, touched, confirms=tuple(gone))

    def sync_device(self, mac: str) -> list[Effect]:
        """Bring one device's flows on its switch in line with its record (after an operator action)."""
        device = self.devices.get(mac)
        if device is None:
            return []
        return self.flows.sync(device.dpid, [("device", mac)], confirms=(mac,))

    # ---- flows the switch refused (an OpenFlow error tied to its flow-mod by xid)
    def flows_refused(
        self, dpid: int, rules: Iterable[FlowRule], confirms: Iterable[str], reason: str, now: float
    ) -> list[Effect]:
        """The switch refused ``rules`` (:meth:`RefusedFlows.refused`)."""
        return self.refusals.refused(dpid, rules, confirms, reason, now)

    def retry_refused(self, now: float) -> list[Effect]:
        """Resend refused flows whose backoff is due (:meth:`RefusedFlows.retry`)."""
        return self.refusals.retry(now)

    def confirmed(self, macs: Iterable[str]) -> None:
        """The switch acknowledged (barrier) the flows of these devices: make their records durable."""
        for mac in macs:
            device = self.devices.get(mac)
            if device is not None:
                self.store.save_device(device.record())
