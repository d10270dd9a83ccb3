"""Per-device flows: classification (<= 3 flows per device) and static L2 forwarding.

classify_src matches ``in_port`` + ``eth_src`` and writes the source half of the metadata;
an anti-spoof drop catches the same MAC on any other port; classify_dst matches ``eth_dst``
and writes the destination half. The profile's ACL rules then match on metadata, so devices
sharing a MUD file share those rules.

Priorities: :attr:`Band.ANTI_SPOOF` (40000) is above :attr:`Band.CLASSIFY` (30000) in the
pipeline declaration, but OpenFlow cannot say "this MAC on any port *but* N", so a wildcard-port
drop above the exact-port classifier would drop the device itself. The exact-port classify_src
flow is therefore placed at ``ANTI_SPOOF + 1`` and the drop at ``ANTI_SPOOF``: the more specific
entry wins, as it must. classify_dst has no such pair and uses ``CLASSIFY``.
"""

from __future__ import annotations

from mud_ryu.compiler.context import DeviceSpec, normalize_mac
from mud_ryu.compiler.flowrule import FlowRule, Output, make_match
from mud_ryu.compiler.pipeline import (
    DST_WRITE_MASK,
    MAX_MFG_ID,
    MAX_PROFILE_ID,
    SRC_WRITE_MASK,
    Band,
    CookieKind,
    cookie,
    dst_metadata,
    src_metadata,
    verify_rule,
)
from mud_ryu.compiler.types import CompileError

CLASSIFY_SRC_PRIORITY = int(Band.ANTI_SPOOF) + 1
MULTICAST_BIT = ("01:00:00:00:00:00", "01:00:00:00:00:00")
MAX_OF_PORT = 0xFFFFFF00  # OFPP_MAX: above are reserved ports


def _check_device(dev: DeviceSpec) -> str:
    try:
        mac = normalize_mac(dev.mac)
    except ValueError as exc:
        raise CompileError("bad-device", "", str(exc)) from None
    if int(mac[:2], 16) & 1:
        raise CompileError("bad-device", "", f"{mac} is a group (multicast) address")
    for name in ("device_port", "uplink_port"):
        port = getattr(dev, name)
        if not 1 <= port <= MAX_OF_PORT:
            raise CompileError("bad-device", "", f"{name} {port} is not an OpenFlow port number")
    if not 0 <= dev.device_id < (1 << 20):
        raise CompileError("bad-device", "", f"device id {dev.device_id} out of range")
    return mac


def device_rules(dev: DeviceSpec, profile_id: int, mfg_id: int) -> tuple[FlowRule, ...]:
    """The 3 classification flows of one device (cookie kind DEVICE, owner = device id)."""
    mac = _check_device(dev)
    if not 1 <= profile_id <= MAX_PROFILE_ID or not 0 <= mfg_id <= MAX_MFG_ID:
        raise CompileError("bad-device", "", f"profile id {profile_id} / manufacturer id {mfg_id} out of range")
    ck = cookie(CookieKind.DEVICE, dev.device_id)
    rules = (
        FlowRule(
            table="classify_src",
            priority=CLASSIFY_SRC_PRIORITY,
            match=make_match(in_port=dev.device_port, eth_src=mac),
            cookie=ck,
            write_metadata=(src_metadata(profile_id, mfg_id), SRC_WRITE_MASK),
            goto="source_guard",
        ),
        FlowRule(table="classify_src", priority=int(Band.ANTI_SPOOF), match=make_match(eth_src=mac), cookie=ck),
        FlowRule(
            table="classify_dst",
            priority=int(Band.CLASSIFY),
            match=make_match(eth_dst=mac),
            cookie=ck,
            write_metadata=(dst_metadata(profile_id, mfg_id), DST_WRITE_MASK),
            goto="from_device",
        ),
    )
    for rule in rules:
        verify_rule(rule)
    return rules


def static_forward_rules(dev: DeviceSpec) -> tuple[FlowRule, ...]:
    """Forwarding for a one-device lab switch (``mud-ryu compile``): frames to the device's MAC
    and broadcast/multicast from the uplink go to the device port, everything from the device
    goes to the uplink. Anything else (unicast to unknown MACs from the uplink) is dropped."""
    mac = _check_device(dev)
    ck = cookie(CookieKind.FORWARD, dev.device_id)
    rules = (
        FlowRule(
            table="forward", priority=300, match=make_match(eth_dst=mac), cookie=ck, actions=(Output(dev.device_port),)
        ),
        FlowRule(
            table="forward",
            priority=200,
            match=make_match(in_port=dev.uplink_port, eth_dst=MULTICAST_BIT),
            cookie=ck,
            actions=(Output(dev.device_port),),
        ),
        FlowRule(
            table="forward",
            priority=100,
            match=make_match(in_port=dev.device_port),
            cookie=ck,
            actions=(Output(dev.uplink_port),),
        ),
    )
    for rule in rules:
        verify_rule(rule)
    return rules
