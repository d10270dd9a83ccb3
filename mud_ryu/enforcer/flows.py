"""What each switch should hold, per owner, and the diff against what it holds (the enforcer's flow book).

An owner is one unit of flows: the switch's shared flows, one access port's punts, one device, one learned host,
one profile in use on that switch. Events recompute only the owners they touch; per-switch slot refcounts let a
diff tell which deleted slot another owner still holds, without scanning the table. The flows are computed from the
:class:`~mud_ryu.enforcer.network.EnforcerState` (whose indices answer "who is where, who uses which profile") and
the profiles of the :class:`~mud_ryu.enforcer.profiles.ProfileBook`; the book keeps only what each switch holds.
"""

from __future__ import annotations

from collections.abc import Iterable

from mud_ryu.compiler.bootstrap import pipeline_rules
from mud_ryu.compiler.context import DeviceSpec
from mud_ryu.compiler.devflows import device_rules
from mud_ryu.compiler.edgeflows import device_forward_rule, dns_punt_rules, learned_host_rules, punt_rules, switch_rules
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import QUARANTINE_PROFILE_ID
from mud_ryu.compiler.types import CompiledProfile
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.profiles import ProfileBook
from mud_ryu.enforcer.state import SWITCH_OWNER, Device, Effect, FlowUpdate, Owner, Profile, SwitchState, slot
from mud_ryu.guard import floods as floodflows
from mud_ryu.guard import ports as portguard
from mud_ryu.guard import source as sourceguard

FLOOD_OWNER: Owner = ("flood", 0)


class FlowBook:
    """The desired flows per owner of each switch, and the diff against what it holds."""

    def __init__(self, state: EnforcerState, profiles: ProfileBook) -> None:
        self._state = state
        self._profiles = profiles
        self._allowance_cache: dict[int, tuple[CompiledProfile, tuple[floodflows.Allowance, ...]]] = {}
        # What only a trusted port may send (server addresses, DHCP offers, RAs): the same on every switch.
        self._guard = portguard.guard_rules(state.server_addresses, state.settings.dhcp_servers)

    # ---- desired flows per owner
    def _device_flows(self, device: Device) -> frozenset[FlowRule]:
        if device.state == "absent":
            return frozenset()
        state = self._state
        profile = state.profiles.get(device.url or "") if device.state == "enforced" else None
        profile_id, mfg_id = (profile.profile_id, profile.mfg_id) if profile else (QUARANTINE_PROFILE_ID, 0)
        spec = DeviceSpec(device.mac, device.port, device.port, device.device_id)
        rules = device_rules(spec, profile_id, mfg_id)
        metered = state.metered(device.dpid)
        extra = dns_punt_rules(rules, metered) if profile is not None and profile.dns_names else ()
        # Its port's own catch: any other source there is quarantined from its first frame (the learning copy tells
        # the enforcer, which alerts). Shared by every device on the port (slot refcounts).
        welcome = state.hosts_welcome(device.dpid, device.port)
        catch = () if welcome else (portguard.device_port_rule(device.port, metered),)
        bound = sourceguard.binding_rules(device.mac, device.device_id, state.bindings.of(device.mac))
        return frozenset((*rules, *extra, *catch, *bound, device_forward_rule(device.mac, device.port,
                                                                              device.device_id)))  # fmt: skip

    def profile_in_use(self, dpid: int, profile_id: int) -> Profile | None:
        """The profile ``profile_id`` when a device on ``dpid`` uses it (quarantined, or enforced under a file in
        force), else None: two dict look-ups, whatever the number of devices."""
        state = self._state
        if profile_id == QUARANTINE_PROFILE_ID:
            return self._profiles.quarantine if state.in_use((dpid, "quarantined", None)) else None
        url = state.url_of_profile.get(profile_id)
        if url is None or not state.in_use((dpid, "enforced", url)):
            return None
        return state.profiles[url]

    def enforced_profile_id(self, device: Device | None, dpid: int) -> int | None:
        """The id of the profile whose rules ``device``'s flows on ``dpid`` draw on (None: none there)."""
        if device is not None and device.dpid == dpid and device.state == "quarantined":
            return QUARANTINE_PROFILE_ID
        profiles = self._state.profiles
        if device is None or device.dpid != dpid or device.state != "enforced" or device.url not in profiles:
            return None
        return profiles[device.url].profile_id

    def _owner_flows(self, sw: SwitchState, owner: Owner) -> frozenset[FlowRule]:
        """What one owner should hold on one switch now (computed for that owner only: events stay cheap)."""
        kind, key = owner
        if kind == "switch":
            trusted = self._state.trusted_ports(sw.dpid)
            dhcp_servers = self._state.settings.dhcp_servers
            return frozenset((
                *pipeline_rules(dhcp_servers), *switch_rules(sw.metered, trust_unknown=not trusted),
                *self._guard, *(portguard.trusted_port_rule(p, sw.metered) for p in sorted(trusted)),
                *(r for p in sorted(trusted) for r in portguard.lease_punt_rules(p, sw.metered)),
                *sourceguard.shared_rules(sw.metered),
            ))  # fmt: skip
        if kind == "punt":
            assert isinstance(key, int)
            up = key in sw.ports_up and key not in self._state.trusted_ports(sw.dpid)
            return frozenset(punt_rules(key, sw.metered)) if up else frozenset()
        if kind == "device":
            device = self._state.devices.get(str(key))
            return self._device_flows(device) if device is not None and device.dpid == sw.dpid else frozenset()
        if kind == "host":
            port = sw.hosts.get(str(key))
            if port is None:
                return frozenset()
            return frozenset(learned_host_rules(str(key), port, self._state.trusted_ingress(sw.dpid, port)))
        if kind == "flood":
            return frozenset(self._flood_flows(sw))
        if kind == "profile":
            assert isinstance(key, int)
            profile = self.profile_in_use(sw.dpid, key)
            return frozenset(profile.compiled.rules) if profile is not None else frozenset()
        raise ValueError(f"unknown owner {owner!r}")

    def _flood_flows(self, sw: SwitchState) -> tuple[FlowRule, ...]:
        """Where group frames and unknown unicast go on this switch (:mod:`mud_ryu.guard.floods`): the open ports (no
        MUD device, or a shared port), plus, per group allowance of a profile in use here, its devices' ports."""
        state = self._state
        closed = {p for p in state.device_ports(sw.dpid) if not portguard.is_shared(state.settings, sw.dpid, p)}
        allowances: dict[floodflows.Allowance, set[int]] = {}
        for (_, kind, url), ports in state.ports_in_use_on(sw.dpid):
            profile = self._profiles.quarantine if kind == "quarantined" else state.profiles.get(url or "")
            if profile is None:
                continue
            for allowance in self._allowances_of(profile):
                allowances.setdefault(allowance, set()).update(ports)
        return floodflows.flood_rules(sw.ports_up - closed, {a: frozenset(p) for a, p in allowances.items()})

    def _allowances_of(self, profile: Profile) -> tuple[floodflows.Allowance, ...]:
        """A profile's group allowances, computed once per compilation."""
        cached = self._allowance_cache.get(profile.profile_id)
        if cached is not None and cached[0] is profile.compiled:
            return cached[1]
        found = floodflows.group_allowances(profile.compiled.rules)
        self._allowance_cache[profile.profile_id] = (profile.compiled, found)
        return found

    def _all_owners(self, sw: SwitchState) -> set[Owner]:
        owners: set[Owner] = {SWITCH_OWNER, FLOOD_OWNER, *sw.owners}
        owners.update(("punt", port) for port in sw.ports_up)
        owners.update(("host", mac) for mac in sw.hosts)
        profiles = self._state.profiles
        for device in self._state.devices.values():
            if device.dpid == sw.dpid:
                owners.add(("device", device.mac))
                if device.url in profiles:
                    owners.add(("profile", profiles[device.url].profile_id))
                if device.state == "quarantined":
                    owners.add(("profile", QUARANTINE_PROFILE_ID))
        return owners

    def _desired(self, sw: SwitchState) -> dict[Owner, frozenset[FlowRule]]:
        wanted = {owner: self._owner_flows(sw, owner) for owner in self._all_owners(sw)}
        return {owner: flows for owner, flows in wanted.items() if flows}

    def set_owner(self, sw: SwitchState, owner: Owner, flows: frozenset[FlowRule]) -> None:
        for rule in sw.owners.pop(owner, frozenset()):
            key = slot(rule)
            sw.slots[key] -= 1
            if not sw.slots[key]:
                del sw.slots[key]
        if flows:
            sw.owners[owner] = flows
            for rule in flows:
                sw.slots[slot(rule)] = sw.slots.get(slot(rule), 0) + 1

    def sync(self, dpid: int, touched: Iterable[Owner] | None = None, confirms: tuple[str, ...] = ()) -> list[Effect]:
        """Diff the owners (all, or ``touched``) of one switch against what it holds; return the update."""
        touched = None if touched is None else list(touched)
        for owner in touched or ():
            if owner[0] == "device":
                self._state.place(str(owner[1]))
        sw = self._state.switches.get(dpid)
        if sw is None:
            return []
        owners = self._all_owners(sw) if touched is None else set(touched)
        if any(kind in ("device", "punt", "profile") for kind, _ in owners):
            owners.add(FLOOD_OWNER)  # a port or a device's place or profile changed: where floods go may too
        # A device change can start or end the use of a profile on this switch: its old and its new profile. A
        # device that stays on its profile changes neither's use (a new version of a profile is synced as such by
        # whoever put it in force): its rules are not compared again for every device that joins.
        for owner in list(owners):
            if owner[0] == "device":
                mac = str(owner[1])
                device = self._state.devices.get(mac)
                now_pid = self.enforced_profile_id(device, dpid)
                old_pid = sw.device_profile.pop(mac, None)
                if now_pid is not None:
                    sw.device_profile[mac] = now_pid
                if old_pid != now_pid:
                    owners.update(("profile", pid) for pid in (old_pid, now_pid) if pid is not None)
        adds: list[FlowRule] = []
        dels: list[FlowRule] = []
        for owner in owners:
            old = sw.owners.get(owner, frozenset())
            new = self._owner_flows(sw, owner)
            if new == old:
                continue
            new_slots = {slot(r) for r in new}
            adds.extend(r for r in new if r not in old)
            dels.extend(r for r in old if slot(r) not in new_slots)
            self.set_owner(sw, owner, new)
        # A slot another owner still holds is not deleted (the add replaced it in place).
        dels = [r for r in dels if slot(r) not in sw.slots]
        if not adds and not dels and not confirms:
            return []
        return [FlowUpdate(dpid, tuple(adds), tuple(dels), confirms)]

    def sync_profiles(self, profile_ids: Iterable[int]) -> list[Effect]:
        """Send every switch the changed rules of these profiles (recompiled: see
        :meth:`~mud_ryu.enforcer.profiles.ProfileBook.recompile`)."""
        effects: list[Effect] = []
        for profile_id in profile_ids:
            for dpid in list(self._state.switches):
                effects += self.sync(dpid, [("profile", profile_id)])
        return effects

    def reset(self, sw: SwitchState) -> dict[Owner, frozenset[FlowRule]]:
        """Forget what ``sw`` was thought to hold and book what it should hold now (reconciliation: the switch's
        own report then decides what to add and delete); return the owners' flows."""
        wanted = self._desired(sw)
        sw.owners, sw.slots = {}, {}
        for owner, flows in wanted.items():
            self.set_owner(sw, owner, flows)
        devices = self._state.devices.values()
        sw.device_profile = {d.mac: pid for d in devices if (pid := self.enforced_profile_id(d, sw.dpid)) is not None}
        return wanted
