"""Port roles and the switch-wide guards they drive: what a frame may claim depends on the port it came in on.

A switch port has one of three roles (README "What a device on the LAN cannot do"):

* **trusted** -- an uplink (``uplink_ports``) or a server port (``server_ports``): where routers, the DHCP/DNS/NTP
  servers and the controllers are. Never a MUD device's place (no discovery punts there).
* **shared** -- an access port that legitimately carries many hosts beside a MUD device (``shared_ports``: an
  access point, a hub): a new MAC there is an ordinary host.
* **access** -- every other port: one device, or a few unmanaged hosts.

classify_src writes :data:`~mud_ryu.compiler.pipeline.TRUSTED_BIT` for frames from a trusted port (the learned-host
flows and the per-port learning flows of trusted ports); a device's classification never writes it. The guard flows of
from_device (:attr:`Band.GUARD`, above every other band) then drop, from every port that is not trusted:

* a source address of a configured server or controller (DNS, NTP, DHCP, controller classes, my-controller hosts):
  spoofing the NTP server's address no longer opens the RFC 8520 "from the NTP server, any port" default;
* DHCPv4 server/relay messages (UDP source 67), DHCPv6 server/relay messages (UDP source 547), IPv6 router
  advertisements and redirects: the "trusted port" of switch DHCP snooping and RA guard;

and from every port, DHCP client messages that go anywhere but towards the DHCP servers (below the drops above, so
a client message claiming a server's address is still dropped).

A switch with no trusted port configured cannot tell a server's port from a host's: there every port that holds no
MUD device counts as trusted (the learning flow writes the bit) and only MUD devices are held to the guards; the
app warns about it at connect.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from mud_ryu.compiler.bootstrap import (
    DHCP4_BROADCAST,
    DHCP6_SERVERS_GROUP,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
    ND_NA,
    ND_RA,
)
from mud_ryu.compiler.edgeflows import LEARN_COOKIE, LEARN_MAX_LEN, LEARN_METER, NO_BUFFER, port_meter
from mud_ryu.compiler.flowrule import FlowRule, MatchValue, Output, make_match
from mud_ryu.compiler.pipeline import (
    QUARANTINE_PROFILE_ID,
    SRC_WRITE_MASK,
    TRUSTED_BIT,
    Band,
    CookieKind,
    cookie,
    src_metadata,
    verify_rule,
)
from mud_ryu.settings import MudSettings

ND_REDIRECT = 137
GUARD_COOKIE = cookie(CookieKind.PIPELINE, sub=1)
LEASE_SUB = 9
LEASE_COOKIE = cookie(CookieKind.FORWARD, sub=LEASE_SUB)
UNTRUSTED = (0, TRUSTED_BIT)  # metadata value/mask: the frame did not come in on a trusted port
MAX_GUARDED_ADDRESSES = 256  # one flow each; a configuration beyond this is refused at start


class GuardConfigError(ValueError):
    """A server address in the settings that is not an address."""


def trusted_by_switch(settings: MudSettings) -> dict[int, frozenset[int]]:
    """The trusted ports (uplinks and server ports) of each switch: read once, the settings never change."""
    out: dict[int, set[int]] = {}
    for dpid, port in settings.uplink_ports | settings.server_ports:
        out.setdefault(dpid, set()).add(port)
    return {dpid: frozenset(ports) for dpid, ports in out.items()}


def is_shared(settings: MudSettings, dpid: int, port: int) -> bool:
    return (dpid, port) in settings.shared_ports


def _host_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A configured value as a host address; prefixes (my-controller may name one) are not guarded: a spoofing guard
    for a whole prefix would cut off every host of it that is not behind a trusted port."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise GuardConfigError(f"not an address: {text[:64]!r}") from None
    return net.network_address if net.prefixlen == net.max_prefixlen else None


def server_addresses(settings: MudSettings) -> tuple[str, ...]:
    """Every configured server, controller and protected host address, sorted and unique."""
    values: list[str] = [*settings.dns_servers, *settings.ntp_servers, *settings.dhcp_servers, *settings.my_controller,
                         *settings.protected_addresses]  # fmt: skip
    for group in (settings.controllers, settings.my_controller_by_url):
        for addresses in group.values():
            values.extend(addresses)
    found = {a for v in values if (a := _host_address(v)) is not None}
    if len(found) > MAX_GUARDED_ADDRESSES:
        raise GuardConfigError(f"{len(found)} server addresses configured; at most {MAX_GUARDED_ADDRESSES}")
    return tuple(str(a) for a in sorted(found, key=lambda a: (a.version, int(a))))


def guard_rules(addresses: Iterable[str], dhcp_servers: Sequence[str] = ()) -> tuple[FlowRule, ...]:
    """The from_device drops of frames that did not come in on a trusted port and claim what only one may send, and
    the DHCP client guard: the discovery punts copy DHCP client messages before any classification, so these frames
    reach from_device unclassified; whoever sent them, they go on only towards the DHCP servers (the broadcast
    address, the All-DHCP-servers group, the configured servers and relays) and are dropped otherwise."""
    matches: list[dict[str, MatchValue]] = [
        {"eth_type": ETH_IPV4, "ip_proto": IPPROTO_UDP, "udp_src": 67},
        {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP, "udp_src": 547},
        {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": ND_RA},
        {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": ND_REDIRECT},
    ]
    for address in addresses:
        six = ":" in address
        matches.append({"eth_type": ETH_IPV6 if six else ETH_IPV4, "ipv6_src" if six else "ipv4_src": address})
        # nor a neighbour claim of it (ARP, an IPv6 neighbour advertisement): that would divert the devices' traffic
        # for the server to the claimant
        if six:
            matches.append({"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": ND_NA,
                            "ipv6_nd_target": address})  # fmt: skip
        else:
            matches.append({"eth_type": ETH_ARP, "arp_spa": address})
    rules = [
        FlowRule(table="from_device", priority=int(Band.GUARD), match=make_match(metadata=UNTRUSTED, **m),
                 cookie=GUARD_COOKIE)
        for m in matches
    ]  # fmt: skip
    v4 = [s for s in dhcp_servers if ":" not in s]
    v6 = [s for s in dhcp_servers if ":" in s]
    d4: dict[str, MatchValue] = {"eth_type": ETH_IPV4, "ip_proto": IPPROTO_UDP, "udp_src": 68, "udp_dst": 67}
    d6: dict[str, MatchValue] = {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP, "udp_src": 546, "udp_dst": 547}
    allowed = [d6 | {"ipv6_dst": a} for a in (DHCP6_SERVERS_GROUP, *v6)]
    closed = [d6]
    if v4:  # without configured IPv4 servers a unicast renewal may go anywhere (bootstrap.py says why)
        allowed += [d4 | {"ipv4_dst": a} for a in (DHCP4_BROADCAST, *v4)]
        closed.append(d4)
    rules += [FlowRule(table="from_device", priority=int(Band.GUARD) - 1, match=make_match(**m), cookie=GUARD_COOKIE,
                       goto="to_device") for m in allowed]  # fmt: skip
    rules += [FlowRule(table="from_device", priority=int(Band.GUARD) - 2, match=make_match(**m), cookie=GUARD_COOKIE)
              for m in closed]  # fmt: skip
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)


def _port_learning(port: int, metered: bool, priority: int, write: tuple[int, int]) -> FlowRule:
    """Unknown sources on one port: the learning copy, as on any port, with ``write`` into the metadata."""
    rule = FlowRule(
        table="classify_src",
        priority=priority,
        match=make_match(in_port=port),
        cookie=LEARN_COOKIE,
        actions=(Output("CONTROLLER", LEARN_MAX_LEN),),
        goto="source_guard",
        meter=LEARN_METER if metered else None,
        write_metadata=write,
    )
    verify_rule(rule)
    return rule


def device_port_rule(port: int, metered: bool) -> FlowRule:
    """A MUD device's access port: a source without flows of its own there (a new MAC) is classified quarantined --
    bootstrap and the local DNS/NTP defaults only -- from its first frame, and copied to the controller like any
    unknown source (which quarantines it for good and alerts). Without this, its first frames would pass as an
    unmanaged host's while the controller decides."""
    return _port_learning(port, metered, int(Band.LEARN) + 2, (src_metadata(QUARANTINE_PROFILE_ID, 0), SRC_WRITE_MASK))


def trusted_port_rule(port: int, metered: bool) -> FlowRule:
    """Unknown sources on a trusted port: the learning copy, as on any port, and the trusted bit."""
    return _port_learning(port, metered, int(Band.LEARN) + 1, (TRUSTED_BIT, TRUSTED_BIT))


def lease_punt_rules(port: int, metered: bool) -> tuple[FlowRule, ...]:
    """DHCP server messages from a trusted port (DHCPv4 67 -> 68, DHCPv6 547 -> 546): copied whole to the
    controller (its ACKs and Replies bind leased addresses for the IP source guard) and on, with the trusted bit."""
    rules = tuple(
        FlowRule(
            table="classify_src",
            priority=int(Band.PUNT),
            match=make_match(in_port=port, eth_type=ethertype, ip_proto=IPPROTO_UDP, udp_src=server, udp_dst=client),
            cookie=LEASE_COOKIE,
            actions=(Output("CONTROLLER", NO_BUFFER),),
            goto="source_guard",
            meter=port_meter(port) if metered else None,
            write_metadata=(TRUSTED_BIT, TRUSTED_BIT),
        )
        for ethertype, server, client in ((ETH_IPV4, 67, 68), (ETH_IPV6, 547, 546))
    )
    for rule in rules:
        verify_rule(rule)
    return rules
