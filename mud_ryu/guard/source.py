"""The IP source guard: table ``source_guard``, between classify_src and classify_dst.

A managed device (metadata's src managed bit) goes on to its ACLs only from the addresses bound to it
(:mod:`mud_ryu.guard.bindings`): one flow per bound IPv4 address (and one for its ARP sender address), one per
IPv6 address, matching the device's MAC and the address. Shared flows of the switch let through what a device sends
before it has an address (IPv4 0.0.0.0: DHCP; IPv6 ::: duplicate address detection and MLD; ARP probes) and copy
DAD probes to the controller (their target is the address the device is about to use: bound before it is used).
Any other source of a managed device is *held*: the frame goes whole to the controller (metered), which binds the
address when no one else holds it and puts the frame back into the pipeline behind a barrier, so a device's first
packet from a new address is not lost -- or refuses it (alert) and the frame stays dropped. Unmanaged hosts pass
(their policy is no policy).

What it stops: a MUD device sourcing a server's or another device's address (to pass as them in other devices'
to-device policies, or to hide), ARP for addresses it does not hold or with another sender MAC, neighbour
advertisements for targets that are not its own (ND cache poisoning).
"""

from __future__ import annotations

import ipaddress

from mud_ryu.compiler.bootstrap import ETH_ARP, ETH_IPV4, ETH_IPV6, IPPROTO_ICMPV6, ND_NA, ND_NS
from mud_ryu.compiler.edgeflows import NO_BUFFER
from mud_ryu.compiler.flowrule import FlowRule, Output, make_match
from mud_ryu.compiler.pipeline import SRC_MANAGED_BIT, CookieKind, cookie, verify_rule
from mud_ryu.discovery.framedemux import LinkFault, ipv4_text, read_link

SOURCE_METER = 3  # per switch: held frames of unbound sources and DAD copies
HELD_SUB, DAD_SUB, BINDING_SUB = 5, 6, 7
HELD_COOKIE = cookie(CookieKind.FORWARD, sub=HELD_SUB)
DAD_COOKIE = cookie(CookieKind.FORWARD, sub=DAD_SUB)
SHARED_COOKIE = cookie(CookieKind.FORWARD, sub=8)
ADVERT_PRIORITY, FOREIGN_ADVERT_PRIORITY = 310, 305  # above the source bindings: an NA's target is checked first
BINDING_PRIORITY, DAD_PRIORITY, UNADDRESSED_PRIORITY, HELD_PRIORITY = 300, 210, 200, 100
MANAGED = (SRC_MANAGED_BIT, SRC_MANAGED_BIT)


def shared_rules(metered: bool) -> tuple[FlowRule, ...]:
    meter = SOURCE_METER if metered else None
    go = "classify_dst"
    rules = [
        FlowRule(table="source_guard", priority=DAD_PRIORITY, cookie=DAD_COOKIE, goto=go, meter=meter,
                 match=make_match(metadata=MANAGED, eth_type=ETH_IPV6, ipv6_src="::", ip_proto=IPPROTO_ICMPV6,
                                  icmpv6_type=ND_NS),
                 actions=(Output("CONTROLLER", NO_BUFFER),)),
        FlowRule(table="source_guard", priority=UNADDRESSED_PRIORITY, cookie=SHARED_COOKIE, goto=go,
                 match=make_match(metadata=MANAGED, eth_type=ETH_IPV4, ipv4_src="0.0.0.0")),
        FlowRule(table="source_guard", priority=UNADDRESSED_PRIORITY, cookie=SHARED_COOKIE, goto=go,
                 match=make_match(metadata=MANAGED, eth_type=ETH_IPV6, ipv6_src="::")),
        FlowRule(table="source_guard", priority=UNADDRESSED_PRIORITY, cookie=SHARED_COOKIE, goto=go,
                 match=make_match(metadata=MANAGED, eth_type=ETH_ARP, arp_spa="0.0.0.0")),
    ]  # fmt: skip
    # A neighbour advertisement for a target that is not the device's own: dropped (no ND cache poisoning).
    rules.append(FlowRule(table="source_guard", priority=FOREIGN_ADVERT_PRIORITY, cookie=SHARED_COOKIE,
                          match=make_match(metadata=MANAGED, eth_type=ETH_IPV6, ip_proto=IPPROTO_ICMPV6,
                                           icmpv6_type=ND_NA)))  # fmt: skip
    for eth_type in (ETH_IPV4, ETH_IPV6, ETH_ARP):
        rules.append(FlowRule(table="source_guard", priority=HELD_PRIORITY, cookie=HELD_COOKIE, meter=meter,
                              match=make_match(metadata=MANAGED, eth_type=eth_type),
                              actions=(Output("CONTROLLER", NO_BUFFER),)))  # fmt: skip
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)


def binding_rules(mac: str, device_id: int, addresses: frozenset[str]) -> tuple[FlowRule, ...]:
    """What ``mac`` may send from: its bound addresses (device cookie, so they go with the device's flows)."""
    ck = cookie(CookieKind.DEVICE, device_id, sub=BINDING_SUB)
    rules: list[FlowRule] = []
    for address in sorted(addresses):
        if ":" in address:
            matches = [make_match(eth_src=mac, eth_type=ETH_IPV6, ipv6_src=address)]
            # Its neighbour advertisements may speak only for its own addresses (no ND cache poisoning).
            advert = make_match(eth_src=mac, eth_type=ETH_IPV6, ip_proto=IPPROTO_ICMPV6, icmpv6_type=ND_NA,
                                ipv6_nd_target=address)  # fmt: skip
            rules.append(FlowRule(table="source_guard", priority=ADVERT_PRIORITY, match=advert, cookie=ck,
                                  goto="classify_dst"))  # fmt: skip
        else:
            # ARP: its own sender address, and its own MAC as the sender hardware address.
            matches = [make_match(eth_src=mac, eth_type=ETH_IPV4, ipv4_src=address),
                       make_match(eth_src=mac, eth_type=ETH_ARP, arp_spa=address, arp_sha=mac)]  # fmt: skip
        rules += [FlowRule(table="source_guard", priority=BINDING_PRIORITY, match=m, cookie=ck, goto="classify_dst")
                  for m in matches]  # fmt: skip
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)


def claimed_source(frame: bytes, dad: bool) -> tuple[str, str] | None:
    """(source MAC, the address it claims) of a held frame -- its IPv4/IPv6 source or ARP sender address; of a DAD
    probe (``dad``), the neighbour solicitation's target. None for anything malformed. Total and bounded."""
    link = read_link(frame)
    if isinstance(link, LinkFault):
        return None
    d, mac, _vlan, ethertype, off, bad_source = link
    if bad_source:
        return None
    if ethertype == ETH_IPV4 and len(d) >= off + 20 and d[off] >> 4 == 4:
        return mac, ipv4_text(d[off + 12 : off + 16])
    if ethertype == ETH_ARP and len(d) >= off + 28:
        return mac, ipv4_text(d[off + 14 : off + 18])
    if ethertype == ETH_IPV6 and len(d) >= off + 40 and d[off] >> 4 == 6:
        if dad:
            if len(d) < off + 64 or d[off + 6] != IPPROTO_ICMPV6 or d[off + 40] != ND_NS:
                return None
            return mac, str(ipaddress.IPv6Address(d[off + 48 : off + 64]))
        return mac, str(ipaddress.IPv6Address(d[off + 8 : off + 24]))
    return None
