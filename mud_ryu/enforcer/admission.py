"""The enforcer's announcement/admission path: punted discovery frames, learned hosts, and binding a device.

An announcement is gated (its URL string), checked against where the device already is (a spoof is alerted and
ignored), run through the update policy with the device's trust record, and the device is admitted: classified at
once -- under the quarantine profile until its file is verified, or under the file in force when its trust already
accepted exactly that file -- and its URL is sent for resolution when it needs one. A renewal that changes nothing
writes nothing (no device-row fsync, no barrier to confirm).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from mud_ryu.discovery.scan import Announcement, Malformed, NoUrl
from mud_ryu.enforcer.flows import FlowBook
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.resolution import Resolution
from mud_ryu.enforcer.state import Alert, Device, Effect, SwitchState
from mud_ryu.fetch.refresh import AGED_SIGNATURE_REASONS
from mud_ryu.fetch.urlgate import UrlRejected
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStoreError
from mud_ryu.policy.table import Outcome
from mud_ryu.policy.types import DeviceId, Pending, TrustRecord, TrustState, Verdict
from mud_ryu.settings import DefaultPolicy

log = logging.getLogger(__name__)
DHCPRELEASE = 7
NEW_MAC_REASON = "new-mac-on-device-port"
PENDING_RATE_LIMITED = "pending-rate-limited"  # the policy's reason and the alert's code
REVIEWED = frozenset({"needs-approval", "approved"})  # pending changes an operator reviews or decided on
MAX_NEW_MACS_PER_PORT = 4  # a quarantined host: a new source MAC on a MUD device's access port


class Admission:
    """Discovery frames and learned sources in, devices bound. Owned by :class:`~mud_ryu.enforcer.core.Enforcer`,
    which hands it each punted discovery frame and learning copy; a device admitted on a URL is sent on to the
    :class:`~mud_ryu.enforcer.resolution.Resolution`."""

    def __init__(self, state: EnforcerState, flows: FlowBook, resolution: Resolution, trust: TrustGate) -> None:
        self._state = state
        self._flows = flows
        self._resolution = resolution
        self._trust = trust

    def discovered(self, dpid: int, port: int, scanned: object, now: float) -> list[Effect]:
        """A punted DHCP/DHCPv6/LLDP frame, scanned by :func:`mud_ryu.discovery.scan.scan_frame`."""
        if dpid not in self._state.switches:
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

    def learned(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        """A frame from a source the switch did not know (the learning copy), or a client without a URL."""
        sw = self._state.switches.get(dpid)
        if sw is None:
            return []
        if int(mac[:2], 16) & 1:
            return []
        device = self._state.devices.get(mac)
        if device is not None and device.state != "absent":
            if device.dpid == dpid or not self._state.uplink(dpid, port):
                # Managed here: its own flows classify it (a wrong port is the anti-spoof flow's business). Managed
                # on another switch but seen on an access port here: never learn it as an unmanaged host.
                return []
            # A device of another switch arriving over an uplink: forwarding only, its policy ran at its own switch.
        elif self._host_elsewhere(sw, port, mac):
            # A source learned on another port that is still up (the router behind the uplink, a server) now seen
            # here: taking it over would send its traffic to this port. Refused; its own flows stay where they are.
            return [Alert("spoofed-source", mac, dpid, port, "", f"{mac} is a host on port {sw.hosts[mac]}: not moved")]
        elif device is not None and not self._state.server_side(dpid, port):
            return self._returned(device, dpid, port, now)
        elif self._beside_a_device(dpid, port, mac):
            return self._new_mac_beside_device(dpid, port, mac, now)
        elif self._bootstrap_only_by_default() and not self._state.server_side(dpid, port):
            return self._admit(dpid, port, mac, None, "learned", now)
        if sw.hosts.get(mac) == port:
            return []
        sw.hosts[mac] = port
        return self._flows.sync(dpid, [("host", mac)])

    def _bootstrap_only_by_default(self) -> bool:
        return self._state.settings.default_policy is DefaultPolicy.BOOTSTRAP_ONLY

    def _returned(self, device: Device, dpid: int, port: int, now: float) -> list[Effect]:
        """A known MUD device, absent (released, its link flapped, or moved), sending before it announces again:
        never an unmanaged host, or its policy would be left behind. Bootstrap only until it announces; at a new
        place only once the old one is vacated (its trust moves with it, as for an announcement), else a spoof."""
        mac = device.mac
        if (device.dpid, device.port) != (dpid, port):
            if not self._vacated(device):
                why = f"{mac} is a MUD device at dpid {device.dpid:016x} port {device.port}: not moved"
                return [Alert("spoofed-source", mac, dpid, port, "", why)]
            with _trust_errors():
                self._trust.moved(DeviceId(device.dpid, device.port, mac), DeviceId(dpid, port, mac))
        return self._admit(dpid, port, mac, None, "learned", now, reason="returned-unannounced")

    def _host_elsewhere(self, sw: SwitchState, port: int, mac: str) -> bool:
        """``mac`` is a learned host on another port of this switch that is still up."""
        there = sw.hosts.get(mac)
        return there is not None and there != port and there in sw.ports_up

    def _beside_a_device(self, dpid: int, port: int, mac: str) -> bool:
        """Whether ``mac`` is a new source on an access port that is a MUD device's place (and not a shared port):
        a device that changes its source MAC must not leave its policy behind (README "What a device on the LAN
        cannot do")."""
        return not self._state.hosts_welcome(dpid, port) and bool(self._state.devices_at(dpid, port) - {mac})

    def _new_mac_beside_device(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        """Bootstrap only (quarantined, no URL) until it announces a URL of its own; the operator is told. At most
        MAX_NEW_MACS_PER_PORT are recorded per port: beyond, a MAC flood gets alerts only (the port's catch flow
        already holds every unknown source there to bootstrap, with no state at the controller)."""
        here = [m for m in self._state.devices_at(dpid, port) if self._state.devices[m].reason == NEW_MAC_REASON]
        if len(here) >= MAX_NEW_MACS_PER_PORT:
            return [Alert("new-mac-flood", mac, dpid, port, "",
                          f"more than {MAX_NEW_MACS_PER_PORT} new source MACs on this port: not recorded")]  # fmt: skip
        effects = self._admit(dpid, port, mac, None, "learned", now, reason=NEW_MAC_REASON)
        others = ", ".join(sorted(self._state.devices_at(dpid, port) - {mac}))
        message = (f"a new source MAC on the port of MUD device {others}: bootstrap only until it announces a URL of "
                   "its own (shared_ports names ports that carry many hosts)")  # fmt: skip
        return [*effects, Alert(NEW_MAC_REASON, mac, dpid, port, "", message)]

    def _demote_hosts(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        """A device was just placed at (dpid, port): hosts learned there before it (a device that sent from a second
        MAC before announcing with its first) lose their unmanaged access as well."""
        sw = self._state.switches[dpid]
        effects: list[Effect] = []
        for other in sorted(m for m, p in sw.hosts.items() if p == port and m != mac):
            effects += self._new_mac_beside_device(dpid, port, other, now)
        return effects

    def _vacated(self, device: Device) -> bool:
        """Whether ``device`` gave up its place, so its identity may appear elsewhere (a move): its port went down
        (seen by the switch, also before a disconnect), or its switch is connected and the port is down now. A
        DHCPRELEASE with the port still up, or a switch that is not connected, keeps the place: anything announcing
        the MAC elsewhere then is a spoof. The operator moves a device by forgetting it."""
        if device.state == "absent" and device.reason == "port-down":
            return True
        home = self._state.switches.get(device.dpid)
        return home is not None and device.port not in home.ports_up

    def learnable(self, dpid: int, port: int, mac: str) -> bool:
        """Whether ``mac`` may hold learned-host flows at (dpid, port): not a device managed on this switch, and
        a device managed elsewhere only through an uplink."""
        device = self._state.devices.get(mac)
        if device is None or device.state == "absent":
            return True
        return device.dpid != dpid and self._state.uplink(dpid, port)

    def _release(self, dpid: int, port: int, mac: str, now: float) -> list[Effect]:
        device = self._state.devices.get(mac)
        if device is None or (device.dpid, device.port) != (dpid, port):
            return []
        device.state, device.reason, device.updated_at = "absent", "dhcp-release", now
        return self._flows.sync(dpid, [("device", mac)], confirms=(mac,))

    def _announcement(self, dpid: int, port: int, ann: Announcement, now: float) -> list[Effect]:
        mac = ann.src_mac
        if self._state.uplink(dpid, port) or (dpid, port) in self._state.settings.server_ports:
            return []  # relayed from another switch (the access switch handles it), or a server port: no devices
        if ann.relay_hops:
            # A Relay-Forward is a relay agent's message; on an access port it is a device speaking for others.
            why = "dhcpv6-relayed-on-access-port: a Relay-Forward from an access port is not an announcement"
            return [Alert("malformed-announcement", mac, dpid, port, ann.url[:255], why)]
        device = self._state.devices.get(mac)
        sw = self._state.switches[dpid]
        if device is None and self._host_elsewhere(sw, port, mac):
            return [Alert("spoofed-announcement", mac, dpid, port, ann.url[:255],
                          f"{mac} is a host on port {sw.hosts[mac]}; not rebinding")]  # fmt: skip
        if device is not None and (device.dpid, device.port) != (dpid, port) and not self._vacated(device):
            # Its place is still its own (port up, or its switch away): not a move. Never silently rebind (THREATS.md
            # row 1): the trust record and the policy stay where they are.
            return [Alert("spoofed-announcement", mac, dpid, port, ann.url[:255],
                          f"{mac} is at dpid {device.dpid:016x} port {device.port}; not rebinding")]  # fmt: skip
        try:
            gated = self._resolution.url_gate.check(ann.url)
        except UrlRejected as rejected:
            effects = self._admit(dpid, port, mac, None, ann.protocol, now, reason=f"url:{rejected.reason}")
            return [*effects, Alert("bad-url", mac, dpid, port, ann.url[:255], rejected.message)]
        identity = DeviceId(dpid, port, mac)
        if device is not None and device.state == "absent" and (device.dpid, device.port) != (dpid, port):
            # A move after a port-down or release: the device's trust (pin, history) moves with it, explicitly.
            with _trust_errors():
                if self._trust.moved(DeviceId(device.dpid, device.port, mac), identity):
                    log.info("trust of %s moved from dpid %016x port %d to dpid %016x port %d", mac, device.dpid,
                             device.port, dpid, port)  # fmt: skip
        try:
            # One read of the trust record per announcement: the outcome carries the record now in force, and the
            # pending change it started from.
            outcome = self._trust.announce(identity, gated, now)
        except TrustStoreError as error:
            log.error("trust store failed (%s): %s", error.reason, error.message)
            return self._fail_closed(dpid, port, mac, ann.protocol, gated.url, now)
        before = outcome.before
        if outcome.decision.reason_code == PENDING_RATE_LIMITED:
            return self._pending_kept(identity, gated.url, ann.protocol, before, now)
        effects = self._after_announcement(identity, gated.url, ann.protocol, outcome, now)
        after = outcome.record.pending
        if before is not None and before.status in REVIEWED and after is not None and after.url != before.url:
            # What the operator was looking at (or had approved) is gone: they must know before they approve anything.
            effects.append(Alert("pending-replaced", mac, dpid, port, after.url[:255],
                                 f"{before.url[:255]} ({before.status}) replaced by {after.url[:255]}"))  # fmt: skip
        return effects

    def _pending_kept(self, identity: DeviceId, url: str, via: str, kept: Pending | None, now: float) -> list[Effect]:
        """A replacement of the pending change inside ``min_pending_interval``: refused, the device stays as the kept
        change leaves it (quarantined; an approved change's reason ``pending:<url>``, so its fetch still applies) and
        the operator is told which URL was kept."""
        dpid, port, mac = identity.dpid, identity.port, identity.mac
        if kept is None:  # the policy rate-limits replacements only: there is one
            reason = f"policy:{PENDING_RATE_LIMITED}"
        else:
            reason = f"pending:{kept.url}" if kept.status == "approved" else f"policy:{kept.reason}"
        effects = self._admit(dpid, port, mac, None, via, now, reason=reason)
        shown = "?" if kept is None else f"{kept.url[:255]} ({kept.status})"
        message = f"{PENDING_RATE_LIMITED}: {url[:255]} not taken; the pending change stays {shown}"
        return [*effects, Alert(PENDING_RATE_LIMITED, mac, dpid, port, url[:255], message)]

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
        sw = self._state.switches[dpid]
        previous = self._state.devices.get(mac)
        if mac in sw.hosts:
            del sw.hosts[mac]
            effects += self._flows.sync(dpid, [("host", mac)])
        if previous is not None and previous.dpid != dpid and previous.dpid in self._state.switches:
            old_dpid = previous.dpid
            previous.state = "absent"
            effects += self._flows.sync(old_dpid, [("device", mac)])  # the old location is cleaned
        device_id = previous.device_id if previous else self._state.store.device_id(mac)
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
            effects += self._flows.sync(dpid, [("device", mac)])
        else:
            self._state.devices[mac] = device
            self._state.store.save_device(device.record())
            effects += self._flows.sync(dpid, [("device", mac)], confirms=(mac,))
        if device.reason != NEW_MAC_REASON and not self._state.hosts_welcome(dpid, port):
            effects += self._demote_hosts(dpid, port, mac, now)
        if url is None:
            return effects  # quarantined for good (no URL, or a refused one: the caller alerts)
        profile = self._state.profiles.get(url)
        if record is None:
            record = self._trust.record(DeviceId(dpid, port, mac))
        known = profile is not None and (record.current_url, record.current_sha256) == (url, profile.sha256)
        # A file whose signer aged is never enforced from memory: only the worker's next valid answer restores it
        # (a device quarantined for it must not be re-enforced by announcing again, nor after a restart).
        aged = self._resolution.aged(url) or (previous is not None and previous.reason in AGED_SIGNATURE_REASONS)
        known = known and not aged
        if profile is not None and known and not keep_policy:
            # This device's trust already accepted exactly this file: enforce now, no round trip to the worker.
            effects += self._resolution.enforce(device, profile, now)
        return [*effects, *self._resolution.request(device, url, known, now)]


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
