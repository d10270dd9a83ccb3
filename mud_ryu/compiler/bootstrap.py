"""Flows every switch gets once, shared by all devices: table-miss entries, the explicit
default deny of each ACL table, and the bootstrap allowances a managed device needs before
any ACE can matter (ARP, IPv6 neighbour/router discovery, DHCPv4 and DHCPv6 client<->server).

The bootstrap allowances sit in :attr:`Band.BOOTSTRAP`, above every ACE: a MUD file cannot
drop its own address configuration. They match only the managed bit, so they also serve
quarantined devices (profile 1, which has no ACL rules). Direction matters: a device may send
router *solicitations* and DHCP *requests*, and receive router *advertisements* and DHCP
*replies*, never the reverse (a device sending RAs or DHCP offers would be a rogue server). And only with its DHCP
servers: client messages to the broadcast address, the All-DHCP-servers group or a configured server, server
messages from a configured server or a link-local address -- never a UDP 67/68 or 546/547 channel to an arbitrary
host, which a quarantined device could otherwise keep open to the internet.
"""

from __future__ import annotations

from collections.abc import Sequence

from mud_ryu.compiler.flowrule import FlowRule, MatchValue, make_match
from mud_ryu.compiler.pipeline import (
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


DHCP4_BROADCAST = "255.255.255.255"
DHCP6_SERVERS_GROUP = "ff02::1:2"  # All_DHCP_Relay_Agents_and_Servers (RFC 8415 s7.1)
LINK_LOCAL6 = ("fe80::", "ffc0::")  # fe80::/10: DHCPv6 client and server messages on a link use these sources


def _dhcp_matches(to_device: bool, dhcp_servers: Sequence[str]) -> list[dict[str, MatchValue]]:
    """DHCP between a device and its servers only: a client message goes to the broadcast address (or the
    All-DHCP-servers group) or to a configured DHCP server or relay; a server message comes from a configured server
    (IPv4) or a link-local address (IPv6). Without configured IPv4 servers any IPv4 peer is accepted (a unicast
    renewal must reach a server the switch was not told about), and the app warns: port 67/68 is then a channel.
    Where a server message came *in* is the guard's business (:mod:`mud_ryu.guard.ports`: trusted ports only)."""
    v4 = [s for s in dhcp_servers if ":" not in s]
    v6 = [s for s in dhcp_servers if ":" in s]
    d4: dict[str, MatchValue] = {"eth_type": ETH_IPV4, "ip_proto": IPPROTO_UDP}
    d6: dict[str, MatchValue] = {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP}
    if to_device:
        d4 |= {"udp_src": DHCP4_SERVER, "udp_dst": DHCP4_CLIENT}
        d6 |= {"udp_src": DHCP6_SERVER, "udp_dst": DHCP6_CLIENT, "ipv6_src": LINK_LOCAL6}
        out = [d4 | {"ipv4_src": a} for a in v4] if v4 else [d4]
        return [*out, d6, *(d6 | {"ipv6_src": a} for a in v6)]
    d4 |= {"udp_src": DHCP4_CLIENT, "udp_dst": DHCP4_SERVER}
    d6 |= {"udp_src": DHCP6_CLIENT, "udp_dst": DHCP6_SERVER}
    out = [d4 | {"ipv4_dst": a} for a in (DHCP4_BROADCAST, *v4)] if v4 else [d4]
    return [*out, *(d6 | {"ipv6_dst": a} for a in (DHCP6_SERVERS_GROUP, *v6))]


def _bootstrap(
    table: str, managed_bit: int, next_table: str, to_device: bool, dhcp_servers: Sequence[str]
) -> list[FlowRule]:
    md = (managed_bit, managed_bit)
    nd_types = (ND_RA, ND_NS, ND_NA) if to_device else (ND_RS, ND_NS, ND_NA)
    matches: list[dict[str, MatchValue]] = [{"eth_type": ETH_ARP}]
    matches += [{"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": t} for t in nd_types]
    matches += _dhcp_matches(to_device, dhcp_servers)
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


def pipeline_rules(dhcp_servers: Sequence[str] = ()) -> tuple[FlowRule, ...]:
    """Table-miss (go on) in every table but ``forward``, default deny per ACL table, bootstrap (DHCP towards
    ``dhcp_servers``, the configured DHCP servers and relay agents)."""
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
    rules += _bootstrap("from_device", SRC_MANAGED_BIT, "to_device", False, dhcp_servers)
    rules += _bootstrap("to_device", DST_MANAGED_BIT, "forward", True, dhcp_servers)
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)
