"""The fetcher against a real hostile HTTPS server on loopback (THREATS.md R7; issue 3 item 5).

Every hostile route must be refused with its own reason code, within the total deadline + 1 s, and without the
fetching process growing by 50 MiB or more. The server runs in a child process (tests/https_lab.py) so the memory
measured here is the client's alone: the kernel's peak-RSS mark is reset before each fetch (/proc/self/clear_refs)
and read after it.
"""

from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.fetch.fetcher import USER_AGENT, Fetcher
from mud_ryu.fetch.netguard import parse_networks
from mud_ryu.fetch.types import FETCH_REASONS, FetchError, FetchLimits, FetchOptions, FetchStatus, Validators
from tests.https_fixtures import Lab, loopback_resolver, run_https_lab

DEADLINE_S = 2.0
MEMORY_LIMIT = 50 << 20
GOOD = b'{"ietf-mud:mud": {}}'  # the fetcher does not validate: any body is fine for transport tests
LOOPBACK = parse_networks(["127.0.0.1"])

SITE: dict[str, dict[str, Any]] = {
    "/good.json": {
        "kind": "static",
        "headers": [["Content-Type", "application/mud+json; charset=utf-8"]],
        "body_b64": base64.b64encode(GOOD).decode(),
        "etag": '"v1"',
        "last_modified": "Tue, 01 Sep 2026 10:00:00 GMT",
    },
    "/gzipped.json": {
        "kind": "static",
        "headers": [["Content-Type", "application/mud+json"], ["Content-Encoding", "gzip"]],
        "body_b64": base64.b64encode(gzip.compress(GOOD)).decode(),
    },
    "/drip": {"kind": "drip", "fill_bytes": 4096, "interval_ms": 100},
    "/drip-head": {"kind": "drip", "fill_bytes": 64, "interval_ms": 100, "drip_headers": True},
    "/endless": {"kind": "endless-chunked", "chunk_bytes": 16384},
    "/bomb": {"kind": "gzip-bomb", "decoded_bytes": 1 << 30},
    "/bomb-deflate": {"kind": "gzip-bomb", "decoded_bytes": 1 << 30, "encoding": "deflate"},
    "/oversize": {"kind": "static", "headers": [["Content-Type", "application/mud+json"]], "fill_bytes": 3 << 20},
    "/oversize-unannounced": {
        "kind": "static",
        "headers": [["Content-Type", "application/mud+json"], ["Content-Length", "10"]],
        "fill_bytes": 3 << 20,
    },
    "/huge-header-line": {"kind": "huge-headers", "line_bytes": 200_000},
    "/many-headers": {"kind": "huge-headers", "count": 500},
    "/wrong-type": {"kind": "static", "headers": [["Content-Type", "text/plain"]], "body": '{"ietf-mud:mud": {}}'},
    "/no-type": {"kind": "static", "headers": [], "body": '{"ietf-mud:mud": {}}'},
    "/html": {"kind": "static", "headers": [["Content-Type", "text/html"]], "body": "<html><body>hi</body></html>"},
    "/error": {"kind": "status", "status": 500, "body": "boom"},
    "/br": {
        "kind": "static",
        "headers": [["Content-Type", "application/mud+json"], ["Content-Encoding", "br"]],
        "body": "xx",
    },
    "/to-http": {"kind": "redirect", "location": "http://mud.test/good.json"},
    "/to-loopback": {"kind": "redirect", "location": "https://127.0.0.1/good.json"},
    "/to-metadata": {"kind": "redirect", "status": 301, "location": "https://169.254.169.254/latest/meta-data/"},
    "/to-other-host": {"kind": "redirect", "location": "https://other.test/good.json"},
    "/to-same-host": {"kind": "redirect", "status": 308, "location": "/good.json"},
    "/loop": {"kind": "redirect", "location": "/loop"},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with run_https_lab(SITE, tmp_path_factory.mktemp("https-lab"), conn_limit_s=30.0, slow_hold_s=30.0) as running:
        yield running


def _fetcher(lab: Lab, *, allow: bool = True, resolver: Any = None, **limits: Any) -> Fetcher:
    options = FetchOptions(
        limits=FetchLimits(deadline_s=DEADLINE_S, **limits),
        ca_bundle=lab.ca_pem_path,
        allowed_networks=LOOPBACK if allow else (),
    )
    names = {"mud.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]}
    return Fetcher(options, resolver=resolver or loopback_resolver(names))


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/self/status")


def _refused(fetcher: Fetcher, url: str, **kwargs: Any) -> tuple[FetchError, float, int]:
    """Fetch expecting a refusal; return the error, the elapsed seconds and the peak RSS growth in bytes."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = _proc_status_kib("VmRSS")
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url, **kwargs)
    elapsed = time.monotonic() - start
    growth = (_proc_status_kib("VmHWM") - before) * 1024
    assert info.value.reason in FETCH_REASONS
    return info.value, elapsed, growth


HOSTILE = [
    ("/drip", "deadline", ""),
    ("/drip-head", "deadline", ""),
    ("/endless", "too-large", ""),
    ("/bomb", "too-large", ""),
    ("/bomb-deflate", "too-large", ""),
    ("/oversize", "too-large", ""),
    ("/huge-header-line", "bad-response", ""),
    ("/many-headers", "bad-response", ""),
    ("/wrong-type", "bad-content-type", ""),
    ("/no-type", "bad-content-type", ""),
    ("/html", "bad-content-type", ""),
    ("/error", "bad-status", "500"),
    ("/br", "bad-content-encoding", ""),
    ("/to-http", "redirect-refused", "302"),
    ("/to-loopback", "redirect-refused", "302"),
    ("/to-metadata", "redirect-refused", "301"),
    ("/missing", "bad-status", "404"),
]


@pytest.mark.parametrize(("path", "reason", "detail"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_route_refused_in_time_and_memory(lab: Lab, path: str, reason: str, detail: str) -> None:
    fetcher = _fetcher(lab)
    error, elapsed, growth = _refused(fetcher, lab.url(path))
    assert (error.reason, error.detail) == (reason, detail), error.message
    assert elapsed < DEADLINE_S + 1.0
    assert growth < MEMORY_LIMIT, f"peak RSS grew by {growth >> 20} MiB"


@pytest.mark.parametrize(
    ("path", "reason", "detail"),
    [
        ("/to-http", "bad-url", "not-https"),
        ("/to-loopback", "bad-url", "ip-literal"),
        ("/to-metadata", "bad-url", "ip-literal"),
        ("/to-other-host", "redirect-cross-host", ""),
        ("/loop", "too-many-redirects", ""),
    ],
)
def test_redirects_when_allowed_are_regated(lab: Lab, path: str, reason: str, detail: str) -> None:
    error, elapsed, _ = _refused(_fetcher(lab, max_redirects=2), lab.url(path))
    assert (error.reason, error.detail) == (reason, detail)
    assert elapsed < DEADLINE_S + 1.0


def test_same_host_redirect_followed_when_allowed(lab: Lab) -> None:
    result = _fetcher(lab, max_redirects=1).fetch(lab.url("/to-same-host"))
    assert (result.status, result.body, result.redirects) == (FetchStatus.OK, GOOD, 1)
    assert result.url == lab.url("/good.json")


def test_slow_tls_handshake_hits_the_deadline(lab: Lab) -> None:
    error, elapsed, _ = _refused(_fetcher(lab), lab.slow_url("/good.json"))
    assert error.reason == "deadline"
    assert elapsed < DEADLINE_S + 1.0


def test_name_resolving_to_loopback_is_denied_without_allow_list(lab: Lab) -> None:
    error, _, _ = _refused(_fetcher(lab, allow=False), lab.url("/good.json", host="evil.test"))
    assert error.reason == "address-denied"
    assert "Loopback" in error.message
    assert not [r for r in lab.requests_log() if r["path"] == "/good.json" and "evil" in str(r)]


def test_mixed_dns_answer_is_denied(lab: Lab) -> None:
    resolver = loopback_resolver({"mud.test": ["93.184.216.34", "169.254.169.254"]})
    error, _, _ = _refused(_fetcher(lab, allow=False, resolver=resolver), lab.url("/good.json"))
    assert error.reason == "address-denied"
    assert "Link Local 169.254.0.0/16" in error.message


def test_allowed_host_bypasses_the_deny_list_by_name(lab: Lab) -> None:
    options = FetchOptions(
        limits=FetchLimits(deadline_s=DEADLINE_S), ca_bundle=lab.ca_pem_path, allowed_hosts=frozenset({"mud.test"})
    )
    fetcher = Fetcher(options, resolver=loopback_resolver({"mud.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}))
    assert fetcher.fetch(lab.url("/good.json")).body == GOOD
    with pytest.raises(FetchError) as info:
        fetcher.fetch(lab.url("/good.json", host="other.test"))
    assert info.value.reason == "address-denied"


def test_unknown_name_and_hanging_resolver(lab: Lab) -> None:
    error, _, _ = _refused(_fetcher(lab), lab.url("/good.json", host="nowhere.test"))
    assert error.reason == "resolve-failed"
    release = threading.Event()

    def hanging(host: str, port: int) -> Sequence[str]:
        release.wait(DEADLINE_S + 5)  # bounded: released right after the assertion
        return ["127.0.0.1"]

    try:
        error, elapsed, _ = _refused(_fetcher(lab, resolver=hanging), lab.url("/good.json"))
        assert error.reason == "deadline"
        assert elapsed < DEADLINE_S + 1.0
    finally:
        release.set()


def test_tls_failures(lab: Lab) -> None:
    # The system store does not know the lab CA.
    fetcher = Fetcher(
        FetchOptions(limits=FetchLimits(deadline_s=DEADLINE_S), allowed_networks=LOOPBACK),
        resolver=loopback_resolver({"mud.test": ["127.0.0.1"]}),
    )
    assert _refused(fetcher, lab.url("/good.json"))[0].reason == "tls-failed"
    # The lab certificate does not name evil.test.
    assert _refused(_fetcher(lab), lab.url("/good.json", host="evil.test"))[0].reason == "tls-failed"


def test_connection_refused(lab: Lab) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    error, _, _ = _refused(_fetcher(lab), f"https://mud.test:{closed_port}/good.json")
    assert error.reason == "connect-failed"


def test_good_fetch_sends_the_expected_request(lab: Lab) -> None:
    result = _fetcher(lab).fetch(lab.url("/good.json"))
    assert result.status is FetchStatus.OK
    assert (result.body, result.content_type, result.peer) == (GOOD, "application/mud+json", "127.0.0.1")
    assert result.validators == Validators('"v1"', "Tue, 01 Sep 2026 10:00:00 GMT")
    request = [r for r in lab.requests_log() if r["path"] == "/good.json"][-1]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["accept"] == "application/mud+json"
    assert headers["accept-encoding"] == "identity"
    assert headers["accept-language"] == "en"
    assert headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("mud_ryu/")
    assert request["sni"] == "mud.test"


def test_body_beyond_content_length_is_never_read(lab: Lab) -> None:
    result = _fetcher(lab).fetch(lab.url("/oversize-unannounced"))
    assert result.body == b"x" * 10


def test_gzip_body_is_decoded_when_small(lab: Lab) -> None:
    assert _fetcher(lab).fetch(lab.url("/gzipped.json")).body == GOOD


def test_conditional_refresh(lab: Lab) -> None:
    fetcher = _fetcher(lab)
    by_etag = fetcher.fetch(lab.url("/good.json"), validators=Validators(etag='"v1"'))
    assert (by_etag.status, by_etag.body) == (FetchStatus.NOT_MODIFIED, b"")
    by_date = fetcher.fetch(lab.url("/good.json"), validators=Validators(last_modified="Tue, 01 Sep 2026 10:00:00 GMT"))
    assert by_date.status is FetchStatus.NOT_MODIFIED
    changed = fetcher.fetch(lab.url("/good.json"), validators=Validators(etag='"v0"'))
    assert (changed.status, changed.body) == (FetchStatus.OK, GOOD)


def test_lenient_content_type_switch(lab: Lab) -> None:
    options = FetchOptions(
        limits=FetchLimits(deadline_s=DEADLINE_S),
        ca_bundle=lab.ca_pem_path,
        allowed_networks=LOOPBACK,
        require_content_type=False,
    )
    fetcher = Fetcher(options, resolver=loopback_resolver({"mud.test": ["127.0.0.1"]}))
    assert fetcher.fetch(lab.url("/html")).content_type == "text/html"


def test_concurrency_limit_reports_busy(lab: Lab) -> None:
    fetcher = _fetcher(lab, max_concurrent=1)
    first: list[BaseException] = []

    def slow() -> None:
        try:
            fetcher.fetch(lab.url("/drip"))
        except FetchError as exc:
            first.append(exc)

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        # Poll until the drip fetch holds the only slot, then a second fetch must give up with "busy".
        limit = time.monotonic() + DEADLINE_S
        while fetcher._limiter.in_flight() == 0 and time.monotonic() < limit:
            time.sleep(0.005)
        error, _, _ = _refused(fetcher, lab.url("/good.json"))
        assert error.reason == "busy"
    finally:
        worker.join(DEADLINE_S + 2)
    assert [e.reason for e in first if isinstance(e, FetchError)] == ["deadline"]


def test_url_gate_runs_before_any_io(lab: Lab) -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    for url in ("http://mud.test/x", "https://user@mud.test/x", "https://mud.test/a/../b", "https://127.0.0.1/x"):
        error, _, _ = _refused(_fetcher(lab, resolver=resolver), url)
        assert error.reason == "bad-url" and error.detail
    assert calls == []


def test_connected_peer_is_checked_again(lab: Lab) -> None:
    """The connection re-reads the peer address after connect: a socket that ended up elsewhere is refused."""
    from mud_ryu.fetch.fetcher import _Attempt, _PinnedHTTPSConnection
    from mud_ryu.fetch.guard import Deadline

    options = FetchOptions(limits=FetchLimits(deadline_s=DEADLINE_S), allowed_networks=LOOPBACK)
    deadline = Deadline(DEADLINE_S, time.monotonic)
    try:
        conn = _PinnedHTTPSConnection("mud.test", lab.port, mud_attempt=_Attempt(["127.0.0.1"], options, deadline))
        with socket.create_connection(("127.0.0.1", lab.port), timeout=DEADLINE_S) as sock:
            with pytest.raises(FetchError) as mismatch:
                conn._check_peer(sock, "127.0.0.2")
            assert mismatch.value.reason == "peer-mismatch"
            strict = FetchOptions(limits=FetchLimits(deadline_s=DEADLINE_S))
            conn._mud_attempt = _Attempt(["127.0.0.1"], strict, deadline)
            with pytest.raises(FetchError) as denied:
                conn._check_peer(sock, "127.0.0.1")
            assert denied.value.reason == "address-denied"
    finally:
        deadline.close()
