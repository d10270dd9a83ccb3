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
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Iterator

from mud_ryu.devicestore import DeviceStore
from mud_ryu.discovery import Announcement, Malformed, NoUrl
from mud_ryu.enforcer_dns import DnsEvents
from mud_ryu.enforcer_state import (
    Alert,
    Device,
    Effect,
    FlowUpdate,
    Owner,
    Profile,
    ResolveNames,
    ResolveRequest,
    SwitchState,
)
from mud_ryu.flowkey import FlowKey, rule_key
from mud_ryu.pipeline import Band, table_id
from mud_ryu.resolve_wire import WireResult
from mud_ryu.settings import DefaultPolicy, MudSettings
from mud_ryu.trustgate import TrustGate
from mud_ryu.truststore import TrustStoreError
from mud_ryu.update_policy import Outcome
from mud_ryu.update_types import Decision, DeviceId, TrustRecord, TrustState, Verdict
from mud_ryu.urlgate import MudUrl, UrlRejected, check_mud_url

log = logging.getLogger(__name__)
DHCPRELEASE = 7
RECHECK_S = 60.0  # a file confirmed this recently is not re-resolved for each device announcing it
RESOLVE_TIMEOUT_S = 30.0  # > the worker's fetch deadline (10 s) for the file plus its signature

__all__ = ["Alert", "Device", "Effect", "Enforcer", "FlowUpdate", "ResolveRequest"]


class Enforcer(DnsEvents):
    def __init__(self, settings: MudSettings, store: DeviceStore, trust: TrustGate, now: float) -> None:
        super().__init__(settings, store)
        self.trust = trust
        # URL -> when its resolution was requested. An answer that never comes (a worker lost mid-request) must not
        # leave devices quarantined for good: after RESOLVE_TIMEOUT_S the next announcement asks again.
        self.resolving: dict[str, float] = {}
        self.checked_at: dict[str, float] = {}  # URL -> when the worker last confirmed the file in force
        for device in self.devices.values():
            if device.url and device.sha256 and device.url not in self.profiles:
                body = store.body(device.sha256)
                if body is not None:
                    self._install_profile(device.url, device.sha256, body)
        log.info("enforcer state: %d devices, %d profiles loaded", len(self.devices), len(self.profiles))

    # ---- switch events
    def switch_up(self, dpid: int, ports: Iterable[int], metered: bool) -> None:
        """A switch connected. Nothing is sent until :meth:`reconcile` hears what it already holds."""
        sw = SwitchState(dpid, metered, set(ports))
        old = self.switches.get(dpid)
        if old is not None:
            sw.hosts = old.hosts
        self.switches[dpid] = sw

    def reconcile(self, dpid: int, held: Iterable[tuple[FlowKey, object]], now: float = 0.0) -> list[Effect]:
        """``held``: the app's flows the switch reported, as (key, app reference). Keep what is wanted, add what is
        missing, delete only what nothing wants: a controller restart deletes no valid flow (THREATS.md R11).
        Compared as normalised keys (:mod:`mud_ryu.flowkey`), because the switch re-encodes what it was sent."""
        sw = self.switches[dpid]
        held = list(held)
        learned_slot = (table_id("classify_src"), int(Band.LEARNED))
        for key, _ in held:  # learned hosts survive a controller restart: adopt them
            if (key.table_id, key.priority) == learned_slot:
                fields = dict(key.match)
                mac, port = fields.get("eth_src"), fields.get("in_port")
                if isinstance(mac, str) and isinstance(port, int) and self._learnable(dpid, port, mac):
                    sw.hosts.setdefault(mac, port)
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

    def port_up(self, dpid: int, port: int) -> list[Effect]:
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        sw.ports_up.add(port)
        return self._sync(dpid, [("punt", port)])

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
        return self._sync(dpid, touched, confirms=tuple(gone))

    # ---- packets
    def discovered(self, dpid: int, port: int, scanned: object, now: float) -> list[Effect]:
        """A punted DHCP/DHCPv6/LLDP frame, scanned by :func:`mud_ryu.discovery.scan_frame`."""
        if dpid not in self.switches:
            return []
        if isinstance(scanned, Announcement):
            return self._announcement(dpid, port, scanned, now)
        if isinstance(scanned, NoUrl):
            if scanned.protocol == "dhcpv4" and scanned.msg_type == DHCPRELEASE:
                return self._release(dpid, port, scanned.src_mac, now)
            return self.learned(dpid, port, scanned.src_mac, now)
        if isinstance(scanned, Malformed):
            return [Alert("malformed-announcement", scanned.src_mac or "", dpid, port, "", scanned.reason)]
        return []

    def _uplink(self, dpid: int, port: int) -> bool:
        return (dpid, port) in self.settings.uplink_ports

    def learned(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        """A frame from a source the switch did not know (the learning copy), or a client without a URL."""
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        if int(mac[:2], 16) & 1:
            return []
        device = self.devices.get(mac)
        if device is not None and device.state != "absent":
            if device.dpid == dpid or not self._uplink(dpid, port):
                # Managed here: its own flows classify it (a wrong port is the anti-spoof flow's business). Managed
                # on another switch but seen on an access port here: never learn it as an unmanaged host.
                return []
            # A device of another switch arriving over an uplink: forwarding only, its policy ran at its own switch.
        elif self.settings.default_policy is DefaultPolicy.BOOTSTRAP_ONLY and not self._uplink(dpid, port):
            return self._admit(dpid, port, mac, None, "learned", now)
        if sw.hosts.get(mac) == port:
            return []
        sw.hosts[mac] = port
        return self._sync(dpid, [("host", mac)])

    def _learnable(self, dpid: int, port: int, mac: str) -> bool:
        """Whether ``mac`` may hold learned-host flows at (dpid, port): not a device managed on this switch, and
        a device managed elsewhere only through an uplink."""
        device = self.devices.get(mac)
        if device is None or device.state == "absent":
            return True
        return device.dpid != dpid and self._uplink(dpid, port)

    def _release(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        device = self.devices.get(mac)
        if device is None or (device.dpid, device.port) != (dpid, port):
            return []
        device.state, device.reason, device.updated_at = "absent", "dhcp-release", now
        return self._sync(dpid, [("device", mac)], confirms=(mac,))

    def _announcement(self, dpid: int, port: int, ann: Announcement, now: float) -> list[Effect]:
        mac = ann.src_mac
        if self._uplink(dpid, port):
            return []  # relayed from another switch: the access switch handles it
        device = self.devices.get(mac)
        home = self.switches.get(device.dpid) if device is not None else None
        elsewhere = device is not None and device.state != "absent" and (device.dpid, device.port) != (dpid, port)
        if elsewhere and device is not None and home is not None and device.port in home.ports_up:
            # Its own port is still up, so this is not a move: never silently rebind (THREATS.md row 1).
            return [Alert("spoofed-announcement", mac, dpid, port, ann.url,
                              f"{mac} is at dpid {device.dpid:016x} port {device.port}; not rebinding")]  # fmt: skip
        try:
            gated = check_mud_url(ann.url)
        except UrlRejected as rejected:
            effects = self._admit(dpid, port, mac, None, ann.protocol, now, reason=f"url:{rejected.reason}")
            return [*effects, Alert("bad-url", mac, dpid, port, ann.url[:255], rejected.message)]
        identity = DeviceId(dpid, port, mac)
        if device is not None and device.state == "absent" and (device.dpid, device.port) != (dpid, port):
            # A move after a port-down or release: the device's trust (pin, history) moves with it, explicitly.
            with _trust_errors():
                if self.trust.moved(DeviceId(device.dpid, device.port, mac), identity):
                    log.info("trust of %s moved from dpid %016x port %d to dpid %016x port %d", mac, device.dpid,
                             device.port, dpid, port)  # fmt: skip
        try:
            # One read of the trust record per announcement: the outcome carries the record now in force.
            outcome = self.trust.announce(identity, gated, now)
        except TrustStoreError as error:
            log.error("trust store failed (%s): %s", error.reason, error.message)
            return self._fail_closed(dpid, port, mac, ann.protocol, gated.url, now)
        return self._after_announcement(identity, gated.url, ann.protocol, outcome, now)

    def _decide(self, call: Callable[[], Decision]) -> Decision | None:
        """Run one trust-store-backed policy step; None when the store failed (the caller fails closed)."""
        try:
            return call()
        except TrustStoreError as error:
            log.error("trust store failed (%s): %s", error.reason, error.message)
            return None

    def _fail_closed(self, dpid: int, port: int, mac: str, via: str, url: str, now: float) -> list[Effect]:
        effects = self._admit(dpid, port, mac, None, via, now, reason="trust-store-failed")
        return [*effects, Alert("trust-store-failed", mac, dpid, port, url, "trust state unavailable: quarantined")]

    def _after_announcement(self, identity: DeviceId, url: str, via: str, outcome: Outcome, now: float) -> list[Effect]:
        """Act on the update policy's verdict for an announced URL (README "Update policy"). ``outcome.record`` is
        the trust record in force (committed, or unchanged and not rewritten)."""
        dpid, port, mac = identity.dpid, identity.port, identity.mac
        decision, record = outcome.decision, outcome.record
        verdict = decision.verdict
        if verdict is Verdict.FETCH:
            return self._admit(dpid, port, mac, url, via, now, record=record)
        if verdict is Verdict.IGNORE:
            current = record.current_url or url
            effects = self._admit(dpid, port, mac, current, via, now, record=record)
            if current != url:  # e.g. rate-limited: the change is not taken now, the policy in force stays
                effects.append(Alert("update-ignored", mac, dpid, port, url, f"{decision.reason_code}: "
                                     f"{decision.message}"))  # fmt: skip
            return effects
        code = "pending-approval" if verdict is Verdict.PENDING_APPROVAL else "update-violation"
        alert = Alert(code, mac, dpid, port, url, f"{decision.reason_code}: {decision.message}")
        if record.state is TrustState.TRUSTED and record.current_url:  # violation_action = keep-last
            return [*self._admit(dpid, port, mac, record.current_url, via, now, record=record), alert]
        return [*self._admit(dpid, port, mac, None, via, now, reason=f"policy:{decision.reason_code}"), alert]

    def _admit(
        self,
        dpid: int,
        port: int,
        mac: str,
        url: str | None,
        via: str,
        now: float,
        reason: str = "",
        record: TrustRecord | None = None,
    ) -> list[Effect]:
        """Bind (switch, port, MAC) to ``url``: quarantined until the URL resolves (or forever, for None).
        ``record``: the device's trust record, when the caller already holds it (read from the gate otherwise).

        A renewal that leaves the device as it is (same switch, port, URL, state, file and reason) keeps its
        record as stored: no device-row write (an fsync) and no barrier to confirm. ``via`` and ``updated_at``
        then stay those of the last change: an LLDP refresh of a device that also renews over DHCP is no change."""
        effects: list[Effect] = []
        sw = self.switches[dpid]
        previous = self.devices.get(mac)
        if mac in sw.hosts:
            del sw.hosts[mac]
            effects += self._sync(dpid, [("host", mac)])
        if previous is not None and previous.dpid != dpid and previous.dpid in self.switches:
            old_dpid = previous.dpid
            previous.state = "absent"
            effects += self._sync(old_dpid, [("device", mac)])  # the old location is cleaned
        device_id = previous.device_id if previous else self.store.device_id(mac)
        same = previous is not None and previous.url == url and previous.state == "enforced"
        keep_policy = previous is not None and previous.state == "enforced" and url is not None
        device = Device(mac, device_id, dpid, port, url, via, "enforced" if keep_policy else "quarantined",
                        previous.sha256 if keep_policy and previous else None, reason, now)  # fmt: skip
        if keep_policy and not same and previous is not None:
            # A new URL keeps the old policy in force until the new one is verified (never widen, never cut).
            device.url = previous.url
            device.reason = f"pending:{url}"
        if previous is not None and _unchanged(previous, device):
            device = previous
            # Nothing to save or confirm; the diff still repairs flows this switch's state says are missing.
            effects += self._sync(dpid, [("device", mac)])
        else:
            self.devices[mac] = device
            self.store.save_device(device.record())
            effects += self._sync(dpid, [("device", mac)], confirms=(mac,))
        if url is None:
            return effects  # quarantined for good (no URL, or a refused one: the caller alerts)
        profile = self.profiles.get(url)
        if record is None:
            record = self.trust.record(DeviceId(dpid, port, mac))
        known = profile is not None and (record.current_url, record.current_sha256) == (url, profile.sha256)
        if profile is not None and known and not keep_policy:
            # This device's trust already accepted exactly this file: enforce now, no round trip to the worker.
            effects += self._enforce(device, profile, now)
        recently = known and now - self.checked_at.get(url, float("-inf")) < RECHECK_S
        if not self._in_flight(url, now) and not recently:
            # A known, recently checked file needs no new resolution for every device that announces it (the
            # periodic refresh keeps it current); anything else goes to the worker.
            self.resolving[url] = now
            effects.append(ResolveRequest(url))
        return effects

    def _in_flight(self, url: str, now: float) -> bool:
        asked = self.resolving.get(url)
        return asked is not None and now - asked < RESOLVE_TIMEOUT_S

    def _enforce(self, device: Device, profile: Profile, now: float) -> list[Effect]:
        device.url, device.sha256, device.state, device.reason, device.updated_at = (
            profile.url,
            profile.sha256,
            "enforced",
            "",
            now,
        )
        return self._sync(device.dpid, [("device", device.mac), ("profile", profile.profile_id)],
                          confirms=(device.mac,))  # fmt: skip

    # ---- resolutions
    def resolved(self, result: WireResult, now: float) -> list[Effect]:
        """The worker answered for ``result.url``: each device waiting on it goes through the update policy
        (its own pin and history), then is enforced, kept on its last policy, or quarantined."""
        self.resolving.pop(result.url, None)
        waiting = [d for d in self.devices.values() if d.state != "absent" and _wants(d, result.url)]
        try:
            gated = check_mud_url(result.url)
        except UrlRejected:
            return []  # the worker only answers for gated URLs; nothing to act on
        effects: list[Effect] = []
        if result.body and result.sha256:
            prepared = self._prepare_profile(result.url, result.sha256, result.body)
            if isinstance(prepared, Profile):
                return self._verified(waiting, gated, prepared, result, now)
            reason = prepared
        else:
            reason = result.reason or result.outcome.value
        for device in waiting:
            self._decide(functools.partial(self.trust.fetch_failed, _identity(device), gated, reason, now))
        # A backoff answer repeats a failure that already alerted: record it, do not alert again (an attacker
        # re-announcing a dead URL must not be able to flood the operator).
        loud = result.alert or bool(result.body)
        for device in waiting:
            if device.state == "enforced":
                # A refresh or a URL change failed: the last verified policy stays in force (never widen); a
                # pending change stays pending, so a later successful resolution of the new URL still applies.
                if loud:
                    effects.append(Alert("kept-last", device.mac, device.dpid, device.port, result.url,
                                         f"{reason}: {result.message}"))  # fmt: skip
                continue
            device.reason, device.updated_at = reason, now
            self.store.save_device(device.record())
            if loud:
                effects.append(Alert("quarantined", device.mac, device.dpid, device.port, result.url,
                                     f"{reason}: {result.message}"))  # fmt: skip
        return effects

    def _verified(
        self, waiting: list[Device], gated: MudUrl, prepared: Profile, result: WireResult, now: float
    ) -> list[Effect]:
        effects: list[Effect] = []
        try:
            file_url = check_mud_url(prepared.file_mud_url)
        except UrlRejected:
            file_url = gated  # the validator already refused non-https mud-urls; never a reason to widen
        applies: list[Device] = []
        refused: list[tuple[Device, Decision | None]] = []
        for device in waiting:
            verify = functools.partial(
                self.trust.verified, _identity(device), gated, prepared.sha256, result.signer, file_url, now
            )
            decision = self._decide(verify)
            if decision is not None and decision.verdict is Verdict.APPLY:
                applies.append(device)  # the trust record that allows it is already on disk
            elif decision is None or decision.verdict is not Verdict.IGNORE:
                refused.append((device, decision))
        if applies:
            newly = result.url not in self.profiles or self.profiles[result.url].sha256 != prepared.sha256
            self._register(prepared, result.body)
            self.checked_at[result.url] = now
            if newly and prepared.dns_names:  # bind its names now, before a device's first connection needs them
                effects.append(ResolveNames(tuple(sorted(prepared.dns_names))))
            for device in applies:
                if (device.state, device.url, device.sha256, device.reason) != (
                    "enforced",
                    prepared.url,
                    prepared.sha256,
                    "",
                ):
                    effects += self._enforce(device, prepared, now)
            for dpid in {d.dpid for d in applies}:  # a new version of a shared profile: replace its rules
                effects += self._sync(dpid, [("profile", prepared.profile_id)])
        for device, decision in refused:
            effects += self._refuse(device, decision, result.url, prepared, bool(applies), now)
        if result.alert:
            effects += [Alert(result.outcome.value, d.mac, d.dpid, d.port, result.url,
                              f"{result.reason}: {result.message}") for d in applies]  # fmt: skip
        return effects

    def _refuse(
        self, device: Device, decision: Decision | None, url: str, prepared: Profile, replaced: bool, now: float
    ) -> list[Effect]:
        """The policy refused the verified file for this device: keep its last policy or quarantine it."""
        code = decision.reason_code if decision is not None else "trust-store-failed"
        message = decision.message if decision is not None else "trust state unavailable"
        alert = Alert("update-violation", device.mac, device.dpid, device.port, url, f"{code}: {message}")
        record = self.trust.record(_identity(device))
        on_changed_profile = replaced and device.url == prepared.url  # its shared rules just changed under it
        if decision is not None and record.state is TrustState.TRUSTED and not on_changed_profile:
            if device.reason == f"pending:{url}":
                device.reason = f"refused:{code}"
                self.store.save_device(device.record())
            return [alert]
        device.url, device.sha256, device.state = None, None, "quarantined"
        device.reason, device.updated_at = f"policy:{code}", now
        self.store.save_device(device.record())
        return [*self._sync(device.dpid, [("device", device.mac)], confirms=(device.mac,)), alert]

    def retry_lost(self, now: float) -> list[Effect]:
        """Resolutions asked for more than RESOLVE_TIMEOUT_S ago and never answered are asked again (devices that
        do not re-announce soon, e.g. a DHCP client holding a long lease, would otherwise wait for good)."""
        lost = [url for url, asked in self.resolving.items() if now - asked >= RESOLVE_TIMEOUT_S]
        for url in lost:
            self.resolving[url] = now
        return [ResolveRequest(url) for url in sorted(lost)]

    def sync_device(self, mac: str) -> list[Effect]:
        """Bring one device's flows on its switch in line with its record (after an operator action)."""
        device = self.devices.get(mac)
        if device is None:
            return []
        return self._sync(device.dpid, [("device", mac)], confirms=(mac,))

    def confirmed(self, macs: Iterable[str]) -> None:
        """The switch acknowledged (barrier) the flows of these devices: make their records durable."""
        for mac in macs:
            device = self.devices.get(mac)
            if device is not None:
                self.store.save_device(device.record())


def _identity(device: Device) -> DeviceId:
    return DeviceId(device.dpid, device.port, device.mac)


def _unchanged(previous: Device, device: Device) -> bool:
    """Whether ``device`` is ``previous`` again, up to how and when it was last heard from."""
    return (previous.device_id, previous.dpid, previous.port, previous.url, previous.state, previous.sha256,
            previous.reason) == (device.device_id, device.dpid, device.port, device.url, device.state, device.sha256,
                                 device.reason)  # fmt: skip


@contextlib.contextmanager
def _trust_errors() -> Iterator[None]:
    try:
        yield
    except TrustStoreError as error:
        log.error("trust store failed (%s): %s", error.reason, error.message)


def _wants(device: Device, url: str) -> bool:
    return device.url == url or device.reason == f"pending:{url}"
