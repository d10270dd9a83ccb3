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

The class is built in layers, one module each: :mod:`~mud_ryu.enforcer.flows` (the flow book: per-owner desired
flows and the diff), :mod:`~mud_ryu.enforcer.resolution` (the worker's answers and verification),
:mod:`~mud_ryu.enforcer.admission` (announcements, learned hosts, binding a device), and this module: start-up
from the stores, switch and port events, operator syncs and barrier confirmations. The DNS events and the IP source
guard's events are collaborators the enforcer owns, not layers (:class:`~mud_ryu.enforcer.dns.DnsEvents`,
:class:`~mud_ryu.enforcer.bindings.BindingEvents`, each on the flow book): the first steps from this chain of
layers to an enforcer composed of collaborators with narrow interfaces.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import Band, table_id
from mud_ryu.dns.store import DnsStore
from mud_ryu.enforcer.admission import AdmissionEvents
from mud_ryu.enforcer.bindings import BindingEvents
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.enforcer.dns import DnsEvents
from mud_ryu.enforcer.resolution import RECHECK_S, RESOLVE_TIMEOUT_S
from mud_ryu.enforcer.state import Alert, Device, Effect, FlowUpdate, Owner, ResolveRequest, SwitchState
from mud_ryu.guard import source as sourceguard
from mud_ryu.guard.dhcp_lease import Lease
from mud_ryu.guard.lease_store import LeaseStore
from mud_ryu.openflow.flowkey import FlowKey, rule_key
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStoreError
from mud_ryu.policy.types import DeviceId
from mud_ryu.settings import MudSettings

log = logging.getLogger(__name__)
REFUSAL_RETRY_FIRST_S = 1.0
REFUSAL_RETRY_MAX_S = 60.0


@dataclasses.dataclass
class _Retry:
    """Owners of one switch whose flows it refused, waiting for their resend."""

    owners: set[Owner] = dataclasses.field(default_factory=set)
    confirms: set[str] = dataclasses.field(default_factory=set)
    due: float = 0.0  # 0: nothing waiting (the delay is kept for the next refusal)
    delay: float = 0.0
    last: float = 0.0  # when the last refusal came

__all__ = ["RECHECK_S", "RESOLVE_TIMEOUT_S", "Alert", "Device", "Effect", "Enforcer", "FlowUpdate", "ResolveRequest"]


class Enforcer(AdmissionEvents):
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
        super().__init__(settings, store, trust)
        self.dns_events = DnsEvents(self)
        self.binding_events = BindingEvents(self)
        self._refusals: dict[int, _Retry] = {}
        self._trust_over_rows()
        for device in self.devices.values():
            if device.url and device.sha256 and device.url not in self.profiles:
                body = store.body(device.sha256)
                if body is not None:
                    self._install_profile(device.url, device.sha256, body)
        if dns_store is not None:
            self.dns_events.restore(dns_store, now)
        if lease_store is not None:
            self.binding_events.restore_leases(lease_store, now)
        log.info("enforcer state: %d devices, %d profiles loaded", len(self.devices), len(self.profiles))

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
        revoke; such a device starts quarantined, as does any whose trust cannot be read (fail closed)."""
        for device in self.devices.values():
            if device.state != "enforced":
                continue
            try:
                quarantined = self.trust.quarantined(DeviceId(device.dpid, device.port, device.mac))
            except TrustStoreError as error:
                log.error("trust of %s unreadable at start (%s): quarantined", device.mac, error.reason)
                quarantined = True
            if quarantined:
                log.warning("%s: its row said enforced, its trust says quarantined: starting quarantined", device.mac)
                device.state, device.reason = "quarantined", "trust:quarantined"

    # ---- switch events
    def switch_up(self, dpid: int, ports: Iterable[int], metered: bool) -> None:
        """A switch connected. Nothing is sent until :meth:`reconcile` hears what it already holds."""
        sw = SwitchState(dpid, metered, set(ports))
        trusted = self.trusted_ports(dpid)
        if trusted:
            log.info("dpid=%016x trusted ports (uplinks, servers): %s", dpid, ", ".join(map(str, sorted(trusted))))
        else:
            log.warning("dpid=%016x has no uplink_ports or server_ports: every port without a MUD device counts as "
                        "trusted (may claim server addresses, send DHCP offers, RAs); configure them", dpid)
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
                if isinstance(mac, str) and isinstance(port, int) and self._learnable(dpid, port, mac):
                    sw.hosts.setdefault(mac, port)
        self._reindex()  # the device map is the truth after a restart or an outside removal
        wanted = self._desired(sw)
        sw.owners, sw.slots = {}, {}
        for owner, flows in wanted.items():
            self._set_owner(sw, owner, flows)
        sw.device_profile = {
            d.mac: pid for d in self.devices.values() if (pid := self._enforced_profile_id(d, dpid)) is not None
        }
        want = {rule_key(r): r for flows in wanted.values() for r in flows}
        want_slots = {k.slot for k in want}
        held_keys = {key for key, _ in held}
        adds = tuple(r for k, r in want.items() if k not in held_keys)
        stale = tuple(ref for key, ref in held if key.slot not in want_slots)
        log.info("reconcile dpid=%016x: %d held, %d wanted, %d to add, %d stale",
                 dpid, len(held_keys), len(want), len(adds), len(stale))  # fmt: skip
        requests = [ResolveRequest(url) for url in self._urls_on(dpid) if url not in self.resolving]
        self.resolving.update((r.url, now) for r in requests)
        return [FlowUpdate(dpid, adds, (), stale=stale), *requests]

    def _urls_on(self, dpid: int) -> list[str]:
        return sorted({d.url for d in self.devices.values() if d.dpid == dpid and d.url and d.state != "absent"})

    def switch_down(self, dpid: int) -> None:
        self.switches.pop(dpid, None)
        self._refusals.pop(dpid, None)

    def port_up(self, dpid: int, port: int) -> list[Effect]:
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        sw.ports_up.add(port)
        return self.sync(dpid, [("punt", port)])

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
        return self.sync(dpid, touched, confirms=tuple(gone))

    def sync_device(self, mac: str) -> list[Effect]:
        """Bring one device's flows on its switch in line with its record (after an operator action)."""
        device = self.devices.get(mac)
        if device is None:
            return []
        return self.sync(device.dpid, [("device", mac)], confirms=(mac,))

    # ---- flows the switch refused (an OpenFlow error tied to its flow-mod by xid)
    def flows_refused(
        self, dpid: int, rules: Iterable[FlowRule], confirms: Iterable[str], reason: str, now: float
    ) -> list[Effect]:
        """The switch refused ``rules`` (sent in one update whose barrier would have confirmed ``confirms``). Those
        rules leave the book of the owners holding them, so a retry sends them again; their devices are
        not confirmed (their records stay as they were: what the switch holds is not what they say); the operator is
        told. :meth:`retry_refused` resends after a backoff (1 s, doubling to 60 s while refusals go on)."""
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        refused = frozenset(rules)
        owners = [owner for owner, flows in sw.owners.items() if flows & refused]
        for owner in owners:
            # Only what was refused leaves the book: the retry's diff sends it again, and what the switch accepted
            # stays known, so a change before the retry still deletes what it no longer wants.
            self._set_owner(sw, owner, sw.owners[owner] - refused)
        retry = self._refusals.setdefault(dpid, _Retry())
        retry.owners.update(owners)
        retry.confirms.update(confirms)
        # Refusals in a row (within twice the longest delay of the last one) double the delay; a fresh one starts over.
        in_a_row = retry.delay and now - retry.last < 2 * REFUSAL_RETRY_MAX_S
        retry.delay = min(REFUSAL_RETRY_MAX_S, retry.delay * 2) if in_a_row else REFUSAL_RETRY_FIRST_S
        retry.due, retry.last = now + retry.delay, now
        effects: list[Effect] = []
        for owner in sorted(owners, key=repr):
            kind, key = owner
            device = self.devices.get(str(key)) if kind == "device" else None
            port = device.port if device is not None else (key if kind == "punt" and isinstance(key, int) else 0)
            why = f"switch refused flows of {kind} {key}: {reason}; retrying in {retry.delay:g} s"
            effects.append(Alert("flow-refused", device.mac if device else "", dpid, port, "", why))
        return effects

    def retry_refused(self, now: float) -> list[Effect]:
        """Resend the owners whose flows a switch refused, once their backoff is due (the app's flow-retry loop)."""
        effects: list[Effect] = []
        for dpid, retry in list(self._refusals.items()):
            if retry.due > now:
                continue
            if dpid not in self.switches:
                del self._refusals[dpid]  # reconnect reconciles everything anyway
                continue
            owners, confirms = set(retry.owners), tuple(sorted(retry.confirms))
            retry.owners.clear()
            retry.confirms.clear()
            retry.due = 0.0  # the delay stays: a refusal of this resend doubles it
            effects += self.sync(dpid, owners, confirms=confirms)
        return effects

    def confirmed(self, macs: Iterable[str]) -> None:
        """The switch acknowledged (barrier) the flows of these devices: make their records durable."""
        for mac in macs:
            device = self.devices.get(mac)
            if device is not None:
                self.store.save_device(device.record())
