"""The resolver worker process and its line protocol: request in, result event out, time injected."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mud_ryu.fetch.manager import MudManager, MudRequest, MudResolution
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.wire import (
    WireError,
    WireResult,
    decode_request,
    decode_result,
    encode_request,
    encode_result,
)
from mud_ryu.fetch.worker import WorkerSettings, serve
from mud_ryu.mudfile import reader as mudfile
from tests import sigvectors
from tests.https_fixtures import Lab, run_https_lab
from tests.mudfiles import SigningPki, mud_file

NOW = sigvectors.T0.timestamp()
REPO = Path(__file__).resolve().parent.parent


def test_request_round_trip() -> None:
    wire = decode_request(encode_request(7, MudRequest("https://mud.test/a.json", force=True), NOW))
    assert (wire.id, wire.request, wire.now) == (7, MudRequest("https://mud.test/a.json", True), NOW)


def test_result_round_trip_keeps_body_and_signer() -> None:
    signer = Signer("ab" * 20, ("CN=signer", "CN=ca"), valid_until=NOW + 86400)
    body = mud_file("https://mud.test/a.json")
    parsed = mudfile.parse(body)
    resolution = MudResolution("https://mud.test/a.json", Outcome.FRESH, parsed, signer, "00" * 32, NOW + 10, body=body)
    result = decode_result(encode_result(3, resolution))
    assert result == WireResult(3, resolution.url, Outcome.FRESH, "", "", None, NOW + 10, "00" * 32, signer, body,
                                NOW + 86400)  # how long the signer's verification holds crosses the wire  # fmt: skip
    failed = MudResolution("https://x.test/a", Outcome.FIRST_CONTACT_FAILED, None, None, None, None, "fetch:busy")
    decoded = decode_result(encode_result(4, failed))
    assert (decoded.body, decoded.alert, decoded.reason) == (b"", True, "fetch:busy")


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[]",
        b'{"id": -1, "url": "u", "now": 1}',
        b'{"id": true, "url": "u", "now": 1}',
        b'{"id": 1, "url": 5, "now": 1}',
        b'{"id": 1, "url": "u", "now": NaN}',
        b'{"id": 1, "url": "u", "now": 1, "force": "yes"}',
        b"{" + b" " * (5 << 20) + b"}",
    ],
)
def test_malformed_requests(line: bytes) -> None:
    with pytest.raises(WireError):
        decode_request(line)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decoders_only_raise_wire_errors(line: bytes) -> None:
    for decode in (decode_request, decode_result):
        with contextlib.suppress(WireError):
            decode(line)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path, SigningPki]]:
    root = tmp_path_factory.mktemp("worker-site")
    for name in ("bulb.json", "bulb.p7s"):
        (root / name).write_bytes(b"placeholder")
    routes = {
        "/bulb.json": {"kind": "static", "live": True, "body_file": "bulb.json",
                       "headers": [["Content-Type", "application/mud+json"]]},
        "/bulb.p7s": {"kind": "static", "live": True, "body_file": "bulb.p7s",
                      "headers": [["Content-Type", "application/pkcs7-signature"]]},
        "/down.json": {"kind": "status", "status": 500},
    }  # fmt: skip
    pki = SigningPki.create()
    with run_https_lab(routes, root) as running:
        body = mud_file(running.url("/bulb.json"), running.url("/bulb.p7s"), systeminfo="worker bulb")
        (root / "bulb.json").write_bytes(body)
        (root / "bulb.p7s").write_bytes(pki.sign(body))
        yield running, root, pki


def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout_s: float) -> list[bytes]:
    assert proc.stdout is not None
    lines: list[bytes] = []
    buffer = b""
    end = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(lines) < count and time.monotonic() < end:
            if not sel.select(timeout=max(0.0, end - time.monotonic())):
                continue
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines.extend(complete)
    return lines


def _start(tmp_path: Path, settings: WorkerSettings) -> subprocess.Popen[bytes]:
    path = tmp_path / "worker.json"
    path.write_text(json.dumps(settings.to_json()))
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "mud_ryu.fetch.worker", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env,
    )  # fmt: skip


def _settings(lab: Lab, root: Path, tmp_path: Path) -> WorkerSettings:
    anchors = tmp_path / "anchors.pem"
    return WorkerSettings(
        cache_path=str(tmp_path / "state" / "cache.sqlite3"),
        trust_anchors=(str(anchors),),
        tls_ca_bundle=lab.ca_pem_path,
        allowed_networks=("127.0.0.1",),
        deadline_s=5.0,
        threads=4,
        resolve={"mud.test": ["127.0.0.1"]},
    )


def test_worker_resolves_requests_and_exits_on_eof(lab: tuple[Lab, Path, SigningPki], tmp_path: Path) -> None:
    running, root, pki = lab
    (tmp_path / "anchors.pem").write_bytes(pki.anchors_pem)
    proc = _start(tmp_path, _settings(running, root, tmp_path))
    try:
        assert proc.stdin is not None
        proc.stdin.write(encode_request(1, MudRequest(running.url("/bulb.json")), NOW))
        proc.stdin.write(encode_request(2, MudRequest(running.url("/down.json")), NOW))
        proc.stdin.write(encode_request(3, MudRequest("https://user@mud.test/x"), NOW))
        proc.stdin.flush()
        results = {r.id: r for r in map(decode_result, _read_lines(proc, 3, 30.0))}
        assert sorted(results) == [1, 2, 3]
        good = results[1]
        assert good.outcome is Outcome.FRESH and good.signer is not None
        assert good.signed_until is not None and good.signed_until > NOW  # the verified chain's first expiry
        assert mudfile.parse(good.body).mud.systeminfo == "worker bulb"  # the controller re-parses the bytes
        assert (results[2].outcome, results[2].reason) == (Outcome.FIRST_CONTACT_FAILED, "fetch:bad-status")
        assert (results[3].outcome, results[3].reason) == (Outcome.FIRST_CONTACT_FAILED, "url:userinfo")
        # The same URL again, an hour later: served from the worker's cache.
        proc.stdin.write(encode_request(4, MudRequest(running.url("/bulb.json")), NOW + 3600))
        proc.stdin.flush()
        (again,) = map(decode_result, _read_lines(proc, 1, 30.0))
        assert (again.id, again.outcome, again.body) == (4, Outcome.CACHED, good.body)
        assert again.signed_until == good.signed_until  # re-verified at the current time, the same chain
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_worker_stops_on_protocol_error(lab: tuple[Lab, Path, SigningPki], tmp_path: Path) -> None:
    running, root, pki = lab
    (tmp_path / "anchors.pem").write_bytes(pki.anchors_pem)
    proc = _start(tmp_path, _settings(running, root, tmp_path))
    try:
        _, err = proc.communicate(b'{"id": "x"}\n', timeout=30)
        assert proc.returncode == 2
        assert b"protocol error" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_settings_refuse_unknown_fields_and_policies() -> None:
    with pytest.raises(ValueError, match="unknown worker settings"):
        WorkerSettings.from_json({"cache_path": "x", "verify": False})
    with pytest.raises(ValueError):
        WorkerSettings.from_json({"cache_path": "x", "signature_policy": "sometimes"})
    settings = WorkerSettings.from_json({"cache_path": "x", "allowed_hosts": ["mud.test"]})
    assert WorkerSettings.from_json(settings.to_json()) == settings


def test_names_round_trip_and_malformed_names() -> None:
    from mud_ryu.fetch.wire import (
        WireNames,
        WireNamesRequest,
        decode_any_request,
        decode_any_result,
        encode_names_request,
        encode_names_result,
    )

    assert decode_any_request(encode_names_request(9, ("a.example", "b.example"))) == WireNamesRequest(
        9, ("a.example", "b.example")
    )
    answers: dict[str, tuple[tuple[str, ...], float]] = {"a.example": (("192.0.2.1", "2001:db8::1"), 60.0)}
    assert decode_any_result(encode_names_result(9, answers)) == WireNames(9, answers)
    failed = MudResolution("https://x.test/a", Outcome.FIRST_CONTACT_FAILED, None, None, None, None, "fetch:busy")
    assert isinstance(decode_any_result(encode_result(4, failed)), WireResult)
    for bad in (b'{"id": 1, "names": "a.example"}', b'{"id": 1, "names": [""]}', b'{"id": 1, "names": [1]}'):
        with pytest.raises(WireError):
            decode_any_request(bad)
    with pytest.raises(WireError):
        decode_any_result(b'{"id": 1, "answers": {"a": {"addresses": [1], "ttl": 1}}}')


def _stalling(running: Lab, n: int) -> list[str]:
    """URLs on ``n`` distinct hosts whose TLS handshake stalls (the per-host fetch bound does not apply)."""
    return [running.slow_url(f"/churn{i}.json", host=f"stall{i}.test") for i in range(n)]


def _stall_settings(running: Lab, root: Path, tmp_path: Path, **changes: object) -> WorkerSettings:
    hosts = {f"stall{i}.test": ["127.0.0.1"] for i in range(16)}
    base = _settings(running, root, tmp_path)
    return dataclasses.replace(base, resolve={**base.resolve, **hosts}, threads=8, **changes)  # type: ignore[arg-type]


def _first_answer(proc: subprocess.Popen[bytes], urls: list[str], good: str) -> WireResult:
    assert proc.stdin is not None
    for ident, url in enumerate([*urls, good], start=1):
        proc.stdin.write(encode_request(ident, MudRequest(url), NOW))
    proc.stdin.flush()
    lines = _read_lines(proc, 1, 30.0)  # answers that come together may arrive in one read
    assert lines
    return decode_result(lines[0])


@pytest.mark.parametrize(("stalled", "good_first"), [(4, True), (8, False)])
def test_what_one_port_may_have_in_flight_leaves_the_worker_free_for_others(
    lab: tuple[Lab, Path, SigningPki], tmp_path: Path, stalled: int, good_first: bool
) -> None:
    # 4 is what one access port may have in resolution at once (max_resolving_per_port): with 8 threads the next
    # device's URL is answered while those still stall. 8 (no such bound) is the control: it waits behind them.
    running, root, pki = lab
    (tmp_path / "anchors.pem").write_bytes(pki.anchors_pem)
    proc = _start(tmp_path, _stall_settings(running, root, tmp_path, deadline_s=3.0))
    try:
        first = _first_answer(proc, _stalling(running, stalled), running.url("/bulb.json"))
        assert (first.id == stalled + 1) is good_first
        if good_first:
            assert first.outcome is Outcome.FRESH
    finally:
        proc.kill()
        proc.wait(10)


def test_a_full_queue_answers_fetch_busy_at_once(lab: tuple[Lab, Path, SigningPki], tmp_path: Path) -> None:
    running, root, pki = lab
    (tmp_path / "anchors.pem").write_bytes(pki.anchors_pem)
    proc = _start(tmp_path, dataclasses.replace(_stall_settings(running, root, tmp_path), threads=1, max_queued=1))
    try:
        first = _first_answer(proc, _stalling(running, 2), running.url("/bulb.json"))
        assert (first.id, first.outcome, first.reason, first.alert) == (3, Outcome.BACKOFF, "fetch:busy", False)
        assert first.retry_at is not None and first.retry_at > NOW and not first.body
    finally:
        proc.kill()
        proc.wait(10)


def test_a_resolution_that_raises_is_still_answered() -> None:
    class Broken:
        def resolve(self, request: MudRequest, now: float) -> MudResolution:
            raise RuntimeError("a bug")

    requests = io.BytesIO(encode_request(9, MudRequest("https://mud.test/a.json"), NOW))
    results = io.BytesIO()
    assert serve(cast(MudManager, Broken()), requests, results, threads=1) == 0
    (line,) = results.getvalue().splitlines()
    answer = decode_result(line)
    assert (answer.id, answer.outcome, answer.reason, answer.body) == (9, Outcome.BACKOFF, "internal:RuntimeError", b"")
