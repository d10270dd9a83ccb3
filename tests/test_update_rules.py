"""The acceptable-URL rule (draft-ietf-iotops-mud-acceptable-urls s5.1): examples per reason and a property test."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mud_ryu.fetch.urlgate import GateOptions, MudUrl, UrlRejected, check_mud_url
from mud_ryu.policy.rules import URL_CHANGE_REASONS, ChangeKind, canonical_problem, check_url_change

ROOT = "https://mud.example.com/household/toaster/model1945.json"


def gated(raw: str) -> MudUrl:
    return check_mud_url(raw, GateOptions(allow_ip_literals=True))


def change(pinned: str, new: str) -> tuple[ChangeKind, str]:
    result = check_url_change(gated(pinned), gated(new))
    assert (result.reason == "") == (result.kind is not ChangeKind.REJECT)
    assert result.reason == "" or result.reason in URL_CHANGE_REASONS
    return result.kind, result.reason


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (ROOT, (ChangeKind.SAME, "")),
        ("HTTPS://MUD.Example.COM:443/household/toaster/model1945.json", (ChangeKind.SAME, "")),
        ("https://mud.example.com/household/toaster/revision2.json", (ChangeKind.SMALL, "")),
        ("https://mud.example.com/household/toaster/model1945.JSON", (ChangeKind.SMALL, "")),
        ("https://other.example.com/household/toaster/model1945.json", (ChangeKind.REJECT, "other-host")),
        ("https://evil-mud.example.com/household/toaster/model1945.json", (ChangeKind.REJECT, "other-host")),
        ("https://mud.example.com:8443/household/toaster/model1945.json", (ChangeKind.REJECT, "other-port")),
        ("https://mud.example.com/household/fridge/model1945.json", (ChangeKind.REJECT, "other-path-prefix")),
        ("https://mud.example.com/Household/toaster/model1945.json", (ChangeKind.REJECT, "other-path-prefix")),
        ("https://mud.example.com/household/toaster/x/model1945.json", (ChangeKind.REJECT, "path-depth")),
        ("https://mud.example.com/household/model1945.json", (ChangeKind.REJECT, "path-depth")),
        ("https://mud.example.com/household/toaster%20/model1945.json", (ChangeKind.REJECT, "other-path-prefix")),
    ],
)
def test_examples(new: str, expected: tuple[ChangeKind, str]) -> None:
    assert change(ROOT, new) == expected


def test_the_drafts_example() -> None:
    # draft s5.1: "if the canonical MUD-URL is http://example.com/hello/there/file.json then any URL that starts
    # with http://example.com/hello/there/ would be acceptable" (https here: the gate only admits https).
    assert change("https://example.com/hello/there/file.json", "https://example.com/hello/there/revision2.json") == (
        ChangeKind.SMALL,
        "",
    )
    assert change("https://example.com/hello/there/file.json", "https://example.com/hello/file.json")[1] == (
        "path-depth"
    )


def test_ip_literal_hosts_compare_like_names() -> None:
    assert change("https://[2001:db8::1]/a/b.json", "https://[2001:db8::1]/a/c.json") == (ChangeKind.SMALL, "")
    assert change("https://[2001:db8::1]/a/b.json", "https://[2001:db8::2]/a/b.json")[1] == "other-host"
    assert change("https://192.0.2.1:8443/a/b.json", "https://192.0.2.1:8443/a/c.json") == (ChangeKind.SMALL, "")


def test_a_hand_made_url_is_not_compared() -> None:
    good = gated(ROOT)
    forged = [
        MudUrl("https://mud.example.com/household/../x.json", "mud.example.com", 443, ("household", "..", "x.json")),
        MudUrl("https://mud.example.com/a%2Fb/x.json", "mud.example.com", 443, ("a%2Fb", "x.json")),
        MudUrl("https://mud.example.com/a/x.json", "mud.example.com", 443, ("household", "toaster", "x.json")),
        MudUrl("https://Mud.example.com/a/x.json", "Mud.example.com", 443, ("a", "x.json")),
        MudUrl("https://u@mud.example.com/a/x.json", "mud.example.com", 443, ("a", "x.json")),
        MudUrl("https://mud.example.com/a//x.json", "mud.example.com", 443, ("a", "", "x.json")),
        MudUrl("https://mud.example.com/a/x.json?q", "mud.example.com", 443, ("a", "x.json?q")),
        MudUrl("https://mud.example.com:443/a/x.json", "mud.example.com", 443, ("a", "x.json")),
        MudUrl("https://mud.example.com", "mud.example.com", 443, ()),
    ]
    for url in forged:
        assert canonical_problem(url) is not None, url
        for pinned, new in ((good, url), (url, good), (url, url)):
            result = check_url_change(pinned, new)
            assert (result.kind, result.reason) == (ChangeKind.REJECT, "not-gated"), url


def test_scheme_is_compared_even_though_the_gate_admits_only_https() -> None:
    plain = MudUrl("http://mud.example.com/household/toaster/model1945.json", "mud.example.com", 443,
                   ("household", "toaster", "model1945.json"))  # fmt: skip
    assert canonical_problem(plain) is None
    assert check_url_change(gated(ROOT), plain).reason == "other-scheme"
    assert check_url_change(plain, gated(ROOT)).reason == "other-scheme"


# ---- property: for gated URLs, SMALL iff only the last segment differs --------------------------------------------

_label = st.from_regex(r"[a-z][a-z0-9]{0,4}", fullmatch=True)
_host = st.lists(_label, min_size=2, max_size=3).map(".".join)
_segment = st.from_regex(r"(?:[A-Za-z0-9_~!$&'()*+,;=:@-]|%[0-9A-F]{2}|\.[a-z]){1,6}", fullmatch=True)
_port = st.sampled_from([443, 8443, 444])


@st.composite
def gated_urls(draw: st.DrawFn) -> MudUrl:
    host, port = draw(_host), draw(_port)
    segments = draw(st.lists(_segment, min_size=1, max_size=4))
    raw = f"https://{host}{'' if port == 443 else f':{port}'}/{'/'.join(segments)}"
    try:
        return check_mud_url(raw)
    except UrlRejected:
        assume(False)
        raise


@st.composite
def mutated(draw: st.DrawFn, base: MudUrl) -> MudUrl:
    host, port, segments = base.host, base.port, list(base.path_segments)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["last", "inner", "add", "drop", "host", "port", "case"]))
        if kind == "last":
            segments[-1] = draw(_segment)
        elif kind == "inner" and len(segments) > 1:
            segments[draw(st.integers(0, len(segments) - 2))] = draw(_segment)
        elif kind == "add":
            segments.insert(draw(st.integers(0, len(segments))), draw(_segment))
        elif kind == "drop" and len(segments) > 1:
            segments.pop(draw(st.integers(0, len(segments) - 1)))
        elif kind == "host":
            host = draw(_host)
        elif kind == "port":
            port = draw(_port)
        elif kind == "case":  # a spelling variant that the gate canonicalises
            host = host.upper()
    raw = f"https://{host}:{port}/{'/'.join(segments)}"
    try:
        return check_mud_url(raw)
    except UrlRejected:
        assume(False)
        raise


@st.composite
def pairs(draw: st.DrawFn) -> tuple[MudUrl, MudUrl]:
    base = draw(gated_urls())
    return base, draw(mutated(base))


@given(pairs())
def test_small_iff_only_the_last_segment_differs(pair: tuple[MudUrl, MudUrl]) -> None:
    pinned, new = pair
    result = check_url_change(pinned, new)
    same_origin = (pinned.host, pinned.port) == (new.host, new.port)
    same_dir = len(pinned.path_segments) == len(new.path_segments) and (
        pinned.path_segments[:-1] == new.path_segments[:-1]
    )
    last_differs = pinned.path_segments[-1:] != new.path_segments[-1:]
    assert (result.kind is ChangeKind.SMALL) == (same_origin and same_dir and last_differs)
    assert (result.kind is ChangeKind.SAME) == (pinned.url == new.url)
    assert (result.kind is ChangeKind.SAME) == (same_origin and same_dir and not last_differs)
    if result.kind is ChangeKind.REJECT:
        assert result.reason in URL_CHANGE_REASONS - {"not-gated", "other-scheme"}
    # The rule is symmetric: if a may move to b, b may move back to a (rollback is the history's job).
    assert check_url_change(new, pinned).kind is result.kind
