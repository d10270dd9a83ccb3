"""What the enforcer knows of the network: the one state object its collaborators share.

The switches and their ports, the devices (from the device store at start, then kept by the events), the profiles
in force by URL, the DNS and address bindings, the durable id maps and the operator's my-controller entries -- and
the indices over them that keep events cheap: which devices are at which (switch, port), and which devices draw on
which profile where, so "is this profile still in use here?" is two dict look-ups whatever the number of devices.
The port roles (trusted, shared, welcoming other hosts) are answered here too, as they read the settings and the
port index together.

Nothing here computes flows or talks to the trust store: :class:`~mud_ryu.enforcer.flows.FlowBook` turns this state
into flows, and the event collaborators change it.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from mud_ryu.dns.bind import DnsBindings, DnsBindSettings
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.enforcer.state import Device, Profile, SwitchState
from mud_ryu.guard import ports as portguard
from mud_ryu.guard.bindings import AddressBindings
from mud_ryu.settings import MudSettings

# Where a device's flows draw on a profile: (dpid, "quarantined", None) or (dpid, "enforced", its URL).
Placement = tuple[int, str, str | None]
PENDING = "pending:"  # a device's reason while a change of its URL waits for the new file


class EnforcerState:
    """The enforcer's state, owned by :class:`~mud_ryu.enforcer.core.Enforcer` and handed to each collaborator."""

    def __init__(self, settings: MudSettings, store: DeviceStore) -> None:
        self.settings = settings
        self.store = store
        self.switches: dict[int, SwitchState] = {}
        self.devices: dict[str, Device] = {r.mac: Device.from_record(r) for r in store.devices()}
        self.profiles: dict[str, Profile] = {}  # by URL: the file in force for that URL
        self.url_of_profile: dict[int, str] = {}  # profile id -> the URL of the file in force under it
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
        self.my_controller: dict[str, tuple[str, ...]] = store.my_controllers()
        # The store's id maps, read once and kept in step by :meth:`profile_id` / :meth:`manufacturer_id` (ids are
        # never reallocated or freed). Replaced, never mutated: a context handed out keeps the maps it was given.
        self.profile_ids: dict[str, int] = store.profile_ids()
        self.manufacturer_ids: dict[str, int] = store.manufacturer_ids()
        self._trusted = portguard.trusted_by_switch(settings)  # dpid -> its uplinks and server ports
        # The IP source guard's bindings: which addresses each managed device may send from (first come).
        self.server_addresses = frozenset(portguard.server_addresses(settings))
        self.bindings = AddressBindings(servers=self.server_addresses)
        self.reindex()

    # ---- durable ids
    def profile_id(self, url: str) -> int:
        """The store's durable id for ``url`` (allocated on first use), through the in-memory map."""
        known = self.profile_ids.get(url)
        if known is None:
            known = self.store.profile_id(url)
            self.profile_ids = {**self.profile_ids, url: known}
        return known

    def manufacturer_id(self, authority: str) -> int:
        key = authority.lower()  # the store's key: authorities compare case-insensitively
        known = self.manufacturer_ids.get(key)
        if known is None:
            known = self.store.manufacturer_id(key)
            self.manufacturer_ids = {**self.manufacturer_ids, key: known}
        return known

    # ---- who is where, and who uses which profile where
    def place(self, mac: str) -> None:
        """Bring the indices in line with ``mac``'s device. The flow book calls this for every device an owner sync
        touches, before anything else (so also for a switch that is not connected), which covers every change of a
        device's switch, port, state or URL: each is followed by a sync of that device, here and in the operator
        actions. A change of its reason to or from ``pending:<url>`` without a sync is followed by a call here."""
        self._place_port(mac)
        self._place_wants(mac)
        device = self.devices.get(mac)
        key = _placement(device)
        entry = None if key is None or device is None else (key, device.port)
        old = self._placement.get(mac)
        if old == entry:
            return
        if old is not None:
            old_key, old_port = old
            users, ports = self._users[old_key], self._user_ports[old_key]
            users.discard(mac)
            ports[old_port] -= 1
            if not ports[old_port]:
                del ports[old_port]
            if not users:
                del self._users[old_key], self._user_ports[old_key]
        if entry is None:
            del self._placement[mac]
        else:
            self._placement[mac] = entry
            self._users.setdefault(entry[0], set()).add(mac)
            ports = self._user_ports.setdefault(entry[0], {})
            ports[entry[1]] = ports.get(entry[1], 0) + 1

    def _place_wants(self, mac: str) -> None:
        """The wanting index: which devices (not absent) an answer for a URL concerns -- those on it, and those whose
        change to it is pending. A superset (a reason changed since): readers check each device again."""
        device = self.devices.get(mac)
        urls: frozenset[str] = frozenset()
        if device is not None and device.state != "absent":
            pending = device.reason[len(PENDING) :] if device.reason.startswith(PENDING) else None
            urls = frozenset(u for u in (device.url, pending) if u)
        old = self._wants.get(mac, frozenset())
        if old == urls:
            return
        for url in old - urls:
            macs = self._wanting[url]
            del macs[mac]
            if not macs:
                del self._wanting[url]
        for url in urls - old:
            self._wanting.setdefault(url, {})[mac] = None
        if urls:
            self._wants[mac] = urls
        else:
            self._wants.pop(mac, None)

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

    def reindex(self) -> None:
        """Rebuild the indices from the devices (start, reconnect: also drops devices removed from the map)."""
        self._placement: dict[str, tuple[Placement, int]] = {}  # MAC -> where its flows draw on a profile, its port
        self._users: dict[Placement, set[str]] = {}
        self._user_ports: dict[Placement, dict[int, int]] = {}  # the ports of those users, counted
        self._wants: dict[str, frozenset[str]] = {}
        self._wanting: dict[str, dict[str, None]] = {}  # URL -> MACs an answer for it concerns, in order of arrival
        self._port_of: dict[str, tuple[int, int]] = {}
        self._at_port: dict[tuple[int, int], set[str]] = {}
        for mac in self.devices:
            self.place(mac)

    def devices_at(self, dpid: int, port: int) -> frozenset[str]:
        """The MACs of the devices (not absent) whose place is (dpid, port)."""
        return frozenset(self._at_port.get((dpid, port), ()))

    def device_ports(self, dpid: int) -> set[int]:
        """The ports of ``dpid`` that are some device's place."""
        return {p for d, p in self._at_port if d == dpid}

    def in_use(self, placement: Placement) -> bool:
        """Whether some device draws on the profile ``placement`` names, on its switch."""
        return placement in self._users

    def ports_in_use_on(self, dpid: int) -> list[tuple[Placement, AbstractSet[int]]]:
        """Each profile in use on ``dpid`` (as its placement) with the ports of the devices using it (kept counted
        as devices come and go: the flood flows read this on every change of a device's place)."""
        return [(key, self._user_ports[key].keys()) for key in self._users if key[0] == dpid]

    def wanting(self, url: str) -> list[Device]:
        """The devices (not absent) an answer for ``url`` concerns: on it, or with a change to it pending."""
        found = (self.devices.get(mac) for mac in self._wanting.get(url, ()))
        return [d for d in found if d is not None and d.state != "absent" and wants(d, url)]

    # ---- port roles
    def trusted_ports(self, dpid: int) -> frozenset[int]:
        """The uplinks and server ports of ``dpid`` (:mod:`mud_ryu.guard.ports`)."""
        return self._trusted.get(dpid, frozenset())

    def trusted_ingress(self, dpid: int, port: int) -> bool:
        """Whether frames from (dpid, port) may speak for a server (:mod:`mud_ryu.guard.ports`): a trusted port, or on a
        switch without configured trusted ports, any port that is no MUD device's place and not a shared port (hosts
        learned on a port before a device arrives there are quarantined with it: see the admission path)."""
        trusted = self.trusted_ports(dpid)
        if trusted:
            return port in trusted
        return (dpid, port) not in self._at_port and not portguard.is_shared(self.settings, dpid, port)

    def uplink(self, dpid: int, port: int) -> bool:
        return (dpid, port) in self.settings.uplink_ports

    def server_side(self, dpid: int, port: int) -> bool:
        """Uplinks and server ports: where routers and servers are, never quarantined as devices."""
        return self.uplink(dpid, port) or (dpid, port) in self.settings.server_ports

    def hosts_welcome(self, dpid: int, port: int) -> bool:
        """Ports where other hosts beside a MUD device are ordinary: shared, server and uplink ports."""
        return portguard.is_shared(self.settings, dpid, port) or self.server_side(dpid, port)

    def metered(self, dpid: int) -> bool:
        sw = self.switches.get(dpid)
        return sw is not None and sw.metered


def wants(device: Device, url: str) -> bool:
    """Whether an answer for ``url`` concerns ``device``: its URL, or the change it has pending."""
    return device.url == url or device.reason == PENDING + url


def _placement(device: Device | None) -> Placement | None:
    if device is None or device.state == "absent":
        return None
    if device.state == "quarantined":
        return (device.dpid, "quarantined", None)
    if device.state == "enforced" and device.url is not None:
        return (device.dpid, "enforced", device.url)
    return None
