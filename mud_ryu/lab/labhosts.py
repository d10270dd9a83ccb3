"""The lab's hosts as data: names, fixed MACs and addresses, what each one runs, where it is plugged in.

One frozen table is the single source for the Mininet topologies (``topologies/``), the lab runner
(:mod:`mud_ryu.lab.homelab`), the DHCP server's static leases, the MUD files (:mod:`mud_ryu.lab.labmud`)
and the tests, so a MAC or an address is written down exactly once.

Addresses: every host lives in 10.0.0.0/24. DHCP clients get their address from dnsmasq, which hands
each MAC the address written here (so a lease is checkable), servers are configured statically.
``mgmt`` is the management port of the controller: an interface in the sandbox's root namespace
(where ryu-manager runs), so the controller reaches the MUD server through the switch, as in a
real deployment.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

SUBNET = "10.0.0.0/24"
PREFIX_LEN = 24
SUBNET6 = "fd00:10::/64"
MUD_HOST = "mud.lab"  # the MUD server's name; the controller resolves it with a static map


class Client(enum.Enum):
    """What a host runs to get an address and announce (or not) its MUD URL."""

    NONE = "none"  # a server with a static address
    UDHCPC = "udhcpc"  # busybox udhcpc, DHCPv4 option 161 (``-x 161:...``)
    DHCLIENT = "dhclient"  # isc dhclient, DHCPv4 option 161 (``send mud-url``)
    DHCLIENT6 = "dhclient6"  # isc dhclient -6, DHCPv6 option 112; static IPv4 for its traffic
    LLDPD = "lldpd"  # lldpd, LLDP TLV OUI 00-00-5E subtype 1; static IPv4


@dataclass(frozen=True, slots=True)
class LabHost:
    name: str
    mac: str
    ip: str  # IPv4 address (leased for DHCP clients, static otherwise)
    client: Client
    mud_url: str | None  # what the host announces; None = announces nothing
    home_port: int  # OpenFlow port on s1 in the home topology
    ip6: str | None = None  # static (servers) or leased (DHCPv6 clients) IPv6 address
    root_ns: bool = False  # lives in the sandbox's root network namespace (the controller's)

    @property
    def dhcp(self) -> bool:
        return self.client in (Client.UDHCPC, Client.DHCLIENT)

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{PREFIX_LEN}"


def mud_url(device: str) -> str:
    return f"https://{MUD_HOST}/{device}.json"


HOSTS: tuple[LabHost, ...] = (
    LabHost("dhcp", "02:00:00:00:00:01", "10.0.0.1", Client.NONE, None, 1, ip6="fd00:10::1"),
    LabHost("mudsrv", "02:00:00:00:00:02", "10.0.0.2", Client.NONE, None, 2),
    LabHost("internet", "02:00:00:00:00:0a", "10.0.0.10", Client.NONE, None, 3),
    LabHost("bulb", "02:00:00:00:00:15", "10.0.0.21", Client.UDHCPC, mud_url("bulb"), 4),
    LabHost("bulb2", "02:00:00:00:00:16", "10.0.0.22", Client.UDHCPC, mud_url("bulb"), 5),  # shared profile
    LabHost("cam", "02:00:00:00:00:17", "10.0.0.23", Client.DHCLIENT, mud_url("cam"), 6),
    LabHost("sensor6", "02:00:00:00:00:18", "10.0.0.24", Client.DHCLIENT6, mud_url("sensor6"), 7, ip6="fd00:10::24"),
    LabHost("hub", "02:00:00:00:00:19", "10.0.0.25", Client.LLDPD, mud_url("hub"), 8),
    LabHost("laptop", "02:00:00:00:00:1a", "10.0.0.26", Client.UDHCPC, None, 9),
    LabHost("broken", "02:00:00:00:00:1b", "10.0.0.27", Client.UDHCPC, f"https://{MUD_HOST}/missing.json", 10),
    LabHost("mgmt", "02:00:00:00:00:fe", "10.0.0.254", Client.NONE, None, 11, root_ns=True),
)

# Three more DHCP clients that only the "abstractions" topology plugs in (the RFC 8520 abstractions need more
# devices at once than the home network has). They announce whatever MUD URL a scenario gives them.
EXTRA_HOSTS: tuple[LabHost, ...] = (
    LabHost("toothbrush", "02:00:00:00:00:1c", "10.0.0.28", Client.UDHCPC, None, 12),
    LabHost("speaker", "02:00:00:00:00:1d", "10.0.0.29", Client.UDHCPC, None, 13),
    LabHost("doorlock", "02:00:00:00:00:1e", "10.0.0.30", Client.UDHCPC, None, 14),
)
ALL_HOSTS: tuple[LabHost, ...] = (*HOSTS, *EXTRA_HOSTS)

BY_NAME: Mapping[str, LabHost] = MappingProxyType({h.name: h for h in ALL_HOSTS})

# Two-switch topology: s1 holds the servers and a few devices, s2 the rest; s1 port 20 <-> s2 port 20.
TRUNK_PORT = 20
ON_S2: frozenset[str] = frozenset({"bulb2", "sensor6", "hub", "laptop", "broken"})
TOPOLOGIES = ("home", "two_switch", "abstractions")


def hosts(topo: str) -> tuple[LabHost, ...]:
    """The hosts plugged in in ``topo``: the home hosts, plus :data:`EXTRA_HOSTS` in "abstractions"."""
    if topo not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topo!r}; known: {', '.join(TOPOLOGIES)}")
    return ALL_HOSTS if topo == "abstractions" else HOSTS


def placement(topo: str) -> dict[str, tuple[str, int]]:
    """host name -> (switch, OpenFlow port) in ``topo``. Ports keep the home numbering on both switches,
    so a device that moves keeps a recognisable port number."""
    if topo == "two_switch":
        return {h.name: ("s2" if h.name in ON_S2 else "s1", h.home_port) for h in HOSTS}
    return {h.name: ("s1", h.home_port) for h in hosts(topo)}


def switches(topo: str) -> tuple[str, ...]:
    return tuple(sorted({sw for sw, _ in placement(topo).values()}))


def host(name: str) -> LabHost:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no lab host {name!r}; known: {', '.join(BY_NAME)}") from None


def dpid(switch: str) -> int:
    """Mininet derives the datapath id from the switch name's number (s1 -> 1)."""
    return int(switch.lstrip("s"))
