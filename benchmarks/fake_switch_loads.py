"""What the fake switch (``benchmarks/fake_switch.py``) sends: packet-ins for each path, built before timing.

Every builder takes the switch for the flows it learned from the controller (the learning copy or table-miss, the
DHCP punt) and its ports; frames go round robin over the ports, so a per-port rate limit binds only when a run puts
more on a port than its burst. MACs come in blocks (``fake_switch_wire.mac``: a group byte, then an index) so runs
never reuse one by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import fake_switch_wire as w

if TYPE_CHECKING:
    from fake_switch import FakeSwitch

DHCPRELEASE = 7


def _punt(sw: FakeSwitch) -> tuple[int, int, int]:
    """(cookie, table, reason) of the DHCP punt, or the learning flow when the controller installed no punt (a
    plain learning switch sees DHCP as any frame)."""
    cookie, table = sw.punt_flow or sw.learn_flow or (0, 0)
    return cookie, table, w.OFPR_NO_MATCH if cookie == 0 else w.OFPR_ACTION


def access_ports(sw: FakeSwitch) -> list[int]:
    """The ports the loads use: all but the last, which is kept for :func:`marker_load`."""
    return sw.ports[:-1] or sw.ports


def learning_load(
    sw: FakeSwitch, group: int, count: int, first: int = 0, ports: list[int] | None = None
) -> tuple[list[bytes], list[bytes]]:
    """``count`` ARP requests from new MACs (``group``, from index ``first``), round robin over ``ports`` (the
    access ports), on the learning flow."""
    assert sw.learn_flow is not None
    cookie, table = sw.learn_flow
    reason = w.OFPR_NO_MATCH if cookie == 0 else w.OFPR_ACTION
    ports = ports or access_ports(sw)
    macs = [w.mac(group, first + i) for i in range(count)]
    msgs = [w.packet_in(cookie, table, ports[i % len(ports)], w.arp_request(m, 0x0A000000 + i, 0x0A000001),
                        reason) for i, m in enumerate(macs)]  # fmt: skip
    return macs, msgs


def marker_load(sw: FakeSwitch, group: int, index: int) -> tuple[bytes, bytes]:
    """A learning packet-in from a new MAC on the last port, where no load ever puts a device: a controller that
    handles a switch's messages in order answers it only after everything sent before it, so its answer marks the
    end of what carries no answer of its own (drops, releases). Never on a device's port: mud_ryu quarantines new
    MACs beside a device and, past a few per port, sends nothing back."""
    macs, msgs = learning_load(sw, group, 1, first=index, ports=sw.ports[-1:])
    return macs[0], msgs[0]


def discovery_load(sw: FakeSwitch, group: int, count: int, url: str) -> tuple[list[bytes], list[bytes]]:
    """``count`` DHCPDISCOVERs with option 161 = ``url`` from new MACs, round robin over the ports, on the DHCP
    punt."""
    cookie, table, reason = _punt(sw)
    ports = access_ports(sw)
    macs = [w.mac(group, i) for i in range(count)]
    msgs = [w.packet_in(cookie, table, ports[i % len(ports)], w.dhcp_discover(m, url, xid=i), reason)
            for i, m in enumerate(macs)]  # fmt: skip
    return macs, msgs


def drop_load(sw: FakeSwitch, group: int, count: int) -> list[bytes]:
    """``count`` DHCP packet-ins that change nothing: alternately malformed (chaddr is not the Ethernet source) and
    without a URL from each port's own already-learned renewer (:func:`renewers_load`)."""
    cookie, table, reason = _punt(sw)
    ports = access_ports(sw)
    out = []
    for i in range(count):
        port = ports[i % len(ports)]
        if i % 2:
            frame = w.dhcp_discover(renewer(port), None, xid=i)
        else:
            frame = w.dhcp_discover(w.mac(group, i), "https://mud.bench/x.json", chaddr=w.mac(group, i + 1), xid=i)
        out.append(w.packet_in(cookie, table, port, frame, reason))
    return out


def renewer(port: int) -> bytes:
    """The one host per port that renews its lease without a MUD URL (learned before the drop path runs)."""
    return w.mac(0xFE, port)


def renewers_load(sw: FakeSwitch) -> tuple[list[bytes], list[bytes]]:
    """A DHCPDISCOVER without a URL from each port's renewer: learned as a plain host, so its next ones change
    nothing."""
    cookie, table, reason = _punt(sw)
    macs = [renewer(p) for p in access_ports(sw)]
    msgs = [w.packet_in(cookie, table, p, w.dhcp_discover(renewer(p), None), reason) for p in access_ports(sw)]
    return macs, msgs


def release_load(sw: FakeSwitch, macs: list[bytes]) -> list[bytes]:
    """A DHCPRELEASE from each of ``macs``, on the port :func:`discovery_load` announced it from: the devices leave
    (mud_ryu marks them absent and removes their flows), so the next run starts from the same population."""
    cookie, table, reason = _punt(sw)
    ports = access_ports(sw)
    return [w.packet_in(cookie, table, ports[i % len(ports)], w.dhcp_discover(m, None, msg_type=DHCPRELEASE),
                        reason) for i, m in enumerate(macs)]  # fmt: skip
