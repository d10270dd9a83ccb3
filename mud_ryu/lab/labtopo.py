"""Mininet topologies of the lab (home network, two switches), built from :mod:`mud_ryu.lab.labhosts`.

They live in the package so the lab runner can import them; ``topologies/home.py`` and
``topologies/two_switch.py`` re-export them for the Mininet-user way (``mn --custom``).

Hosts only get what Mininet should configure: fixed MAC, and a static IPv4 address for servers and
for the devices that do not use DHCPv4 (DHCP clients start without an address, their lease comes
from dnsmasq). Ports are fixed (``labhosts.placement``), so flow dumps and tests can name them.
"""

from __future__ import annotations

from typing import Any

from mininet.topo import Topo

from mud_ryu.lab import labhosts


def _host_opts(h: labhosts.LabHost) -> dict[str, Any]:
    opts: dict[str, Any] = {"mac": h.mac, "ip": None if h.dhcp else h.cidr}
    if h.root_ns:
        opts["inNamespace"] = False
    return opts


class _LabTopo(Topo):  # type: ignore[misc]  # Mininet has no type information
    layout = "home"

    def build(self, **_: Any) -> None:
        placement = labhosts.placement(self.layout)
        for sw in labhosts.switches(self.layout):
            self.addSwitch(sw, dpid=f"{labhosts.dpid(sw):016x}")
        for h in labhosts.hosts(self.layout):
            sw, port = placement[h.name]
            self.addHost(h.name, **_host_opts(h))
            self.addLink(h.name, sw, port1=0, port2=port)
        if self.layout == "two_switch":
            self.addLink("s1", "s2", port1=labhosts.TRUNK_PORT, port2=labhosts.TRUNK_PORT)


class HomeTopo(_LabTopo):
    """One switch ``s1``; every host of :data:`labhosts.HOSTS` on its home port."""

    layout = "home"


class TwoSwitchTopo(_LabTopo):
    """``s1`` (servers, mgmt, bulb, cam) and ``s2`` (the other devices), trunk on port 20 of both."""

    layout = "two_switch"


class AbstractionsTopo(_LabTopo):
    """The home network plus :data:`labhosts.EXTRA_HOSTS` on ports 12-14 (the RFC 8520 abstractions scenario)."""

    layout = "abstractions"


TOPOS: dict[str, type[_LabTopo]] = {"home": HomeTopo, "two_switch": TwoSwitchTopo, "abstractions": AbstractionsTopo}
