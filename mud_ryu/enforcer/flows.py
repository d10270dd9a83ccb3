"""What each switch should hold, per owner, and the diff against what it holds (the enforcer's flow book).

An owner is one unit of flows: the switch's shared flows, one access port's punts, one device, one learned host,
one profile in use on that switch. Events recompute only the owners they touch; per-switch slot refcounts let a
diff tell which deleted slot another owner still holds, without scanning the table. Likewise an index of which
devices use which profile on which switch answers "is this profile still in use here?" without scanning the devices,
and the id maps a compilation needs are kept in memory rather than read from SQLite on every (re)compile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

from mud_ryu.compiler.bootstrap import pipeline_rules
from mud_ryu.compiler.compile import compile_profile, quarantine_profile, recompile_sets
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, DeviceSpec, NetworkContext, url_authority
from mud_ryu.compiler.devflows import device_rules
from mud_ryu.compiler.edgeflows import device_forward_rule, dns_punt_rules, learned_host_rules, punt_rules, switch_rules
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import QUARANTINE_PROFILE_ID
from mud_ryu.compiler.types import CompiledProfile, CompileError
from mud_ryu.dns.bind import DnsBindings, DnsBindSettings, normalize_name
from mud_ryu.enforcer import my_controller
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.enforcer.state import SWITCH_OWNER, Device, Effect, FlowUpdate, Owner, Profile, SwitchState, slot
from mud_ryu.fetch.urlgate import UrlRejected, check_mud_url
from mud_ryu.guard import floods as floodflows
from mud_ryu.guard import ports as portguard
from mud_ryu.guard import source as sourceguard
from mud_ryu.guard.bindings import AddressBindings
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import MudFile
from mud_ryu.settings import MudSettings

log = logging.getLogger(__name__)
FLOOD_OWNER: Owner = ("flood", 0)

# Where a device's flows draw on a profile: (dpid, "quarantined", None) or (dpid, "enforced", its URL).
Placement = tuple[int, str, str | None]


class FlowBook:
    """The state the flows are computed from, and the per-owner diff. :class:`~mud_ryu.enforcer.core.Enforcer` adds
    the events."""

    def __init__(self, settings: MudSettings, store: DeviceStore) -> None:
        self.settings = settings
        self.store = store
        self.switches: dict[int, SwitchState] = {}
        self.devices: dict[str, Device] = {r.mac: Device.from_record(r) for r in store.devices()}
        self.profiles: dict[str, Profile] = {}  # by URL: the file in force for that URL
        # DNS names of the profiles in force, bound to addresses from the answers the configured resolvers give.
        self.dns = DnsBindings(
            DnsBindSettings(
                resolvers=frozenset(settings.dns_servers),
                ttl_floor_s=settings.dns_ttl_floor,
                ttl_ceiling_s=settings.dns_ttl_ceiling,
                max_addresses_per_name=settings.dns_max_addresses,
            )
        )
        # The operator's my-controller entries (durable in the store; read once, then kept in step with it).
        self._my_controller: dict[str, tuple[str, ...]] = store.my_controllers()
        # The store's id maps, read once and kept in step by :meth:`_profile_id` / :meth:`_manufacturer_id` (ids are
        # never reallocated or freed). Replaced, never mutated: a context handed out keeps the maps it was given.
        self._profile_ids: dict[str, int] = store.profile_ids()
        self._manufacturer_ids: dict[str, int] = store.manufacturer_ids()
        # Which devices draw on which profile where (see :meth:`_place`), and the URL of each profile id in force.
        self._placement: dict[str, Placement] = {}
        self._users: dict[Placement, set[str]] = {}
        self._url_of_profile: dict[int, str] = {}
        self._trusted = portguard.trusted_by_switch(settings)  # dpid -> its uplinks and server ports
        # The IP source guard's bindings: which addresses each managed device may send from (first come).
        servers = portguard.server_addresses(settings)
        self.bindings = AddressBindings(servers=frozenset(servers))
        self._reindex()
        self._allowance_cache: dict[int, tuple[CompiledProfile, tuple[floodflows.Allowance, ...]]] = {}
        # What only a trusted port may send (server addresses, DHCP offers, RAs): the same on every switch.
        self._guard = portguard.guard_rules(servers, settings.dhcp_servers)
        # Quarantined devices share one profile: the RFC 8520 local DNS/NTP defaults (DHCP/ARP/ND: bootstrap band).
        self._quarantine = Profile("", "", QUARANTINE_PROFILE_ID, 0, quarantine_profile(self._context()))

    # ---- context and profiles
    def _context(self, mud_urls: Iterable[str] = ()) -> NetworkContext:
        """The network's values for compiling ``mud_urls`` (the files' own mud-urls: my-controller is looked up by
        them, as each file writes it; a URL not given expands to nothing)."""
        controllers = dict(self.settings.controllers)
        if self.settings.dns_servers:
            controllers.setdefault(DNS_CONTROLLER_URN, self.settings.dns_servers)
        if self.settings.ntp_servers:
            controllers.setdefault(NTP_CONTROLLER_URN, self.settings.ntp_servers)
        return NetworkContext(
            dns=self.dns.current(),
            controllers=controllers,
            my_controller=my_controller.view(
                mud_urls, self.settings.my_controller, self.settings.my_controller_by_url, self._my_controller
            ),
            local_networks=self.settings.local_networks,
            profile_ids=self._profile_ids,
            manufacturer_ids=self._manufacturer_ids,
        )

    def _prepare_profile(self, url: str, sha256: str, body: bytes) -> Profile | str:
        """Parse and compile a verified file (not yet in force); return it or a failure reason."""
        current = self.profiles.get(url)
        if current is not None and current.sha256 == sha256:
            return current
        try:
            parsed = mudfile.parse(body)
        except MudFileError as error:
            return f"mud:{error.finding.reason}"
        try:
            # The file's own mud-url, through the same gate as every announced URL. A file whose mud-url fails it
            # is invalid: substituting the fetched URL would hide a mismatch the update policy must see.
            canonical = check_mud_url(parsed.mud.mud_url).url
        except UrlRejected:
            return "mud:bad-mud-url"
        # One canonical URL decides the device's manufacturer (its classification and same-manufacturer alike),
        # its model and its my-controller: the raw string never reaches the compiler.
        mud = dataclasses.replace(parsed.mud, mud_url=canonical)
        profile_id = self._profile_id(url)
        mfg_id = self._manufacturer_id(url_authority(canonical))
        self._allocate_referenced_ids(mud)
        try:
            compiled = compile_profile(mud, self._context((canonical,)), profile_id)
        except CompileError as error:
            return f"compile:{error.reason}"
        names = _dns_names(mud)
        return Profile(url, sha256, profile_id, mfg_id, compiled, canonical, names, mud)

    def _allocate_referenced_ids(self, mud: MudFile) -> None:
        """Give every manufacturer and model an ACE names an id now, even with no such device yet: the ACE then
        compiles to a metadata match, and a device of that manufacturer or model joins it live when it is
        classified -- no recompilation when devices come and go (RFC 8520 s8 abstractions)."""
        for acl in (*mud.from_device, *mud.to_device):
            for ace in acl.aces:
                match = ace.matches.mud
                if match is None:
                    continue
                if match.manufacturer:
                    self._manufacturer_id(match.manufacturer)
                if match.model:
                    self._profile_id(match.model)

    def _profile_id(self, url: str) -> int:
        """The store's durable id for ``url`` (allocated on first use), through the in-memory map."""
        known = self._profile_ids.get(url)
        if known is None:
            known = self.store.profile_id(url)
            self._profile_ids = {**self._profile_ids, url: known}
        return known

    def _manufacturer_id(self, authority: str) -> int:
        key = authority.lower()  # the store's key: authorities compare case-insensitively
        known = self._manufacturer_ids.get(key)
        if known is None:
            known = self.store.manufacturer_id(key)
            self._manufacturer_ids = {**self._manufacturer_ids, key: known}
        return known

    def _recompile(self, selected: Callable[[Profile], bool], changed: frozenset[str], why: str) -> list[Effect]:
        """Re-expand, in the profiles in force that ``selected`` picks, only the ACEs using the address sets named in
        ``changed`` (``dns:<name>``, ``my-controller``; the compiler's set keys) and send each switch only the flows
        that differ -- adds, barrier, deletes (make-before-break). The profile's other rules are reused as compiled
        (``recompile_sets``). A profile that no longer compiles keeps its flows: never a widening, and the log says
        why."""
        effects: list[Effect] = []
        chosen = [(url, p, p.mud) for url, p in self.profiles.items() if p.mud is not None and selected(p)]
        context = self._context(mud.mud_url for _, _, mud in chosen)
        for url, profile, mud in chosen:
            try:
                compiled = recompile_sets(profile.compiled, mud, context, changed)
            except CompileError as error:
                log.error("recompiling %s for %s failed (%s): keeping its flows", url, why, error.reason)
                continue
            self.profiles[url] = dataclasses.replace(profile, compiled=compiled)
            for dpid in list(self.switches):
                effects += self.sync(dpid, [("profile", profile.profile_id)])
        return effects

    def recompile_for_dns(self, names: frozenset[str]) -> list[Effect]:
        """Address sets changed for ``names`` (binding keys: lower case, no trailing dot): recompile the profiles
        using them. A file may spell a name otherwise (``example.com.``); its ACEs' set keys are its spellings."""
        spellings = {s for p in self.profiles.values() for s in p.dns_names if normalize_name(s) in names}
        changed = frozenset(f"dns:{name}" for name in names | spellings)
        return self._recompile(lambda profile: bool(profile.dns_names & spellings), changed, "new DNS bindings")

    # ---- the operator's my-controller entries
    def my_controller_entries(self) -> list[my_controller.MyControllerEntry]:
        """Every per-URL my-controller entry, sorted by URL (an operator entry wins over the settings')."""
        return my_controller.entries(self.settings.my_controller_by_url, self._my_controller)

    def set_my_controller(self, url: str, addresses: Iterable[str] | None) -> list[Effect]:
        """Set (``addresses``) or clear (None: back to the settings) the operator's my-controller entry for a MUD
        URL, durably, then recompile the profiles in force for that URL whose file uses my-controller. Raises
        :class:`~mud_ryu.enforcer.my_controller.MyControllerRefused` (``bad-url:*``, ``bad-field``, ``bad-address``,
        ``too-broad``, ``unknown-entry``) before anything changes, or StoreError."""
        if addresses is None:
            canonical = my_controller.canonical_url(url)
            if not self.store.clear_my_controller(canonical):
                raise my_controller.MyControllerRefused("unknown-entry", f"no operator entry for {canonical}")
            self._my_controller.pop(canonical, None)
        else:
            canonical, entry = my_controller.check_entry(url, list(addresses))
            self.store.set_my_controller(canonical, entry)
            self._my_controller[canonical] = entry

        def selected(profile: Profile) -> bool:
            assert profile.mud is not None  # _recompile skips profiles without their file
            own = {profile.url, my_controller.canonical_url_or_none(profile.file_mud_url or profile.mud.mud_url)}
            return canonical in own and my_controller.uses_my_controller(profile.mud)

        return self._recompile(selected, frozenset({"my-controller"}), f"my-controller of {canonical}")

    def _register(self, profile: Profile, body: bytes) -> None:
        """Put a prepared file in force for its URL (its bytes kept so a restart compiles the same flows)."""
        self.store.save_body(profile.sha256, body)
        self.profiles[profile.url] = profile
        self._url_of_profile[profile.profile_id] = profile.url
        self.dns.watch(profile.url, profile.dns_names)

    def _install_profile(self, url: str, sha256: str, body: bytes) -> Profile | str:
        prepared = self._prepare_profile(url, sha256, body)
        if isinstance(prepared, Profile):
            self._register(prepared, body)
        return prepared

    # ---- desired flows per owner
    def _device_flows(self, device: Device) -> frozenset[FlowRule]:
        if device.state == "absent":
            return frozenset()
        profile = self.profiles.get(device.url or "") if device.state == "enforced" else None
        profile_id, mfg_id = (profile.profile_id, profile.mfg_id) if profile else (QUARANTINE_PROFILE_ID, 0)
        spec = DeviceSpec(device.mac, device.port, device.port, device.device_id)
        rules = device_rules(spec, profile_id, mfg_id)
        metered = self._metered(device.dpid)
        extra = dns_punt_rules(rules, metered) if profile is not None and profile.dns_names else ()
        # Its port's own catch: any other source there is quarantined from its first frame (the learning copy tells
        # the enforcer, which alerts). Shared by every device on the port (slot refcounts).
        welcome = self.hosts_welcome(device.dpid, device.port)
        catch = () if welcome else (portguard.device_port_rule(device.port, metered),)
        bound = sourceguard.binding_rules(device.mac, device.device_id, self.bindings.of(device.mac))
        return frozenset((*rules, *extra, *catch, *bound, device_forward_rule(device.mac, device.port,
                                                                              device.device_id)))  # fmt: skip

    def hosts_welcome(self, dpid: int, port: int) -> bool:
        """Ports where other hosts beside a MUD device are ordinary: shared, server and uplink ports."""
        return (portguard.is_shared(self.settings, dpid, port) or (dpid, port) in self.settings.server_ports
                or (dpid, port) in self.settings.uplink_ports)  # fmt: skip

    def _metered(self, dpid: int) -> bool:
        sw = self.switches.get(dpid)
        return sw is not None and sw.metered

    # ---- who uses which profile where
    def _place(self, mac: str) -> None:
        """Bring the use index in line with ``mac``'s device. Called for every device an owner sync touches, before
        anything else (so also for a switch that is not connected), which covers every change of a device's switch,
        state or URL: each is followed by a sync of that device, here and in the operator actions."""
        self._place_port(mac)
        key = _placement(self.devices.get(mac))
        old = self._placement.get(mac)
        if old == key:
            return
        if old is not None:
            users = self._users[old]
            users.discard(mac)
            if not users:
                del self._users[old]
        if key is None:
            del self._placement[mac]
        else:
            self._placement[mac] = key
            self._users.setdefault(key, set()).add(mac)

    def _place_port(self, mac: str) -> None:
        """The port index: which devices (not absent) are at each (switch, port)."""
        device = self.devices.get(mac)
        key = (device.dpid, device.port) if device is not None and device.state != "absent" else None
        old = self._port_of.get(mac)
        if old == key:
            return
        if old is not None:
            self.bindings.release(mac)  # it left its place (absent, moved): its claimed addresses are free again
            here = self._at_port[old]
            here.discard(mac)
            if not here:
                del self._at_port[old]
        if key is None:
            self._port_of.pop(mac, None)
        else:
            self._port_of[mac] = key
            self._at_port.setdefault(key, set()).add(mac)

    def trusted_ports(self, dpid: int) -> frozenset[int]:
        """The uplinks and server ports of ``dpid`` (:mod:`mud_ryu.guard.ports`)."""
        return self._trusted.get(dpid, frozenset())

    def devices_at(self, dpid: int, port: int) -> frozenset[str]:
        """The MACs of the devices (not absent) whose place is (dpid, port)."""
        return frozenset(self._at_port.get((dpid, port), ()))

    def trusted_ingress(self, dpid: int, port: int) -> bool:
        """Whether frames from (dpid, port) may speak for a server (:mod:`mud_ryu.guard.ports`): a trusted port, or on a
        switch without configured trusted ports, any port that is no MUD device's place and not a shared port (hosts
        learned on a port before a device arrives there are quarantined with it: see the admission path)."""
        trusted = self.trusted_ports(dpid)
        if trusted:
            return port in trusted
        return (dpid, port) not in self._at_port and not portguard.is_shared(self.settings, dpid, port)

    def _reindex(self) -> None:
        """Rebuild the use index from the devices (start, reconnect: also drops devices removed from the map)."""
        self._placement, self._users = {}, {}
        self._port_of: dict[str, tuple[int, int]] = {}
        self._at_port: dict[tuple[int, int], set[str]] = {}
        for mac in self.devices:
            self._place(mac)

    def _profile_in_use(self, dpid: int, profile_id: int) -> Profile | None:
        """The profile ``profile_id`` when a device on ``dpid`` uses it (quarantined, or enforced under a file in
        force), else None: two dict look-ups, whatever the number of devices."""
        if profile_id == QUARANTINE_PROFILE_ID:
            return self._quarantine if (dpid, "quarantined", None) in self._users else None
        url = self._url_of_profile.get(profile_id)
        if url is None or (dpid, "enforced", url) not in self._users:
            return None
        return self.profiles[url]

    def _enforced_profile_id(self, device: Device | None, dpid: int) -> int | None:
        if device is not None and device.dpid == dpid and device.state == "quarantined":
            return QUARANTINE_PROFILE_ID
        if device is None or device.dpid != dpid or device.state != "enforced" or device.url not in self.profiles:
            return None
        return self.profiles[device.url].profile_id

    def _owner_flows(self, sw: SwitchState, owner: Owner) -> frozenset[FlowRule]:
        """What one owner should hold on one switch now (computed for that owner only: events stay cheap)."""
        kind, key = owner
        if kind == "switch":
            trusted = self.trusted_ports(sw.dpid)
            return frozenset((
                *pipeline_rules(self.settings.dhcp_servers), *switch_rules(sw.metered, trust_unknown=not trusted),
                *self._guard, *(portguard.trusted_port_rule(p, sw.metered) for p in sorted(trusted)),
                *(r for p in sorted(trusted) for r in portguard.lease_punt_rules(p, sw.metered)),
                *sourceguard.shared_rules(sw.metered),
            ))  # fmt: skip
        if kind == "punt":
            assert isinstance(key, int)
            up = key in sw.ports_up and key not in self.trusted_ports(sw.dpid)
            return frozenset(punt_rules(key, sw.metered)) if up else frozenset()
        if kind == "device":
            device = self.devices.get(str(key))
            return self._device_flows(device) if device is not None and device.dpid == sw.dpid else frozenset()
        if kind == "host":
            port = sw.hosts.get(str(key))
            if port is None:
                return frozenset()
            return frozenset(learned_host_rules(str(key), port, self.trusted_ingress(sw.dpid, port)))
        if kind == "flood":
            return frozenset(self._flood_flows(sw))
        if kind == "profile":
            assert isinstance(key, int)
            profile = self._profile_in_use(sw.dpid, key)
            return frozenset(profile.compiled.rules) if profile is not None else frozenset()
        raise ValueError(f"unknown owner {owner!r}")

    def _flood_flows(self, sw: SwitchState) -> tuple[FlowRule, ...]:
        """Where group frames and unknown unicast go on this switch (:mod:`mud_ryu.guard.floods`): the open ports (no
        MUD device, or a shared port), plus, per group allowance of a profile in use here, its devices' ports."""
        closed = {p for d, p in self._at_port if d == sw.dpid and not portguard.is_shared(self.settings, d, p)}
        allowances: dict[floodflows.Allowance, set[int]] = {}
        for (dpid, state, url), users in self._users.items():
            if dpid != sw.dpid:
                continue
            profile = self._quarantine if state == "quarantined" else self.profiles.get(url or "")
            if profile is None:
                continue
            ports = {self.devices[mac].port for mac in users}
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
        for device in self.devices.values():
            if device.dpid == sw.dpid:
                owners.add(("device", device.mac))
                if device.url in self.profiles:
                    owners.add(("profile", self.profiles[device.url].profile_id))
                if device.state == "quarantined":
                    owners.add(("profile", QUARANTINE_PROFILE_ID))
        return owners

    def _desired(self, sw: SwitchState) -> dict[Owner, frozenset[FlowRule]]:
        wanted = {owner: self._owner_flows(sw, owner) for owner in self._all_owners(sw)}
        return {owner: flows for owner, flows in wanted.items() if flows}

    def _set_owner(self, sw: SwitchState, owner: Owner, flows: frozenset[FlowRule]) -> None:
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
                self._place(str(owner[1]))
        sw = self.switches.get(dpid)
        if sw is None:
            return []
        owners = self._all_owners(sw) if touched is None else set(touched)
        if any(kind in ("device", "punt", "profile") for kind, _ in owners):
            owners.add(FLOOD_OWNER)  # a port or a device's place or profile changed: where floods go may too
        # A device change can start or end the use of a profile on this switch: its old and its new profile.
        for owner in list(owners):
            if owner[0] == "device":
                mac = str(owner[1])
                device = self.devices.get(mac)
                now_pid = self._enforced_profile_id(device, dpid)
                old_pid = sw.device_profile.pop(mac, None)
                if now_pid is not None:
                    sw.device_profile[mac] = now_pid
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
            self._set_owner(sw, owner, new)
        # A slot another owner still holds is not deleted (the add replaced it in place).
        dels = [r for r in dels if slot(r) not in sw.slots]
        if not adds and not dels and not confirms:
            return []
        return [FlowUpdate(dpid, tuple(adds), tuple(dels), confirms)]


def _placement(device: Device | None) -> Placement | None:
    if device is None or device.state == "absent":
        return None
    if device.state == "quarantined":
        return (device.dpid, "quarantined", None)
    if device.state == "enforced" and device.url is not None:
        return (device.dpid, "enforced", device.url)
    return None


def _dns_names(mud: MudFile) -> frozenset[str]:
    names: set[str] = set()
    for acl in (*mud.from_device, *mud.to_device):
        for ace in acl.aces:
            for ip in (ace.matches.ipv4, ace.matches.ipv6):
                if ip is not None:
                    names.update(n for n in (ip.src_dnsname, ip.dst_dnsname) if n)
    return frozenset(names)
