"""The URL gate's memo answers exactly as the gate does, on repeat and after eviction, and stays bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.fetch.urlgate import GateOptions, MudUrl, UrlGateMemo, UrlRejected, check_mud_url

SEEDS = [
    "https://mud.test/bulb.json",
    "HTTPS://Mud.Test:443/a/%2f",
    "http://mud.test/x.json",
    "https://127.0.0.1/x.json",
    "https://mud.test/a/../b.json",
    "https://mud.test/" + "a" * 300,
    "",
]
urls = st.one_of(st.sampled_from(SEEDS), st.text(max_size=40), st.from_regex(r"https://[a-z.]{1,12}/[a-z%/.]{0,12}"))


def _gate(check: Callable[[object], MudUrl], raw: object) -> MudUrl | tuple[type[BaseException], str, str]:
    try:
        return check(raw)
    except UrlRejected as rejected:
        return (type(rejected), rejected.reason, rejected.message)


@settings(max_examples=300)
@given(st.lists(urls, min_size=1, max_size=30), st.integers(min_value=1, max_value=4), st.booleans())
def test_memo_answers_as_the_gate(raws: list[str], size: int, literals: bool) -> None:
    options = GateOptions(allow_ip_literals=literals)
    memo = UrlGateMemo(options, max_entries=size)
    for raw in raws + raws:  # every string at least twice: answered from the memo or after its eviction
        assert _gate(memo.check, raw) == _gate(lambda r: check_mud_url(r, options), raw)
        assert len(memo) <= size


def test_rejection_is_raised_again_as_the_same_type() -> None:
    memo = UrlGateMemo()
    for _ in range(2):
        with pytest.raises(UrlRejected) as caught:
            memo.check("http://mud.test/x.json")
        assert (caught.value.reason, caught.value.message) == (
            "not-https",
            "only https:// MUD URLs are fetched (RFC 8520 section 1.5)",
        )
    assert len(memo) == 1


def test_bounded_least_recently_used() -> None:
    memo = UrlGateMemo(max_entries=3)
    first = memo.check("https://mud.test/0.json")
    for i in range(1, 50):  # an attacker cycling URLs
        memo.check(f"https://mud.test/{i}.json")
        memo.check("https://mud.test/0.json")  # kept in use: never the one evicted
        assert len(memo) <= 3
    assert memo.check("https://mud.test/0.json") is first  # still remembered: the very same frozen value
    assert memo.check("https://mud.test/1.json") == check_mud_url("https://mud.test/1.json")  # evicted, re-gated


def test_non_str_and_overlong_are_gated_but_not_remembered() -> None:
    memo = UrlGateMemo()
    with pytest.raises(UrlRejected):
        memo.check(b"https://mud.test/x.json")
    with pytest.raises(UrlRejected):
        memo.check("https://mud.test/" + "a" * 10_000)
    assert len(memo) == 0
    with pytest.raises(ValueError):
        UrlGateMemo(max_entries=0)
