"""MUD URL gate: every hostile construct is refused with its own reason; valid URLs round-trip canonically."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mud_ryu.fetch import urlgate
from mud_ryu.fetch.urlgate import GateOptions, MudUrl, UrlRejected, check_mud_url

LAB = GateOptions(allow_ip_literals=True)


def reason_of(raw: object, options: GateOptions | None = None) -> str:
    with pytest.raises(UrlRejected) as info:
        check_mud_url(raw, options or GateOptions())
    assert info.value.reason in urlgate.REASONS
    return info.value.reason


@pytest.mark.parametrize(
    ("raw", "url", "host", "port", "segments"),
    [
        (
            "https://mud.example.com/dev/toaster.json",
            "https://mud.example.com/dev/toaster.json",
            "mud.example.com",
            443,
            ("dev", "toaster.json"),
        ),
        (
            "HTTPS://Mud.EXAMPLE.com:443/Dev/T.json",
            "https://mud.example.com/Dev/T.json",
            "mud.example.com",
            443,
            ("Dev", "T.json"),
        ),
        (
            "https://xn--bcher-kva.example:8443/a%7e/b%3a.json",
            "https://xn--bcher-kva.example:8443/a%7E/b%3A.json",
            "xn--bcher-kva.example",
            8443,
            ("a%7E", "b%3A.json"),
        ),
        (
            "https://a-1.b2.example/x;v=1/m@n:o!$&'()*+,=~_-.json",
            "https://a-1.b2.example/x;v=1/m@n:o!$&'()*+,=~_-.json",
            "a-1.b2.example",
            443,
            ("x;v=1", "m@n:o!$&'()*+,=~_-.json"),
        ),
        ("https://localhost/mud.json", "https://localhost/mud.json", "localhost", 443, ("mud.json",)),
        ("https://x.example:65535/...json", "https://x.example:65535/...json", "x.example", 65535, ("...json",)),
    ],
)
def test_accepts_and_canonicalises(raw: str, url: str, host: str, port: int, segments: tuple[str, ...]) -> None:
    got = check_mud_url(raw)
    assert got == MudUrl(url=url, host=host, port=port, path_segments=segments)
    assert check_mud_url(got.url) == got


def test_authority_keeps_non_default_port_only() -> None:
    assert check_mud_url("https://a.example/x").authority == "a.example"
    assert check_mud_url("https://a.example:8443/x").authority == "a.example:8443"
    assert check_mud_url("https://[::1]:8443/x", LAB).authority == "[::1]:8443"


REJECTED: list[tuple[object, str]] = [
    (b"https://a.example/x", "not-str"),
    (None, "not-str"),
    ("", "empty"),
    ("https://a.example/" + "x" * 250, "too-long"),
    ("https://a.example/caf\u00e9.json", "non-ascii"),
    ("https://\u0430.example/x", "non-ascii"),
    ("https://a.example/a b", "control-char"),
    ("https://a.example/a\tb", "control-char"),
    ("https://a.example/x\r\n", "control-char"),
    ("https://a.example/x\x00", "control-char"),
    ('https://a.example/x"y', "bad-char"),
    ("https://a.example/x<y>", "bad-char"),
    ("https://a.example/x[1]", "bad-char"),
    ("https://a.example\\@evil.example/x", "backslash"),
    ("https://a.example/x\\y", "backslash"),
    ("http://a.example/x", "not-https"),
    ("file:///etc/passwd", "not-https"),
    ("ftp://a.example/x", "not-https"),
    ("//a.example/x", "not-https"),
    ("a.example/x", "not-https"),
    ("https:a.example/x", "bad-host"),
    ("https://user@a.example/x", "userinfo"),
    ("https://user:pw@a.example/x", "userinfo"),
    ("https://a.example@evil.example/x", "userinfo"),
    ("https://127.0.0.1/x", "ip-literal"),
    ("https://0x7f000001/x", "ip-literal"),
    ("https://2130706433/x", "ip-literal"),
    ("https://0177.0.0.1/x", "ip-literal"),
    ("https://127.1/x", "ip-literal"),
    ("https://127.0.0.1./x", "ip-literal"),
    ("https://[::1]/x", "ip-literal"),
    ("https://[::ffff:127.0.0.1]/x", "ip-literal"),
    ("https://a.example./x", "bad-host"),
    ("https://a..example/x", "bad-host"),
    ("https://.a.example/x", "bad-host"),
    ("https:///x", "bad-host"),
    ("https://a_b.example/x", "bad-host"),
    ("https://-a.example/x", "bad-host"),
    ("https://a-.example/x", "bad-host"),
    ("https://" + "a" * 64 + ".example/x", "bad-host"),
    ("https://a%2eexample/x", "bad-host"),
    ("https://[::1/x", "bad-host"),
    ("https://a.example:0/x", "bad-port"),
    ("https://a.example:65536/x", "bad-port"),
    ("https://a.example:0443/x", "bad-port"),
    ("https://a.example:https/x", "bad-port"),
    ("https://a.example:/x", "bad-port"),
    ("https://a.example:1:2/x", "bad-port"),
    ("https://a.example/a%2Fb", "encoded-separator"),
    ("https://a.example/a%2fb", "encoded-separator"),
    ("https://a.example/a%5cb", "encoded-separator"),
    ("https://a.example/%2e%2e/x", "encoded-separator"),
    ("https://a.example/x%00.json", "encoded-separator"),
    ("https://a.example/x%zz", "bad-percent"),
    ("https://a.example/x%4", "bad-percent"),
    ("https://a.example/x%", "bad-percent"),
    ("https://a.example/a/../x", "dot-segment"),
    ("https://a.example/./x", "dot-segment"),
    ("https://a.example/a/..", "dot-segment"),
    ("https://a.example//x", "empty-segment"),
    ("https://a.example/a//x", "empty-segment"),
    ("https://a.example/dir/", "empty-segment"),
    ("https://a.example/x?v=1", "query"),
    ("https://a.example/x?", "query"),
    ("https://a.example?x", "query"),
    ("https://a.example/x#frag", "fragment"),
    ("https://a.example/x#", "fragment"),
    ("https://a.example/x#a?b", "fragment"),
    ("https://a.example", "no-path"),
    ("https://a.example/", "no-path"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_rejects(raw: object, reason: str) -> None:
    assert reason_of(raw) == reason


def test_every_reason_is_exercised_by_the_table() -> None:
    # parser-disagreement is exercised separately below: the gate's own checks refuse first what it knows of.
    table = {reason for _, reason in REJECTED}
    assert table | {"parser-disagreement"} == set(urlgate.REASONS)


def test_parser_disagreement_is_detected() -> None:
    # Feed the cross-check a decomposition that differs from what urllib3 and urllib.parse read.
    with pytest.raises(UrlRejected) as info:
        urlgate._cross_check("https://a.example/x", "b.example", 443, "/x")
    assert info.value.reason == "parser-disagreement"
    with pytest.raises(UrlRejected) as info:
        urlgate._cross_check("https://a.example:99999999999/x", "a.example", 443, "/x")
    assert info.value.reason == "parser-disagreement"
    urlgate._cross_check("https://a.example:8443/%7e", "a.example", 8443, "/%7E")


def test_max_octets_is_configurable() -> None:
    raw = "https://a.example/" + "x" * 40
    assert check_mud_url(raw).url == raw
    assert reason_of(raw, GateOptions(max_octets=40)) == "too-long"
    exact = "https://a.example/" + "x" * (255 - len("https://a.example/"))
    assert check_mud_url(exact).url == exact


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("https://127.0.0.1:8443/x", "127.0.0.1"),
        ("https://[::1]/x", "::1"),
        ("https://[FE80::1]/x", "fe80::1"),
    ],
)
def test_lab_allows_canonical_ip_literals(raw: str, host: str) -> None:
    got = check_mud_url(raw, LAB)
    assert got.host == host
    assert check_mud_url(got.url, LAB) == got


@pytest.mark.parametrize(
    "raw",
    [
        "https://0x7f000001/x",
        "https://2130706433/x",
        "https://0177.0.0.1/x",
        "https://127.1/x",
        "https://[::1%25eth0]/x",
        "https://[0::1]/x",
        "https://[::1]x/x",
        "https://[zz::1]/x",
    ],
)
def test_lab_still_rejects_obfuscated_ip_literals(raw: str) -> None:
    assert reason_of(raw, LAB) in {"ip-literal", "bad-host"}


# ---------------------------------------------------------------- property tests

_label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?", fullmatch=True)
_tld = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,9}", fullmatch=True)
hostnames = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(_label, max_size=3), _tld)
_pchar = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@"
_escape = (
    st.sampled_from("0123456789abcdefABCDEF")
    .flatmap(lambda hi: st.sampled_from("0123456789abcdefABCDEF").map(lambda lo: f"%{hi}{lo}"))
    .filter(lambda e: e[1:].upper() not in {"2F", "5C", "2E", "00"})
)
_segment = (
    st.lists(st.one_of(st.sampled_from(_pchar), _escape), min_size=1, max_size=12)
    .map("".join)
    .filter(lambda s: s not in {".", ".."})
)
segment_lists = st.lists(_segment, min_size=1, max_size=5)
ports = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))


def build(host: str, port: int | None, segments: list[str], scheme: str = "https") -> str:
    return f"{scheme}://{host}{'' if port is None else f':{port}'}/{'/'.join(segments)}"


def upper_escapes(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        if segment[i] == "%":
            out.append(segment[i : i + 3].upper())
            i += 3
        else:
            out.append(segment[i])
            i += 1
    return "".join(out)


@given(hostnames, ports, segment_lists, st.sampled_from(["https", "HTTPS", "Https"]))
def test_valid_urls_round_trip(host: str, port: int | None, segments: list[str], scheme: str) -> None:
    raw = build(host, port, segments, scheme)
    assume(len(raw) <= 255)
    got = check_mud_url(raw)
    assert got.host == host.lower()
    assert got.port == (443 if port is None else port)
    assert got.path_segments == tuple(upper_escapes(s) for s in segments)
    assert got.url == build(host.lower(), None if port in (None, 443) else port, list(got.path_segments))
    assert check_mud_url(got.url) == got


def _mutations() -> st.SearchStrategy[tuple[str, str]]:
    """(mutation, expected reason): each inserts one forbidden construct into a valid URL."""
    return st.sampled_from(
        [
            ("scheme:http", "not-https"),
            ("scheme:ftp", "not-https"),
            ("userinfo", "userinfo"),
            ("trailing-dot", "bad-host"),
            ("empty-label", "bad-host"),
            ("underscore", "bad-host"),
            ("port:0", "bad-port"),
            ("port:70000", "bad-port"),
            ("port:x", "bad-port"),
            ("ipv4", "ip-literal"),
            ("ipv4-hex", "ip-literal"),
            ("ipv4-int", "ip-literal"),
            ("ipv6", "ip-literal"),
            ("path:\\", "backslash"),
            ("path:%2F", "encoded-separator"),
            ("path:%2e", "encoded-separator"),
            ("path:%5C", "encoded-separator"),
            ("path:%00", "encoded-separator"),
            ("path:%G0", "bad-percent"),
            ("seg:..", "dot-segment"),
            ("seg:.", "dot-segment"),
            ("seg:", "empty-segment"),
            ("path: ", "control-char"),
            ("path:\x7f", "control-char"),
            ("path:\u00e9", "non-ascii"),
            ("path:<", "bad-char"),
            ("suffix:?q=1", "query"),
            ("suffix:#f", "fragment"),
            ("nopath", "no-path"),
        ]
    )


@given(hostnames, ports, segment_lists, _mutations(), st.data())
def test_mutations_are_rejected(
    host: str, port: int | None, segments: list[str], mutation: tuple[str, str], data: st.DataObject
) -> None:
    kind, expected = mutation
    if kind.startswith("scheme:"):
        raw = build(host, port, segments, kind.split(":", 1)[1])
    elif kind == "userinfo":
        raw = build("user@" + host, port, segments)
    elif kind == "trailing-dot":
        raw = build(host + ".", port, segments)
    elif kind == "empty-label":
        raw = build(host.replace(".", "..", 1) if "." in host else "." + host, port, segments)
    elif kind == "underscore":
        raw = build("a_" + host, port, segments)
    elif kind.startswith("port:"):
        raw = f"https://{host}:{kind.split(':', 1)[1]}/{'/'.join(segments)}"
    elif kind in {"ipv4", "ipv4-hex", "ipv4-int", "ipv6"}:
        literal = {"ipv4": "10.0.0.1", "ipv4-hex": "0xa9fea9fe", "ipv4-int": "2852039166", "ipv6": "[fe80::1]"}
        raw = build(literal[kind], port, segments)
    elif kind.startswith("path:"):
        joined = "/".join(segments)
        at = data.draw(st.integers(min_value=0, max_value=len(joined)))
        raw = build(host, port, [joined[:at] + kind.split(":", 1)[1] + joined[at:]])
    elif kind.startswith("seg:"):
        at = data.draw(st.integers(min_value=0, max_value=len(segments)))
        raw = build(host, port, [*segments[:at], kind.split(":", 1)[1], *segments[at:]])
    elif kind.startswith("suffix:"):
        raw = build(host, port, segments) + kind.split(":", 1)[1]
    else:
        raw = build(host, port, [])
    assume(len(raw) <= 255)
    got = reason_of(raw)
    if kind.startswith("path:") and expected in {"encoded-separator", "bad-percent"}:
        # Inserting "%xx" inside an existing escape ("%4" + "1") may form another malformed escape first.
        assert got in {"encoded-separator", "bad-percent"}
    else:
        assert got == expected


@given(st.one_of(st.text(), st.text(alphabet=st.characters(max_codepoint=127)).map(lambda s: "https://" + s)))
def test_arbitrary_text_raises_only_url_rejected(raw: str) -> None:
    try:
        got = check_mud_url(raw)
    except UrlRejected as exc:
        assert exc.reason in urlgate.REASONS
    else:
        assert check_mud_url(got.url) == got
        assert got.url.startswith("https://")
