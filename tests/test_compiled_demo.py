"""The compiled NIST sensor policy enforces real traffic in a sandboxed OVS (no controller)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mud_ryu.lab import compiled_demo as demo
from mud_ryu.lab import netns, sandbox

needs_sandbox = pytest.mark.skipif(sandbox.unavailable_reason() is not None,
                                   reason=f"demo needs a sandbox: {sandbox.unavailable_reason()}")


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return demo.run_demo(timeout=90)


@needs_sandbox
def test_every_probe_matches_its_expected_verdict(result: dict[str, Any]) -> None:
    wrong = [(p["id"], p["expected"], p["observed"], p["detail"]) for p in result["probes"]
             if p["observed"] != p["expected"]]
    assert wrong == []
    assert [p["id"] for p in result["probes"]] == [p.id for p in demo.PROBES]
    assert demo.all_match(result)


@needs_sandbox
def test_both_verdicts_occur_in_both_directions(result: dict[str, Any]) -> None:
    seen = {(p["src_host"], p["observed"]) for p in result["probes"]}
    assert {("thing", "allowed"), ("thing", "blocked"), ("internet", "allowed"), ("internet", "blocked")} <= seen


@needs_sandbox
def test_control_run_reaches_every_listener(result: dict[str, Any]) -> None:
    # With the policy replaced by one NORMAL flow every probe gets through: the blocked
    # verdicts above come from the compiled flows, not from a missing listener or route.
    assert result["control"] == {p.id: "allowed" for p in demo.PROBES}


@needs_sandbox
def test_ace_flows_counted_packets(result: dict[str, Any]) -> None:
    hits = {h["ace"]: h for h in result["ace_hits"]}
    assert any(h["packets"] > 0 for h in result["ace_hits"])
    assert hits["from-device/cl0-frdev"]["packets"] > 0  # the allowed HTTPS connection
    assert hits["to-device/cl0-todev"]["guard_drops"] > 0  # www.nist.local may not initiate
    assert hits["from_device/rfc8520-defaults(dns,ntp)"]["packets"] > 0
    assert result["flows_in_switch"] == result["flows_installed"]
    assert result["mud_url"] == "https://sensor.nist.local/nistmud1"


def _fake_result() -> dict[str, Any]:
    probes = [{"id": p.id, "src_host": p.src_host, "kind": p.kind, "dst": p.dst, "port": p.port,
               "expected": p.expected, "reason": p.reason, "src": p.src, "sport": p.sport,
               "observed": p.expected, "detail": "d"} for p in demo.PROBES]
    return {"mud_file": demo.MUD_FILE, "mud_url": "u", "systeminfo": "s", "flows_installed": 1,
            "probes": probes, "ace_hits": [], "probe_seconds": 0.0,
            "control": {p.id: "allowed" for p in demo.PROBES}}


def test_report_flags_a_mismatch_and_a_failed_control() -> None:
    good = _fake_result()
    assert demo.all_match(good) and "MISMATCH" not in demo.report(good)
    bad = copy.deepcopy(good)
    bad["probes"][1]["observed"] = "allowed"  # a forbidden flow got through
    assert not demo.all_match(bad)
    assert "MISMATCH" in demo.report(bad)
    ctl = copy.deepcopy(good)
    ctl["control"]["www-80"] = "blocked"
    assert not demo.all_match(ctl)


def test_probe_table_has_both_verdicts_and_reasons() -> None:
    assert {p.expected for p in demo.PROBES} == {demo.ALLOWED, demo.BLOCKED}
    assert all(p.reason for p in demo.PROBES)
    assert len({p.id for p in demo.PROBES}) == len(demo.PROBES)


def test_dns_answer_matches_its_query() -> None:
    query = netns.dns_query("www.nist.local", 0x1234)
    answer = netns.dns_answer(query, "192.0.2.10")
    assert answer is not None and answer[:2] == b"\x12\x34" and answer[2] & 0x80
    assert answer.endswith(bytes([192, 0, 2, 10]))
    assert netns.dns_answer(answer, "192.0.2.10") is None  # a response is not answered
    assert netns.dns_answer(b"\x00" * 5, "192.0.2.10") is None
