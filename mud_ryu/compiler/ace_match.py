"""One ACE -> the OpenFlow 1.3 matches that enforce it exactly.

An ACE becomes the cross product of: IP family (one, or both for an ACL that does not fix
it), source and destination address-set members, and masked source/destination port blocks.
Every step narrows; nothing is ever dropped from a match. Leaves OpenFlow 1.3 cannot express
(``unsupported`` in the model) and contradictions (``tcp`` with ``protocol 17``) raise
:class:`CompileError`; address sets that are unknown or empty make an ACE match nothing,
with a warning, because enforcing it without them would widen it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

from mud_ryu.compiler.context import NetworkContext, url_authority
from mud_ryu.compiler.flowrule import MatchValue, make_match
from mud_ryu.compiler.pipeline import (
    DST_MANAGED_BIT,
    DST_MFG_MASK,
    DST_MFG_SHIFT,
    DST_PROFILE_MASK,
    DST_PROFILE_SHIFT,
    MAX_MFG_ID,
    MAX_PROFILE_ID,
    SRC_MANAGED_BIT,
    SRC_MFG_MASK,
    SRC_MFG_SHIFT,
    SRC_PROFILE_MASK,
    SRC_PROFILE_SHIFT,
)
from mud_ryu.compiler.portmask import PortValue, port_match_values
from mud_ryu.compiler.types import CompileError
from mud_ryu.dns.types import normalize_name
from mud_ryu.mudfile.model import Ace, Direction, Finding, Matches, MudMatch

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Match = tuple[tuple[str, MatchValue], ...]

MAX_FLOWS_PER_ACE = 4096
ETH_TYPE = {4: 0x0800, 6: 0x86DD}
ICMP_PROTO = {4: 1, 6: 58}
TCP_SYN, TCP_ACK = 0x002, 0x010
SYN_ONLY = (TCP_SYN, TCP_SYN | TCP_ACK)  # SYN set, ACK clear: a connection being opened


@dataclass(frozen=True, slots=True)
class AceScope:
    """What an ACE is compiled against: its direction, the profile and the context."""

    direction: Direction
    profile_id: int
    mud_url: str
    ctx: NetworkContext
    path: str

    @property
    def own_metadata(self) -> tuple[int, int]:
        if self.direction is Direction.FROM_DEVICE:
            return (self.profile_id << SRC_PROFILE_SHIFT) | SRC_MANAGED_BIT, SRC_PROFILE_MASK | SRC_MANAGED_BIT
        return (self.profile_id << DST_PROFILE_SHIFT) | DST_MANAGED_BIT, DST_PROFILE_MASK | DST_MANAGED_BIT

    @property
    def remote_side(self) -> str:
        return "dst" if self.direction is Direction.FROM_DEVICE else "src"


@dataclass(frozen=True, slots=True)
class AceExpansion:
    matches: tuple[Match, ...]
    set_keys: tuple[str, ...]  # address sets the flows depend on (empty: none)
    syn_guard: bool  # accept ACE whose direction-initiated differs from its ACL direction
    warnings: tuple[Finding, ...]


def family_of_acl(acl_type: str | None) -> int | None:
    t = (acl_type or "").rsplit(":", 1)[-1]
    if "ipv4" in t and "ipv6" not in t:
        return 4
    if "ipv6" in t and "ipv4" not in t:
        return 6
    return None


def _network(text: str, path: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise CompileError("bad-context", path, f"not an address or network: {text[:64]!r}") from None


def network_value(net: Network) -> MatchValue:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


def _intersect(family: int, sets: list[tuple[Network, ...]]) -> list[Network] | None:
    """Members of every set (of this family); ``None`` when the side is unconstrained."""
    if not sets:
        return None
    current = [n for n in sets[0] if n.version == family]
    for other in sets[1:]:
        nxt: list[Network] = []
        for a in current:
            for b in other:
                if b.version != family:
                    continue
                if a.subnet_of(b):  # type: ignore[arg-type]
                    nxt.append(a)
                elif b.subnet_of(a):  # type: ignore[arg-type]
                    nxt.append(b)
        current = nxt
    return sorted(set(current), key=lambda n: (int(n.network_address), n.prefixlen))


def _check_supported(m: Matches, path: str) -> None:
    for name, part in (("ipv4", m.ipv4), ("ipv6", m.ipv6), ("tcp", m.tcp), ("udp", m.udp), ("icmp", m.icmp)):
        unsupported = getattr(part, "unsupported", ()) if part is not None else ()
        if unsupported:
            raise CompileError(
                "unsupported-match", path, f"{name} leaves not enforceable in OpenFlow 1.3: {', '.join(unsupported)}"
            )
    if m.ipv4 is not None and m.ipv6 is not None:
        raise CompileError("conflicting-match", path, "an ACE cannot match both ipv4 and ipv6")
    if sum(x is not None for x in (m.tcp, m.udp, m.icmp)) > 1:
        raise CompileError("conflicting-match", path, "an ACE can match only one of tcp, udp, icmp")


def _family(m: Matches, acl_type: str | None, path: str, needs_l3: bool) -> int | None:
    fam = 4 if m.ipv4 is not None else 6 if m.ipv6 is not None else family_of_acl(acl_type)
    ethertype = m.eth.ethertype if m.eth is not None else None
    if ethertype is not None:
        by_eth = {0x0800: 4, 0x86DD: 6}.get(ethertype)
        if needs_l3 and by_eth is None:
            # The L3 fields would overwrite eth_type: an ARP ACE with a port would become an IP flow.
            raise CompileError(
                "conflicting-match", path, f"ethertype {ethertype:#06x} is not IP, yet IP fields are matched"
            )
        if fam is not None and by_eth != fam:
            raise CompileError("conflicting-match", path, f"ethertype {ethertype:#06x} contradicts IPv{fam}")
        fam = by_eth if fam is None else fam
    return fam


def _remote_metadata(
    mud: MudMatch | None, scope: AceScope, warnings: list[Finding], fail_closed: bool
) -> tuple[int, int] | None:
    """Metadata bits for manufacturer/same-manufacturer/model of the other side; ``None`` when
    an id is unknown (the ACE then matches no device). With ``fail_closed`` (a drop ACE) an
    unknown id drops the constraint instead: the drop then covers every peer, because a drop
    that matched nobody would let a later, broader accept through (a widening)."""
    if mud is None:
        return 0, 0
    mfg_ids: set[int] = set()
    for authority in filter(None, (mud.manufacturer, url_authority(scope.mud_url) if mud.same_manufacturer else None)):
        mid = scope.ctx.manufacturer_id(authority)
        if mid is None or not 1 <= mid <= MAX_MFG_ID:
            warnings.append(Finding("unknown-manufacturer", scope.path, f"no manufacturer id for {authority[:80]!r}"))
            if fail_closed:
                _warn_broadened(warnings, scope.path, f"manufacturer {authority[:80]!r}")
                continue
            return None
        mfg_ids.add(mid)
    if len(mfg_ids) > 1:
        return None  # two different manufacturers at once: matches nobody
    profile: int | None = None
    if mud.model:
        profile = scope.profile_id if mud.model == scope.mud_url else scope.ctx.profile_id(mud.model)
        if profile is None or not 1 <= profile <= MAX_PROFILE_ID:
            warnings.append(Finding("unknown-model", scope.path, f"no profile id for model {mud.model[:120]!r}"))
            if not fail_closed:
                return None
            _warn_broadened(warnings, scope.path, f"model {mud.model[:120]!r}")
            profile = None
    value = mask = 0
    remote_src = scope.remote_side == "src"
    if mfg_ids:
        mid = mfg_ids.pop()
        value |= mid << (SRC_MFG_SHIFT if remote_src else DST_MFG_SHIFT)
        mask |= SRC_MFG_MASK if remote_src else DST_MFG_MASK
    if profile is not None:
        value |= profile << (SRC_PROFILE_SHIFT if remote_src else DST_PROFILE_SHIFT)
        mask |= SRC_PROFILE_MASK if remote_src else DST_PROFILE_MASK
    if mask:
        managed = SRC_MANAGED_BIT if remote_src else DST_MANAGED_BIT
        value, mask = value | managed, mask | managed
    return value, mask


def _address_sets(
    m: Matches, scope: AceScope, warnings: list[Finding], fail_closed: bool
) -> tuple[dict[str, list[tuple[Network, ...]]], list[str], bool]:
    """Per side, the address constraints; the set keys used; whether any set is unknown/empty.
    With ``fail_closed`` (a drop ACE) an empty set removes the address constraint, so the drop
    covers every address until the set is known (see :func:`_remote_metadata`)."""
    sides: dict[str, list[tuple[Network, ...]]] = {"src": [], "dst": []}
    keys: list[str] = []
    missing = False
    ctx = scope.ctx

    def add(side: str, key: str, members: tuple[str, ...] | None) -> None:
        nonlocal missing
        keys.append(key)
        if not members:
            missing = True
            warnings.append(Finding("unresolved-address-set", scope.path, f"{key[:120]} has no addresses"))
            if fail_closed:
                _warn_broadened(warnings, scope.path, key[:120])
                return
        sides[side].append(tuple(_network(a, scope.path) for a in members or ()))

    ip = m.ip
    if ip is not None:
        for side, net in (("src", ip.src_network), ("dst", ip.dst_network)):
            if net is not None:
                sides[side].append((_network(net, scope.path),))
        for side, name in (("src", ip.src_dnsname), ("dst", ip.dst_dnsname)):
            if name is not None:
                add(side, f"dns:{name}", _dns_addresses(ctx, name))
    mud = m.mud
    if mud is not None:
        remote = scope.remote_side
        if mud.local_networks:
            add(remote, "local-networks", ctx.local_networks)
        if mud.controller:
            add(remote, f"controller:{mud.controller}", ctx.controllers.get(mud.controller))
        if mud.my_controller:
            add(remote, "my-controller", ctx.my_controller.get(scope.mud_url))
    return sides, sorted(set(keys)), missing


def _dns_addresses(ctx: NetworkContext, name: str) -> tuple[str, ...] | None:
    """The addresses bound to ``name`` as the file spells it, else to its binding key (lower case, no trailing dot):
    ``example.com.`` and ``example.com`` are one name, and a profile is compiled before the binding table knows how
    it spells its names (it watches them once in force)."""
    found = ctx.dns.get(name)
    if found is None:
        key = normalize_name(name)
        found = ctx.dns.get(key) if key is not None else None
    return found


def _proto(m: Matches, family: int, path: str) -> int | None:
    wanted: set[int] = set()
    ip = m.ip
    if ip is not None and ip.protocol is not None:
        wanted.add(ip.protocol)
    if m.tcp is not None:
        wanted.add(6)
    if m.udp is not None:
        wanted.add(17)
    if m.icmp is not None:
        wanted.add(ICMP_PROTO[family])
    if len(wanted) > 1:
        raise CompileError("conflicting-match", path, f"protocols {sorted(wanted)} in one ACE")
    return wanted.pop() if wanted else None


def _l3_fields(m: Matches, family: int, path: str) -> dict[str, MatchValue]:
    f: dict[str, MatchValue] = {"eth_type": ETH_TYPE[family]}
    proto = _proto(m, family, path)
    if proto is not None:
        f["ip_proto"] = proto
    ip = m.ip
    if ip is not None:
        if ip.dscp is not None:
            f["ip_dscp"] = ip.dscp
        if ip.ecn is not None:
            f["ip_ecn"] = ip.ecn
        if ip.flow_label is not None:
            if family != 6:
                raise CompileError("conflicting-match", path, "flow-label is an IPv6 field")
            f["ipv6_flabel"] = ip.flow_label
    if m.icmp is not None:
        prefix = "icmpv4" if family == 4 else "icmpv6"
        if m.icmp.type is not None:
            f[f"{prefix}_type"] = m.icmp.type
        if m.icmp.code is not None:
            f[f"{prefix}_code"] = m.icmp.code
    return f


def _eth_fields(m: Matches) -> dict[str, MatchValue]:
    f: dict[str, MatchValue] = {}
    eth = m.eth
    if eth is None:
        return f
    for name, mac, mask in (("eth_src", eth.src_mac, eth.src_mac_mask), ("eth_dst", eth.dst_mac, eth.dst_mac_mask)):
        if mac is None:
            continue
        if mask is None or mask.lower() == "ff:ff:ff:ff:ff:ff":
            f[name] = mac.lower()
        else:
            value = bytes(
                a & b
                for a, b in zip(bytes.fromhex(mac.replace(":", "")), bytes.fromhex(mask.replace(":", "")), strict=True)
            )
            f[name] = (":".join(f"{b:02x}" for b in value), mask.lower())
    if eth.ethertype is not None:
        f["eth_type"] = eth.ethertype
    return f


def _ports(m: Matches) -> tuple[str, tuple[PortValue | None, ...], tuple[PortValue | None, ...]]:
    l4 = m.tcp if m.tcp is not None else m.udp
    if l4 is None:
        return "", (None,), (None,)
    prefix = "tcp" if m.tcp is not None else "udp"
    return prefix, port_match_values(l4.src_port), port_match_values(l4.dst_port)


def expand_ace(ace: Ace, acl_type: str | None, scope: AceScope) -> AceExpansion:
    m, path = ace.matches, scope.path
    _check_supported(m, path)
    warnings: list[Finding] = []
    mud = m.mud
    needs_l3 = any(x is not None for x in (m.ipv4, m.ipv6, m.tcp, m.udp, m.icmp)) or (
        mud is not None and (mud.local_networks or bool(mud.controller) or mud.my_controller)
    )
    family = _family(m, acl_type, path, needs_l3)
    fail_closed = not ace.forwarding.allows
    remote_md = _remote_metadata(mud, scope, warnings, fail_closed)
    sides, keys, missing = _address_sets(m, scope, warnings, fail_closed)
    syn_guard = (
        ace.forwarding.allows
        and m.tcp is not None
        and m.tcp.direction_initiated is not None
        and m.tcp.direction_initiated is not scope.direction
    )
    if remote_md is None:
        return AceExpansion((), tuple(keys), syn_guard, tuple(warnings))
    own_v, own_m = scope.own_metadata
    base: dict[str, MatchValue] = {"metadata": (own_v | remote_md[0], own_m | remote_md[1])}
    base.update(_eth_fields(m))
    prefix, sports, dports = _ports(m)
    # an IPv4/IPv6 ACL's ACE matches only that family; an L2 ACE in a mixed ACL needs no family
    families: tuple[int | None, ...] = (family,) if family else (4, 6) if needs_l3 else (None,)
    out: list[Match] = []
    for fam in families:
        fields = dict(base)
        src: list[Network] | None = None
        dst: list[Network] | None = None
        if fam is not None:
            fields.update(_l3_fields(m, fam, path))
            src, dst = _intersect(fam, sides["src"]), _intersect(fam, sides["dst"])
            if src == [] or dst == []:
                continue
        ip_prefix = "ipv4" if fam == 4 else "ipv6"
        srcs: list[Network | None] = list(src) if src else [None]
        dsts: list[Network | None] = list(dst) if dst else [None]
        for s, d, sp, dp in product(srcs, dsts, sports, dports):
            if len(out) >= MAX_FLOWS_PER_ACE:
                raise CompileError("too-many-flows", path, f"ACE expands to more than {MAX_FLOWS_PER_ACE} flows")
            flow = dict(fields)
            flow.update(_optional(f"{ip_prefix}_src", s), **_optional(f"{ip_prefix}_dst", d))
            flow.update(_optional(f"{prefix}_src", sp), **_optional(f"{prefix}_dst", dp))
            out.append(make_match(**flow))
    if not out and missing and not fail_closed:
        warnings.append(Finding("empty-ace", path, "accept ACE allows nothing until its address sets have members"))
    return AceExpansion(tuple(out), tuple(keys), syn_guard, tuple(warnings))


def _warn_broadened(warnings: list[Finding], path: str, what: str) -> None:
    warnings.append(
        Finding("drop-ace-broadened", path, f"drop ACE enforced for every peer until {what} is known (fail closed)")
    )


def _optional(name: str, value: MatchValue | Network | None) -> dict[str, MatchValue]:
    if value is None:
        return {}
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return {name: network_value(value)}
    return {name: value}


def syn_guards(matches: tuple[Match, ...]) -> Iterator[Match]:
    """The companion drop matches for a direction-initiated ACE: same match + SYN-only."""
    for match in matches:
        yield make_match(tcp_flags=SYN_ONLY, **dict(match))
