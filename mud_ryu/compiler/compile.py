"""MUD model + network context -> neutral :class:`FlowRule` records (OpenFlow 1.3 pipeline).

A profile's rules are shared by every device using that MUD file: they match the profile id
in the metadata written by the device's classification flows (:mod:`mud_ryu.compiler.devflows`).

Within an ACL table, ACE *n* of a direction (ACLs in policy order, ACEs in list order) owns the
priority slots ``ACE_TOP - n*ACE_STEP`` downward: its flows sit one below the top of the slot,
and the top holds its direction-initiated SYN guard, if any. Below every ACE come the RFC 8520
defaults (local DNS/NTP, :attr:`Band.DEFAULTS`) so a MUD ``drop`` ACE overrides them, then the
pipeline's explicit default deny.

direction-initiated (RFC 8520 s8) is enforced statelessly and conservatively: for an ACE whose
ACL direction differs from its ``direction-initiated``, a higher-priority drop of the same
match with ``tcp_flags=+syn-ack`` (SYN set, ACK clear) stops the side that must not initiate
from opening a connection through that ACE, while SYN-ACKs and established segments pass. It
cannot tell a stray mid-connection naked SYN from a new one; both are dropped. A ``drop`` ACE
with direction-initiated drops all its packets (narrower would need connection state).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from itertools import chain
from operator import attrgetter

from mud_ryu.compiler.ace_match import AceExpansion, AceScope, expand_ace, network_value, syn_guards
from mud_ryu.compiler.bootstrap import pipeline_rules
from mud_ryu.compiler.context import (
    DNS_CONTROLLER_URN,
    FIRST_PROFILE_ID,
    NTP_CONTROLLER_URN,
    DeviceSpec,
    NetworkContext,
    url_authority,
)
from mud_ryu.compiler.devflows import device_rules, static_forward_rules
from mud_ryu.compiler.flowrule import FlowRule, make_match
from mud_ryu.compiler.pipeline import (
    ACE_STEP,
    MAX_ACES_PER_DIRECTION,
    MAX_PROFILE_ID,
    OWNER_MASK,
    QUARANTINE_PROFILE_ID,
    Band,
    CookieKind,
    cookie,
    verify_rule,
)
from mud_ryu.compiler.types import (
    AceFlowCount,
    AddressSetRef,
    CompiledProfile,
    CompileError,
    ProfileGroups,
    RuleGroup,
    SwitchFlows,
)
from mud_ryu.mudfile.model import Ace, Acl, Direction, Finding, MudFile

__all__ = [
    "AceFlowCount",
    "AddressSetRef",
    "CompileError",
    "CompiledProfile",
    "ProfileGroups",
    "RuleGroup",
    "SwitchFlows",
    "build_switch",
    "compile_profile",
    "compile_switch",
    "device_rules",
    "pipeline_rules",
    "profile_cookie_selectors",
    "recompile_sets",
    "static_forward_rules",
]

ACL_TABLE = {Direction.FROM_DEVICE: ("from_device", "to_device"), Direction.TO_DEVICE: ("to_device", "forward")}
DEFAULT_SERVICES = ((DNS_CONTROLLER_URN, 53), (NTP_CONTROLLER_URN, 123))  # RFC 8520 appendix: UDP only


class _SetRegistry:
    """Allocates cookie sub ids per distinct combination of address sets, in first-use order."""

    def __init__(self, allocated: tuple[AddressSetRef, ...] = ()) -> None:
        self._subs: dict[tuple[str, ...], int] = {ref.keys: ref.sub for ref in allocated}

    def sub(self, keys: tuple[str, ...]) -> int:
        if keys not in self._subs:
            if len(self._subs) >= 0xFFFF:
                raise CompileError("too-many-address-sets", "", "more than 65535 address-set combinations")
            self._subs[keys] = len(self._subs) + 1
        return self._subs[keys]

    def refs(self) -> tuple[AddressSetRef, ...]:
        return tuple(AddressSetRef(sub, keys) for keys, sub in self._subs.items())


def _defaults(direction: Direction, scope: AceScope, registry: _SetRegistry, warnings: list[Finding]) -> list[FlowRule]:
    """RFC 8520 default ACEs: UDP to/from the local DNS (53) and NTP (123) servers. Without
    configured servers there are no such flows (never a wildcard)."""
    table, next_table = ACL_TABLE[direction]
    rules: list[FlowRule] = []
    for urn, port in DEFAULT_SERVICES:
        servers = scope.ctx.controllers.get(urn) or ()
        if not servers:
            if direction is Direction.FROM_DEVICE:
                warnings.append(Finding("no-default-servers", "", f"no servers for {urn}: default not installed"))
            continue
        ck = cookie(CookieKind.ADDRESS_SET, scope.profile_id, sub=registry.sub((f"controller:{urn}",)))
        for text in servers:
            try:
                net = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise CompileError("bad-context", "", f"{urn}: not an address: {text[:64]!r}") from None
            fam = "ipv4" if net.version == 4 else "ipv6"
            if direction is Direction.FROM_DEVICE:
                fields = {f"{fam}_dst": network_value(net), "udp_dst": port}
            else:
                fields = {f"{fam}_src": network_value(net), "udp_src": port}
            match = make_match(
                metadata=scope.own_metadata, eth_type=0x0800 if net.version == 4 else 0x86DD, ip_proto=17, **fields
            )
            rules.append(FlowRule(table=table, priority=int(Band.DEFAULTS), match=match, cookie=ck, goto=next_table))
    return rules


def _ace_rules(
    exp: AceExpansion, table: str, goto: str | None, top: int, profile_id: int, registry: _SetRegistry
) -> list[FlowRule]:
    """The flows of one ACE in its priority slot: SYN guards at ``top``, the ACE below."""
    if exp.set_keys:
        ck = cookie(CookieKind.ADDRESS_SET, profile_id, sub=registry.sub(exp.set_keys))
    else:
        ck = cookie(CookieKind.PROFILE, profile_id)
    out: list[FlowRule] = []
    if exp.syn_guard:
        out.extend(FlowRule(table=table, priority=top, match=g, cookie=ck) for g in syn_guards(exp.matches))
    out.extend(FlowRule(table=table, priority=top - 1, match=m, cookie=ck, goto=goto) for m in exp.matches)
    return out


def _verified(rules: list[FlowRule]) -> tuple[FlowRule, ...]:
    """First of each (table, priority, match), verified. Per group this is the whole profile's deduplication:
    groups never share a (table, priority) slot (see :class:`RuleGroup`)."""
    unique: dict[tuple[str, int, object], FlowRule] = {}
    for rule in rules:
        unique.setdefault((rule.table, rule.priority, rule.match), rule)
    for rule in unique.values():
        verify_rule(rule)
    return tuple(unique.values())


def _slots(mud: MudFile) -> Iterator[tuple[Direction, int, Acl | None, Ace | None]]:
    """Each direction's ACEs in policy order with their index, then that direction's defaults (``None``)."""
    for direction in (Direction.FROM_DEVICE, Direction.TO_DEVICE):
        index = 0
        for acl in mud.policy(direction):
            for ace in acl.aces:
                yield direction, index, acl, ace
                index += 1
        yield direction, index, None, None


def _group(
    mud: MudFile, ctx: NetworkContext, profile_id: int, slot: tuple[Direction, int, Acl | None, Ace | None],
    registry: _SetRegistry,
) -> RuleGroup:  # fmt: skip
    """Expand one slot (an ACE or a direction's defaults) against ``ctx``, taking cookie subs from ``registry``."""
    direction, index, acl, ace = slot
    warnings: list[Finding] = []
    if acl is None or ace is None:
        scope = AceScope(direction, profile_id, mud.mud_url, ctx, "")
        rules = _defaults(direction, scope, registry, warnings)
        keys = frozenset(f"controller:{urn}" for urn, _ in DEFAULT_SERVICES)  # depends on them even when empty
        used = tuple((f"controller:{urn}",) for urn, _ in DEFAULT_SERVICES if ctx.controllers.get(urn))
        return RuleGroup(direction, index, None, None, None, keys, used, _verified(rules), tuple(warnings))
    path = f"{direction.value}/{acl.name}/{ace.name}"
    if index >= MAX_ACES_PER_DIRECTION:
        raise CompileError("too-many-aces", path, f"over {MAX_ACES_PER_DIRECTION} ACEs per direction")
    table, next_table = ACL_TABLE[direction]
    exp = expand_ace(ace, acl.type, AceScope(direction, profile_id, mud.mud_url, ctx, path))
    top = int(Band.ACE_TOP) - index * ACE_STEP
    rules = _ace_rules(exp, table, next_table if ace.forwarding.allows else None, top, profile_id, registry)
    count = AceFlowCount(direction, acl.name, ace.name, len(rules))
    subs = (exp.set_keys,) if exp.set_keys else ()
    keys = frozenset(exp.set_keys)
    return RuleGroup(direction, index, acl, ace, count, keys, subs, _verified(rules), exp.warnings)


def _by_key(groups: list[RuleGroup]) -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for position, group in enumerate(groups):
        for key in group.set_keys:
            index.setdefault(key, []).append(position)
    return {key: tuple(positions) for key, positions in index.items()}


def _assemble(
    mud: MudFile, ctx: NetworkContext, profile_id: int, groups: list[RuleGroup], registry: _SetRegistry,
    by_key: Mapping[str, tuple[int, ...]],
) -> CompiledProfile:  # fmt: skip
    basis = ProfileGroups(mud, ctx.profile_ids, ctx.manufacturer_ids, tuple(groups), by_key)
    return CompiledProfile(
        profile_id,
        tuple(chain.from_iterable(map(attrgetter("rules"), groups))),
        tuple(chain.from_iterable(map(attrgetter("warnings"), groups))),
        tuple(g.count for g in groups if g.count is not None),
        registry.refs(),
        basis,
    )


def compile_profile(mud: MudFile, ctx: NetworkContext, profile_id: int) -> CompiledProfile:
    """The shared ACL rules of one profile. Raises :class:`CompileError` for what cannot be
    enforced exactly; returns warnings for ACEs that compile to nothing for now."""
    if not FIRST_PROFILE_ID <= profile_id <= MAX_PROFILE_ID:
        raise CompileError("bad-context", "", f"profile id {profile_id} outside {FIRST_PROFILE_ID}..{MAX_PROFILE_ID}")
    registry = _SetRegistry()
    groups = [_group(mud, ctx, profile_id, slot, registry) for slot in _slots(mud)]
    return _assemble(mud, ctx, profile_id, groups, registry, _by_key(groups))


def recompile_sets(
    previous: CompiledProfile, mud: MudFile, ctx: NetworkContext, changed: frozenset[str]
) -> CompiledProfile:
    """``compile_profile(mud, ctx, previous.profile_id)`` when, since ``previous`` was compiled, only the address
    sets whose keys are in ``changed`` (``dns:<name>``, ``controller:<uri>``, ``my-controller``,
    ``local-networks``) may have changed in ``ctx``: re-expands only the groups naming one of them (found through
    the key index) and reuses every other group as it is.

    Cookie subs are allocated per key combination in profile order, and an ACE names the same keys whatever their
    addresses, so a re-expanded ACE keeps its sub. Only the defaults take a sub just while their servers exist: when
    DNS or NTP servers appear or vanish, later subs move, and this falls back to a full compile, as it does when
    ``previous`` has no groups, ``mud`` differs from the file it was compiled from, or the id maps of ``ctx`` differ
    (ids are not address sets; the caller cannot name them in ``changed``)."""
    basis = previous.groups
    if (
        basis is None
        or (basis.mud is not mud and basis.mud != mud)
        or basis.profile_ids != ctx.profile_ids
        or basis.manufacturer_ids != ctx.manufacturer_ids
    ):
        return compile_profile(mud, ctx, previous.profile_id)
    affected = sorted({position for key in changed for position in basis.by_key.get(key, ())})
    if not affected:
        return previous
    registry = _SetRegistry(previous.address_sets)
    groups = list(basis.groups)
    for position in affected:  # in profile order: the first refusal is the one a full compile would give
        old = groups[position]
        new = _group(mud, ctx, previous.profile_id, (old.direction, old.index, old.acl, old.ace), registry)
        if new.sub_keys != old.sub_keys:
            return compile_profile(mud, ctx, previous.profile_id)  # the defaults took or gave up a sub: later ones move
        groups[position] = new
    return _assemble(mud, ctx, previous.profile_id, groups, registry, basis.by_key)


def quarantine_profile(ctx: NetworkContext) -> CompiledProfile:
    """The quarantine profile (reserved id 1): only the RFC 8520 local DNS and NTP defaults. With the bootstrap band
    (DHCP, ARP, ND) a quarantined device may get an address, resolve names and set its clock, nothing else."""
    registry = _SetRegistry()
    rules: list[FlowRule] = []
    warnings: list[Finding] = []
    for direction in (Direction.FROM_DEVICE, Direction.TO_DEVICE):
        scope = AceScope(direction, QUARANTINE_PROFILE_ID, "", ctx, "")
        rules.extend(_defaults(direction, scope, registry, warnings))
    for rule in rules:
        verify_rule(rule)
    return CompiledProfile(QUARANTINE_PROFILE_ID, tuple(rules), tuple(warnings), (), registry.refs())


def profile_cookie_selectors(profile_id: int, sub: int | None = None) -> tuple[tuple[int, int], ...]:
    """``(cookie, cookie_mask)`` pairs selecting a profile's flows: both its PROFILE and its
    ADDRESS_SET flows, or with ``sub`` only the flows of that address-set combination."""
    if sub is not None:
        return ((cookie(CookieKind.ADDRESS_SET, profile_id, sub=sub), OWNER_MASK | 0xFFFF),)
    return tuple((cookie(kind, profile_id), OWNER_MASK) for kind in (CookieKind.PROFILE, CookieKind.ADDRESS_SET))


def build_switch(mud: MudFile, dev: DeviceSpec, ctx: NetworkContext) -> SwitchFlows:
    """The complete flow set of a switch holding just ``dev`` (static forwarding), with warnings.
    Missing profile/manufacturer ids for the file's own URL are allocated in a copy of ``ctx``."""
    try:
        ctx = ctx.with_identity(mud.mud_url)
    except ValueError as exc:
        raise CompileError("bad-context", "", str(exc)) from None
    profile_id = ctx.profile_id(mud.mud_url)
    mfg_id = ctx.manufacturer_id(url_authority(mud.mud_url))
    assert profile_id is not None and mfg_id is not None  # with_identity guarantees both
    profile = compile_profile(mud, ctx, profile_id)
    rules = (*pipeline_rules(), *device_rules(dev, profile_id, mfg_id), *profile.rules, *static_forward_rules(dev))
    return SwitchFlows(rules=rules, profile=profile, warnings=profile.warnings)


def compile_switch(mud: MudFile, dev: DeviceSpec, ctx: NetworkContext) -> tuple[FlowRule, ...]:
    """The COMPLETE flow set for one device on one switch: exactly what gets installed."""
    return build_switch(mud, dev, ctx).rules
