"""Unplug a lab host and plug it into another switch port (device moves between switches).

Mininet can delete and add links at run time, but ``OVSSwitch.attach`` adds the port without an
OpenFlow port number (OVS picks one) and ``delLink`` leaves the port in the OVS database; both are
done here by hand so the port numbers stay the ones the lab promises.
"""

from __future__ import annotations

import subprocess
from typing import Any

from mud_ryu.lab import labhosts


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}: {proc.stderr.strip()[:500]}")


def replug(lab: Any, name: str, new: tuple[str, int]) -> None:
    """``lab`` is a :class:`mud_ryu.lab.homelab.HomeLab`; ``new`` = (switch, OpenFlow port)."""
    net = lab.net
    host = net.get(name)
    old_sw, _ = lab.placement[name]
    old = net.get(old_sw)
    for link in net.linksBetween(host, old):
        switch_side = link.intf1 if link.intf1.node is old else link.intf2
        _run(["ovs-vsctl", "--if-exists", "del-port", old_sw, switch_side.name])
        net.delLink(link)
    sw_name, port = new
    sw = net.get(sw_name)
    link = net.addLink(host, sw, port1=0, port2=port)
    switch_side = link.intf2
    _run(["ovs-vsctl", "add-port", sw_name, switch_side.name, "--", "set", "Interface", switch_side.name,
          f"ofport_request={port}"])  # fmt: skip
    _run(["ip", "link", "set", switch_side.name, "up"])
    h = labhosts.host(name)
    intf = link.intf1
    intf.setMAC(h.mac)
    if not h.dhcp:
        intf.setIP(h.cidr)
    host.cmd(f"ip link set {intf.name} up; ethtool -K {intf.name} tx off")
