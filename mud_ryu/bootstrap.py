"""Flows every switch gets once, shared by all devices: table-miss entries, the explicit
default deny of each ACL table, and the bootstrap allowances a managed device needs before
any ACE can matter (ARP, IPv6 neighbour/router discovery, DHCPv4 and DHCPv6 client<->server).

The bootstrap allowances sit in :attr:`Band.BOOTSTRAP`, above every ACE: a MUD file cannot
drop its own address configuration. They match only the managed bit, so they also serve
quarantined devices (profile 1, which has no ACL rules). Direction matters: a device may send
router *solicitations* and DHCP *requests*, and receive router *advertisements* and DHCP
*replies*, never the reverse (a device sending RAs or DHCP offers would be a rogue server).
"""

from __future__ import annotations

from mud_ryu.flowrule import FlowRule, MatchValue, make_match
from mud_ryu.pipeline import (
    DST_MANAGED_BIT,
    SRC_MANAGED_BIT,
    TABLES,
    Band,
    CookieKind,
    cookie,
    verify_rule,
)

ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
IPPROTO_UDP, IPPROTO_ICMPV6 = 17, 58
ND_RS, ND_RA, ND_NS, ND_NA = 133, 134, 135, 136
DHCP4_CLIENT, DHCP4_SERVER = 68, 67
DHCP6_CLIENT, DHCP6_SERVER = 546, 547

PIPELINE_COOKIE = cookie(CookieKind.PIPELINE)


def _bootstrap(table: str, managed_bit: int, next_table: str, to_device: bool) -> list[FlowRule]:
    md = (managed_bit, managed_bit)
    nd_types = (ND_RA, ND_NS, ND_NA) if to_device else (ND_RS, ND_NS, ND_NA)
    d4 = (DHCP4_SERVER, DHCP4_CLIENT) if to_device else (DHCP4_CLIENT, DHCP4_SERVER)
    d6 = (DHCP6_SERVER, DHCP6_CLIENT) if to_device else (DHCP6_CLIENT, DHCP6_SERVER)
    matches: list[dict[str, MatchValue]] = [{"eth_type": ETH_ARP}]
    matches += [{"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": t} for t in nd_types]
    matches.append({"eth_type": ETH_IPV4, "ip_proto": IPPROTO_UDP, "udp_src": d4[0], "udp_dst": d4[1]})
    matches.append({"eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP, "udp_src": d6[0], "udp_dst": d6[1]})
    return [
        FlowRule(
            table=table,
            priority=int(Band.BOOTSTRAP),
            match=make_match(metadata=md, **m),
            cookie=PIPELINE_COOKIE,
            goto=next_table,
        )
        for m in matches
    ]


def pipeline_rules() -> tuple[FlowRule, ...]:
    """Table-miss (go on) in every table but ``forward``, default deny per ACL table, bootstrap."""
    rules: list[FlowRule] = [
        FlowRule(table=t.name, priority=int(Band.MISS), match=(), cookie=PIPELINE_COOKIE, goto=t.next_table)
        for t in TABLES
        if t.next_table is not None
    ]
    for table, bit in (("from_device", SRC_MANAGED_BIT), ("to_device", DST_MANAGED_BIT)):
        # managed, and nothing allowed it: drop (RFC 8520 s9 "anything not permitted is denied")
        rules.append(
            FlowRule(
                table=table,
                priority=int(Band.DEFAULT_DENY),
                match=make_match(metadata=(bit, bit)),
                cookie=PIPELINE_COOKIE,
            )
        )
    rules += _bootstrap("from_device", SRC_MANAGED_BIT, "to_device", to_device=False)
    rules += _bootstrap("to_device", DST_MANAGED_BIT, "forward", to_device=True)
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)
