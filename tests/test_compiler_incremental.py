"""``recompile_sets``: re-expanding only the ACEs whose address sets changed gives exactly the full compile.

Random profiles (DNS names on either side, controllers, my-controller, local networks, manufacturer and model, drop
and accept, direction-initiated, repeated ACEs) against random contexts before and after; the corpus files of
usnistgov/nist-mud with each abstraction's addresses added, replaced and removed in turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from mud_ryu.compiler.compile import CompiledProfile, CompileError, compile_profile, recompile_sets
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, NetworkContext
from mud_ryu.compiler.pipeline import ACE_STEP, MAX_ACES_PER_DIRECTION, Band
from mud_ryu.mudfile.model import Ace, Acl, Direction, Forwarding, MudFile, MudMatch
from tests.compiler_helpers import MUD_URL, acl, eq, mudfile, tcp_ace, udp_ace
from tests.conftest import CORPUS, load_corpus, resolving_context

PID = 9
NAMES = ("a.example", "b.example", "c.example")
CONTROLLERS = ("urn:example:ctl", DNS_CONTROLLER_URN, NTP_CONTROLLER_URN)
OTHER_URL = "https://other.example.com/model/v2"
ADDRESSES = ("192.0.2.1", "192.0.2.2", "198.51.100.0/24", "192.0.2.0/24", "2001:db8::1", "2001:db8::/48")
NIST = sorted(p.relative_to(CORPUS).as_posix() for p in (CORPUS / "usnistgov+nist-mud").glob("*.json"))


def set_keys() -> list[str]:
    return [*(f"dns:{n}" for n in NAMES), *(f"controller:{c}" for c in CONTROLLERS), "my-controller",
            "local-networks"]  # fmt: skip


# ---- strategies ----------------------------------------------------------------------------------
_forwarding = st.sampled_from((Forwarding.ACCEPT, Forwarding.ACCEPT, Forwarding.DROP))
_name = st.one_of(st.none(), st.sampled_from(NAMES))


@st.composite
def _ace(draw: st.DrawFn, name: str) -> Ace:
    kind = draw(st.sampled_from(("tcp-dns", "udp-mud", "plain")))
    forwarding = draw(_forwarding)
    if kind == "tcp-dns":
        return tcp_ace(
            name, family=draw(st.sampled_from((4, 6))), dst_dnsname=draw(_name), src_dnsname=draw(_name),
            dst_port=draw(st.one_of(st.none(), st.just(eq(443)))), forwarding=forwarding,
            initiated=draw(st.sampled_from((None, Direction.FROM_DEVICE, Direction.TO_DEVICE))),
        )  # fmt: skip
    if kind == "plain":
        return udp_ace(name, draw(st.sampled_from((53, 123, 5683))), forwarding=forwarding)
    mud = MudMatch(
        manufacturer=draw(st.sampled_from((None, "things.example.com", "unknown.example"))),
        same_manufacturer=draw(st.booleans()),
        model=draw(st.sampled_from((None, MUD_URL, OTHER_URL))),
        local_networks=draw(st.booleans()),
        controller=draw(st.one_of(st.none(), st.sampled_from(CONTROLLERS))),
        my_controller=draw(st.booleans()),
    )
    return udp_ace(name, 5683, mud=mud, forwarding=forwarding)


@st.composite
def profiles(draw: st.DrawFn) -> MudFile:
    def acls(prefix: str) -> tuple[Acl, ...]:
        aces = draw(st.lists(_ace(prefix), max_size=5))
        repeat = draw(st.booleans()) and bool(aces)  # the same ACE twice: same matches, different priorities
        aces = [*aces, aces[0]] if repeat else aces
        named = tuple(replace(a, name=f"{prefix}{i}") for i, a in enumerate(aces))
        return (acl(f"{prefix}-acl", *named),) if named else ()

    return mudfile(acls("from"), acls("to"))


_members = st.lists(st.sampled_from(ADDRESSES), max_size=3).map(tuple)  # repeats: deduplicated flows
_bad_members = st.sampled_from((("not-an-address",), ("192.0.2.1", "999.1.1.1")))


def _set_value(bad: bool) -> st.SearchStrategy[tuple[str, ...] | None]:
    values = st.one_of(st.none(), _members)
    return st.one_of(values, values, values, _bad_members) if bad else values


@st.composite
def contexts(draw: st.DrawFn, bad: bool = False) -> NetworkContext:
    """Any value for every address set (absent, empty, some members; ``bad``: sometimes not addresses)."""
    values = {key: draw(_set_value(bad)) for key in set_keys()}
    return _context(values, draw(st.sampled_from((None, 12, 13))), draw(st.sampled_from((None, 3, 4))))


@st.composite
def context_pairs(draw: st.DrawFn) -> tuple[NetworkContext, NetworkContext]:
    """A context and a later one where some sets (maybe none, maybe all) have new values, some not addresses."""
    before = {key: draw(_set_value(False)) for key in set_keys()}
    moved = draw(st.sets(st.sampled_from(set_keys())))
    after = {key: draw(_set_value(True)) if key in moved else value for key, value in before.items()}
    model, mfg = draw(st.sampled_from((None, 12, 13))), draw(st.sampled_from((None, 3, 4)))
    return _context(before, model, mfg), _context(after, model, mfg)


def _context(values: Mapping[str, tuple[str, ...] | None], model: int | None, mfg: int | None) -> NetworkContext:
    def present(prefix: str, items: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        return {i: v for i in items if (v := values.get(f"{prefix}{i}")) is not None}

    return NetworkContext(
        dns=present("dns:", NAMES), controllers=present("controller:", CONTROLLERS),
        my_controller={MUD_URL: v} if (v := values.get("my-controller")) is not None else {},
        local_networks=values.get("local-networks") or (),
        profile_ids={MUD_URL: PID} if model is None else {MUD_URL: PID, OTHER_URL: model},
        manufacturer_ids={} if mfg is None else {"things.example.com": mfg},
    )  # fmt: skip


def _changed(before: NetworkContext, after: NetworkContext) -> set[str]:
    def differs(a: Mapping[str, tuple[str, ...]], b: Mapping[str, tuple[str, ...]], key: str) -> bool:
        return a.get(key) != b.get(key)

    out = {f"dns:{n}" for n in NAMES if differs(before.dns, after.dns, n)}
    out |= {f"controller:{c}" for c in CONTROLLERS if differs(before.controllers, after.controllers, c)}
    if differs(before.my_controller, after.my_controller, MUD_URL):
        out.add("my-controller")
    if before.local_networks != after.local_networks:
        out.add("local-networks")
    return out


def _outcome(fn: object, *args: object) -> CompiledProfile | tuple[str, str]:
    assert callable(fn)
    try:
        result = fn(*args)
    except CompileError as error:
        return error.reason, error.path
    assert isinstance(result, CompiledProfile)
    return result


def assert_same(incremental: CompiledProfile, full: CompiledProfile) -> None:
    assert incremental.rules == full.rules  # the same flows in the same order
    assert incremental == full  # warnings, per-ACE counts, cookie subs
    assert incremental.groups is not None and full.groups is not None
    assert incremental.groups.groups == full.groups.groups


# ---- the property ----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(profiles(), context_pairs(), st.sets(st.sampled_from(set_keys())), st.one_of(*[st.none()] * 3, contexts()))
def test_incremental_equals_full_compile(
    mud: MudFile, pair: tuple[NetworkContext, NetworkContext], extra: set[str], ids: NetworkContext | None
) -> None:
    before, after = pair
    if ids is not None:  # the id maps may differ too: the function must notice and fall back
        after = replace(after, profile_ids=ids.profile_ids, manufacturer_ids=ids.manufacturer_ids)
    same_ids = after.profile_ids == before.profile_ids and after.manufacturer_ids == before.manufacturer_ids
    event("same ids" if same_ids else "ids differ")
    previous = _outcome(compile_profile, mud, before, PID)
    assume(isinstance(previous, CompiledProfile))
    assert isinstance(previous, CompiledProfile)
    changed = frozenset(_changed(before, after) | extra)  # naming an unchanged set too is allowed
    full = _outcome(compile_profile, mud, after, PID)
    incremental = _outcome(recompile_sets, previous, mud, after, changed)
    if not isinstance(full, CompiledProfile):
        event("refused")
        assert incremental == full  # the same refusal: reason and ACE path
        return
    assert isinstance(incremental, CompiledProfile)
    assert_same(incremental, full)
    if not same_ids:
        return
    # Unless the defaults took or gave up a cookie sub (which moves later subs: a full compile), every group that
    # names no changed set is reused as is, not rebuilt.
    assert previous.groups is not None and incremental.groups is not None
    pairs = list(zip(previous.groups.groups, incremental.groups.groups, strict=True))
    if any(old.sub_keys != new.sub_keys for old, new in pairs):
        event("defaults took or gave up a sub")
        return
    for old, new in pairs:
        if old.set_keys.isdisjoint(changed):
            assert new is old
    kept = sum(a is b for a, b in pairs)
    event("all groups rebuilt" if not kept else "all reused" if kept == len(previous.groups.groups) else "some reused")


@settings(max_examples=100, deadline=None)
@given(profiles(), contexts(), contexts())
def test_cookie_subs_follow_key_combinations_not_addresses(
    mud: MudFile, before: NetworkContext, after: NetworkContext
) -> None:
    """With the DNS/NTP servers fixed, the subs depend only on which sets the ACEs name, in ACE order."""
    servers = {u: ("192.0.2.53",) for u in (DNS_CONTROLLER_URN, NTP_CONTROLLER_URN)}
    before = replace(before, controllers={**before.controllers, **servers})
    after = replace(after, controllers={**after.controllers, **servers}, profile_ids=before.profile_ids,
                    manufacturer_ids=before.manufacturer_ids)  # fmt: skip
    assert compile_profile(mud, before, PID).address_sets == compile_profile(mud, after, PID).address_sets


@settings(max_examples=100, deadline=None)
@given(profiles(), contexts())
def test_groups_never_share_a_slot(mud: MudFile, ctx: NetworkContext) -> None:
    """So deduplicating per group is deduplicating the profile (what compile_profile did before it had groups)."""
    compiled = compile_profile(mud, ctx, PID)
    assert compiled.groups is not None
    owner: dict[tuple[str, int], int] = {}
    for i, group in enumerate(compiled.groups.groups):
        for rule in group.rules:
            assert owner.setdefault((rule.table, rule.priority), i) == i
    assert len({(r.table, r.priority, r.match) for r in compiled.rules}) == len(compiled.rules)


def test_priority_layout_keeps_groups_apart() -> None:
    lowest_ace_flow = Band.ACE_TOP - (MAX_ACES_PER_DIRECTION - 1) * ACE_STEP - 1
    assert ACE_STEP >= 2 and lowest_ace_flow > Band.DEFAULTS


# ---- named cases -----------------------------------------------------------------------------------
def _dns_profile() -> MudFile:
    out = tcp_ace("out", dst_dnsname="a.example", dst_port=eq(443), initiated=Direction.FROM_DEVICE)
    other = tcp_ace("other", dst_dnsname="b.example", dst_port=eq(443))
    block = tcp_ace("block", dst_dnsname="c.example", forwarding=Forwarding.DROP)
    back = tcp_ace("back", src_dnsname="a.example", src_port=eq(443), initiated=Direction.FROM_DEVICE)
    return mudfile((acl("fr", out, other, block),), (acl("to", back),))


def _ctx(**dns: tuple[str, ...]) -> NetworkContext:
    servers = {DNS_CONTROLLER_URN: ("192.0.2.53",), NTP_CONTROLLER_URN: ("192.0.2.123",)}
    return NetworkContext(dns={k.replace("_", "."): v for k, v in dns.items()}, controllers=servers)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"a_example": ("192.0.2.1",)}),  # the ACEs naming it had no flows: they gain some
        ({"a_example": ("192.0.2.1",)}, {}),  # ... and lose them all again
        ({"a_example": ("192.0.2.1",)}, {"a_example": ("192.0.2.1", "2001:db8::1", "192.0.2.7")}),
        ({"c_example": ("192.0.2.9",)}, {"c_example": ()}),  # a drop ACE's set empties: it fails closed (wider)
    ],
)
def test_a_name_gaining_and_losing_addresses(before: dict[str, tuple[str, ...]],
                                             after: dict[str, tuple[str, ...]]) -> None:  # fmt: skip
    mud = _dns_profile()
    previous = compile_profile(mud, _ctx(**before), PID)
    changed = frozenset(f"dns:{k.replace('_', '.')}" for k in {*before, *after})
    incremental = recompile_sets(previous, mud, _ctx(**after), changed)
    assert_same(incremental, compile_profile(mud, _ctx(**after), PID))
    assert previous.groups is not None and incremental.groups is not None
    rebuilt = [new is not old for old, new in zip(previous.groups.groups, incremental.groups.groups, strict=True)]
    assert sum(rebuilt) == (2 if "a_example" in {*before, *after} else 1)  # out+back, or block


def test_nothing_changed_reuses_every_group() -> None:
    mud, ctx = _dns_profile(), _ctx(a_example=("192.0.2.1",))
    previous = compile_profile(mud, ctx, PID)
    again = recompile_sets(previous, mud, ctx, frozenset())
    assert again == previous and again.groups is not None and previous.groups is not None
    assert all(a is b for a, b in zip(again.groups.groups, previous.groups.groups, strict=True))


def test_dns_server_appearing_moves_later_subs_and_they_are_rebuilt() -> None:
    """The defaults take a sub only when servers exist, so servers appearing shifts the to-device ACEs' subs."""
    mud = _dns_profile()
    bare = NetworkContext(dns={"a.example": ("192.0.2.1",)})
    served = replace(bare, controllers={DNS_CONTROLLER_URN: ("192.0.2.53",)})
    previous = compile_profile(mud, bare, PID)
    incremental = recompile_sets(previous, mud, served, frozenset({f"controller:{DNS_CONTROLLER_URN}"}))
    full = compile_profile(mud, served, PID)
    assert_same(incremental, full)
    assert {r.keys: r.sub for r in previous.address_sets}[("dns:a.example",)] == 1
    assert previous.address_sets != full.address_sets


def test_another_file_or_other_ids_fall_back_to_a_full_compile() -> None:
    mud, ctx = _dns_profile(), _ctx(a_example=("192.0.2.1",))
    previous = compile_profile(mud, ctx, PID)
    other = mudfile((acl("fr", tcp_ace("x", dst_dnsname="b.example")),))
    assert_same(recompile_sets(previous, other, ctx, frozenset()), compile_profile(other, ctx, PID))
    out, other_ace, block = mud.from_device[0].aces
    edited = mudfile((acl("fr", replace(out, forwarding=Forwarding.DROP), other_ace, block),), mud.to_device)
    assert_same(recompile_sets(previous, edited, ctx, frozenset()), compile_profile(edited, ctx, PID))
    retyped = mudfile((replace(mud.from_device[0], type="ipv6-acl-type"),), mud.to_device)  # same ACEs, other ACL
    assert_same(recompile_sets(previous, retyped, ctx, frozenset()), compile_profile(retyped, ctx, PID))


@pytest.mark.parametrize("which", ["model", "manufacturer"])
def test_changed_ids_fall_back_to_a_full_compile(which: str) -> None:
    """Ids are not address sets: the function notices them itself (the enforcer's context grows as files load)."""
    peers = MudMatch(manufacturer="things.example.com")
    mud = mudfile((acl("fr", udp_ace("mfg", 5683, mud=peers), udp_ace("model", 5683, mud=MudMatch(model=OTHER_URL))),))
    ctx = NetworkContext(profile_ids={OTHER_URL: 12}, manufacturer_ids={"things.example.com": 3})
    previous = compile_profile(mud, ctx, PID)
    if which == "model":
        later = replace(ctx, profile_ids={OTHER_URL: 13})
    else:
        later = replace(ctx, manufacturer_ids={"things.example.com": 4})
    full = compile_profile(mud, later, PID)
    assert full.rules != previous.rules
    assert_same(recompile_sets(previous, mud, later, frozenset()), full)
    bare = replace(previous, groups=None)
    assert_same(recompile_sets(bare, mud, ctx, frozenset()), compile_profile(mud, ctx, PID))


def test_a_changed_set_with_a_bad_address_is_refused_like_the_full_compile() -> None:
    mud = _dns_profile()
    previous = compile_profile(mud, _ctx(), PID)
    with pytest.raises(CompileError) as caught:
        recompile_sets(previous, mud, _ctx(b_example=("300.1.1.1",)), frozenset({"dns:b.example"}))
    assert (caught.value.reason, caught.value.path) == ("bad-context", "from-device/fr/other")


# ---- the NIST corpus ---------------------------------------------------------------------------------
def _corpus_keys(ctx: NetworkContext) -> list[str]:
    """Every address set the context fills (what resolving_context found in the file, and the DNS/NTP servers)."""
    return [*(f"dns:{n}" for n in ctx.dns), *(f"controller:{c}" for c in ctx.controllers), "my-controller",
            "local-networks"]  # fmt: skip


def _with(ctx: NetworkContext, mud: MudFile, key: str, members: tuple[str, ...] | None) -> NetworkContext:
    def put(mapping: Mapping[str, tuple[str, ...]], name: str) -> dict[str, tuple[str, ...]]:
        out = {k: v for k, v in mapping.items() if k != name}
        return out if members is None else {**out, name: members}

    if key.startswith("dns:"):
        return replace(ctx, dns=put(ctx.dns, key[4:]))
    if key.startswith("controller:"):
        return replace(ctx, controllers=put(ctx.controllers, key[11:]))
    if key == "my-controller":
        return replace(ctx, my_controller=put(ctx.my_controller, mud.mud_url))
    assert key == "local-networks"
    return replace(ctx, local_networks=members or ())


@pytest.mark.parametrize("rel", NIST)
def test_nist_corpus_each_set_added_replaced_removed(rel: str) -> None:
    mud = load_corpus(rel)
    ctx = resolving_context([mud])
    pid = ctx.profile_id(mud.mud_url) or PID
    keys = _corpus_keys(ctx)
    for key in keys:
        steps = (None, ("203.0.113.200", "2001:db8:ff::1"), ("203.0.113.201",), ())
        current, previous = ctx, compile_profile(mud, ctx, pid)
        for members in steps:
            nxt = _with(current, mud, key, members)
            incremental = recompile_sets(previous, mud, nxt, frozenset({key}))
            assert_same(incremental, compile_profile(mud, nxt, pid))
            current, previous = nxt, incremental


def test_nist_corpus_is_present() -> None:
    assert len(NIST) >= 10 and all(Path(CORPUS / rel).is_file() for rel in NIST)
