"""The flows that connect the MUD pipeline to a real network: discovery punts, learning and L2 forwarding.

* **Discovery punt** (classify_src, :attr:`Band.PUNT`, per access port): DHCPv4 and DHCPv6 client messages are
  copied whole to the controller (``OFPCML_NO_BUFFER``) and continue down the pipeline, so the device still gets
  its lease; LLDP goes only to the controller (bridges must not forward it). The punt sits above anti-spoofing so
  the controller sees a moved or spoofing device's announcement. Each port's punts share one OpenFlow meter
  (THREATS.md R13): a meter governs the whole flow entry, so over the rate a port's DHCP is dropped, not only its
  copy -- a legitimate client sends a handful of these per minute, a flood is what the meter is for.
* **Learning** (classify_src, :attr:`Band.LEARN`): a frame from an unknown source is copied (headers only) to the
  controller through a per-switch meter and goes on; the controller installs the host's
  ``(in_port, eth_src) -> go on`` flow so its next frames stay in the switch.
* **Forwarding** (forward): learned and managed MACs go out of their port; group addresses and unknown
  unicast go where :mod:`mud_ryu.guard.floods` says (never to a MUD device's port unless its policy lets them).

Cookies: kind FORWARD, owner 0 for flows shared by the switch, owner = device id for a managed device's own
forwarding flow, so reconciliation recognises every one of them.
"""

from __future__ import annotations

from mud_ryu.compiler.flowrule import FlowRule, MatchValue, Output, make_match
from mud_ryu.compiler.pipeline import TRUSTED_BIT, Band, CookieKind, cookie, verify_rule

ETH_IPV4, ETH_IPV6, ETH_LLDP = 0x0800, 0x86DD, 0x88CC
IPPROTO_UDP = 17
NO_BUFFER = 0xFFFF  # OFPCML_NO_BUFFER: the whole frame, not a buffer id
LEARN_MAX_LEN = 128  # enough for Ethernet + VLAN + IP headers
LEARN_METER = 1  # per-switch meter of the learning copies; port meters are PORT_METER_BASE + port
PORT_METER_BASE = 16
MAX_METERED_PORT = 0xFFFF
FORWARD_SHARED = cookie(CookieKind.FORWARD)
# The sub id tells the app which flow sent a packet-in: a discovery punt (scan it) or a learning copy.
PUNT_SUB, LEARN_SUB, DNS_SUB = 1, 2, 3
DNS_METER = 2  # per-switch meter of the DNS copies
PUNT_COOKIE = cookie(CookieKind.FORWARD, sub=PUNT_SUB)
LEARN_COOKIE = cookie(CookieKind.FORWARD, sub=LEARN_SUB)

_PUNT_MATCHES: tuple[tuple[dict[str, MatchValue], bool], ...] = (
    ({"eth_type": ETH_IPV4, "ip_proto": IPPROTO_UDP, "udp_src": 68, "udp_dst": 67}, True),
    ({"eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP, "udp_src": 546, "udp_dst": 547}, True),
    ({"eth_type": ETH_LLDP}, False),
)


def port_meter(port: int) -> int | None:
    return PORT_METER_BASE + port if port <= MAX_METERED_PORT else None


def punt_rules(port: int, metered: bool) -> tuple[FlowRule, ...]:
    """The discovery punts of one access port."""
    rules = []
    for fields, forward in _PUNT_MATCHES:
        rules.append(
            FlowRule(
                table="classify_src",
                priority=int(Band.PUNT),
                match=make_match(in_port=port, **fields),
                cookie=PUNT_COOKIE,
                actions=(Output("CONTROLLER", NO_BUFFER),),
                goto="source_guard" if forward else None,
                meter=port_meter(port) if metered else None,
            )
        )
    for rule in rules:
        verify_rule(rule)
    return tuple(rules)


def switch_rules(metered: bool, trust_unknown: bool = False) -> tuple[FlowRule, ...]:
    """The learning copy, once per switch (flooding: :mod:`mud_ryu.guard.floods`). ``trust_unknown``: the switch has
    no configured trusted port, so the learning flow marks every unknown source trusted (:mod:`mud_ryu.guard.ports`)."""
    rules = (
        FlowRule(
            table="classify_src",
            priority=int(Band.LEARN),
            match=(),
            cookie=LEARN_COOKIE,
            actions=(Output("CONTROLLER", LEARN_MAX_LEN),),
            goto="source_guard",
            meter=LEARN_METER if metered else None,
            write_metadata=(TRUSTED_BIT, TRUSTED_BIT) if trust_unknown else None,
        ),
    )  # fmt: skip
    for rule in rules:
        verify_rule(rule)
    return rules


def learned_host_rules(mac: str, port: int, trusted: bool = False) -> tuple[FlowRule, ...]:
    """An unmanaged host: its source is known on this port, frames to it go out of it. ``trusted``: the port is
    trusted, so the host's frames carry the trusted bit (it may claim server addresses)."""
    rules = (
        FlowRule(
            table="classify_src",
            priority=int(Band.LEARNED),
            match=make_match(in_port=port, eth_src=mac),
            cookie=FORWARD_SHARED,
            goto="source_guard",
            write_metadata=(TRUSTED_BIT, TRUSTED_BIT) if trusted else None,
        ),
        FlowRule(
            table="forward", priority=int(Band.LEARNED), match=make_match(eth_dst=mac), cookie=FORWARD_SHARED,
            actions=(Output(port),),
        ),
    )  # fmt: skip
    for rule in rules:
        verify_rule(rule)
    return rules


def device_forward_rule(mac: str, port: int, device_id: int) -> FlowRule:
    """Frames to a managed device go out of its port (its ACLs already ran in the earlier tables)."""
    rule = FlowRule(
        table="forward",
        priority=int(Band.LEARNED) + 1,
        match=make_match(eth_dst=mac),
        cookie=cookie(CookieKind.FORWARD, device_id),
        actions=(Output(port),),
    )
    verify_rule(rule)
    return rule


def dns_punt_rules(classify: tuple[FlowRule, ...], metered: bool) -> tuple[FlowRule, ...]:
    """DNS of a device whose profile uses DNS names, for the controller's bindings. Its queries are copied to the
    controller and go on. The answers sent to it are *held*: they go to the controller only, which installs the
    flows for the answered addresses, puts a barrier behind them and then releases the answer to the device
    (packet-out). So the device never learns an address before the switch allows it (R15 make-before-break, also
    for the first answer and for rotations), and spoofed or unsolicited answers never reach it. Built from the
    device's own classification flows, one priority above them, so queries classify exactly the same way."""
    out: list[FlowRule] = []
    for rule in classify:
        if rule.write_metadata is None or rule.goto is None:
            continue  # the anti-spoofing drop
        query = rule.table == "classify_src"
        port_field = "udp_dst" if query else "udp_src"
        for eth_type in (ETH_IPV4, ETH_IPV6):
            out.append(
                FlowRule(
                    table=rule.table,
                    priority=rule.priority + 1,
                    match=make_match(**dict(rule.match), eth_type=eth_type, ip_proto=IPPROTO_UDP, **{port_field: 53}),
                    cookie=rule.cookie | DNS_SUB,
                    actions=(Output("CONTROLLER", NO_BUFFER),),
                    goto=rule.goto if query else None,
                    write_metadata=rule.write_metadata if query else None,
                    meter=DNS_METER if metered else None,
                )
            )
    for rule in out:
        verify_rule(rule)
    return tuple(out)
