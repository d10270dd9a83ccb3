"""Where broadcast, multicast and unknown unicast go: never to a MUD device's port unless its policy lets them.

OpenFlow 1.3 has no egress table, so one FLOOD action would hand a group-addressed frame to every port whatever the
to-device policy of the device behind it: a frame to ``ff:ff:ff:ff:ff:ff`` (or an ``01:00:5e``/``33:33`` group)
whose IP destination is a device's unicast address is accepted by most stacks, and classify_dst, which knows devices
by their MAC, never sees it as traffic to the device. The forward table of each switch therefore holds (owner
``("flood", 0)``, recomputed when a port or a device's place changes):

* bootstrap group frames (ARP, ICMPv6 neighbour/router discovery and MLD, DHCP server messages -- only trusted ports
  may send those, see :mod:`mud_ryu.guard.ports`) flooded to every port: a device needs them before any ACE matters;
* group frames a profile's to-device ACL accepts (an accept ACE with no destination address or a group one, e.g.
  mDNS on UDP 5353) to the open ports plus the ports of the devices using that profile;
* every other group frame, and unicast to a MAC the switch has not learned, to the *open* ports only: those with
  no MUD device (unmanaged hosts, trusted and shared ports).

Never wider than the policy: an accept rule that a higher-priority drop of its profile could overlap (a MUD drop ACE,
a direction-initiated guard, a broadened drop) yields no group allowance at all -- the group traffic is then simply
not delivered to that profile's devices (narrower, never wider). A frame in the overlap of two allowances meets one
of them and goes to the ports of the profiles that allow all of that allowance, never to one that does not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from mud_ryu.compiler.bootstrap import ETH_ARP, ETH_IPV4, ETH_IPV6, IPPROTO_ICMPV6, IPPROTO_UDP
from mud_ryu.compiler.devflows import MULTICAST_BIT as GROUP_BIT
from mud_ryu.compiler.flowrule import FlowRule, MatchValue, Output, make_match
from mud_ryu.compiler.pipeline import SRC_MANAGED_BIT, SRC_MFG_MASK, SRC_PROFILE_MASK, CookieKind, cookie, verify_rule

# ICMPv6 a device needs from the link: MLD query/report/done/v2 report, RS, RA, NS, NA.
LINK_ICMPV6 = (130, 131, 132, 143, 133, 134, 135, 136)
FLOOD_COOKIE = cookie(CookieKind.FORWARD, sub=4)
BOOTSTRAP_PRIORITY, ALLOWANCE_PRIORITY, GROUP_PRIORITY, UNKNOWN_PRIORITY = 130, 120, 100, 0

Allowance = tuple[tuple[str, MatchValue], ...]  # a to-device accept rule's match without its metadata
SOURCE_BITS = SRC_PROFILE_MASK | SRC_MFG_MASK | SRC_MANAGED_BIT  # what a rule knows of its peer by metadata


def _is_group(value: MatchValue) -> bool:
    address = value[0] if isinstance(value, tuple) else value
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255")


def _may_overlap(a: Mapping[str, MatchValue], b: Mapping[str, MatchValue]) -> bool:
    """False only when a field both match exactly differs (protocols, ports, addresses): conservative."""
    for name in a.keys() & b.keys():
        if name == "metadata":
            continue
        x, y = a[name], b[name]
        if isinstance(x, tuple) or isinstance(y, tuple):
            if name.startswith(("ipv4_", "ipv6_")) and not _networks_overlap(x, y):
                return False
            continue
        if x != y:
            return False
    return True


def _networks_overlap(x: MatchValue, y: MatchValue) -> bool:
    def net(v: MatchValue) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if isinstance(v, tuple):
            return ipaddress.ip_network(f"{v[0]}/{v[1]}", strict=False)
        return ipaddress.ip_network(str(v))

    try:
        a, b = net(x), net(y)
    except ValueError:
        return True
    return a.version == b.version and a.overlaps(b)


def group_allowances(rules: Iterable[FlowRule]) -> tuple[Allowance, ...]:
    """The group traffic a compiled profile's to-device ACL accepts (see the module rules)."""
    to_device = sorted((r for r in rules if r.table == "to_device"), key=lambda r: -r.priority)
    found: list[Allowance] = []
    for index, rule in enumerate(to_device):
        if rule.goto is None or "eth_dst" in rule.match_dict():
            continue  # a drop, or an Ethernet ACE naming a (unicast) destination MAC
        fields = rule.match_dict()
        md = fields.get("metadata")
        if isinstance(md, tuple) and isinstance(md[1], int) and md[1] & SOURCE_BITS:
            continue  # it names its peer by metadata (manufacturer, model): the forward table could not tell
        dst = fields.get("ipv4_dst", fields.get("ipv6_dst"))
        if dst is not None and not _is_group(dst):
            continue
        drops_above = (r for r in to_device[:index] if r.is_drop and r.priority > rule.priority)
        if any(_may_overlap(fields, r.match_dict()) for r in drops_above):
            continue
        found.append(tuple((k, v) for k, v in rule.match if k != "metadata"))
    return tuple(dict.fromkeys(found))


def _outputs(ports: Iterable[int]) -> tuple[Output, ...]:
    return tuple(Output(p) for p in sorted(set(ports)))


def flood_rules(open_ports: Iterable[int], allowances: Mapping[Allowance, frozenset[int]]) -> tuple[FlowRule, ...]:
    """The forward table's flooding for one switch: ``open_ports`` hold no MUD device; ``allowances`` maps each
    group allowance in use to the ports of the devices whose profile has it."""
    open_set = frozenset(open_ports)
    boot: list[dict[str, MatchValue]] = [{"eth_type": ETH_ARP}]
    boot += [{"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": t} for t in LINK_ICMPV6]
    boot += [{"eth_type": ETH_IPV4, "ip_proto": IPPROTO_UDP, "udp_src": 67, "udp_dst": 68},
             {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP, "udp_src": 547, "udp_dst": 546}]  # fmt: skip
    rules = [
        FlowRule(table="forward", priority=BOOTSTRAP_PRIORITY, match=make_match(eth_dst=GROUP_BIT, **m),
                 cookie=FLOOD_COOKIE, actions=(Output("FLOOD"),))
        for m in boot
    ]  # fmt: skip
    for allowance, ports in sorted(allowances.items(), key=repr):
        match = make_match(eth_dst=GROUP_BIT, **dict(allowance))
        rules.append(FlowRule(table="forward", priority=ALLOWANCE_PRIORITY, match=match, cookie=FLOOD_COOKIE,
                              actions=_outputs(open_set | ports)))  # fmt: skip
    rules.append(FlowRule(table="forward", priority=GROUP_PRIORITY, match=make_match(eth_dst=GROUP_BIT),
                          cookie=FLOOD_COOKIE, actions=_outputs(open_set)))  # fmt: skip
    rules.append(FlowRule(table="forward", priority=UNKNOWN_PRIORITY, match=(), cookie=FLOOD_COOKIE,
                          actions=_outputs(open_set)))  # fmt: skip
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)
