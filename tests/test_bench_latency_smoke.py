"""``benchmarks/enforce_latency.py --quick`` runs end to end in a sandbox: real OVS, ryu-manager, HTTPS fetches of
signed MUD files, raw DHCP announcements. Asserts the result's shape and the functional outcome (every device
enforced, the allowed SYN reached the peer, the forbidden one did not); timings are the benchmark's business."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab_tools import switch_lab_skip_reason

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "enforce_latency.py"
PHASE_KEYS = {
    "mode", "rate", "devices", "offered_rate", "standing_at_start", "enforced", "dropped", "timed_out", "p50_ms",
    "p99_ms", "max_ms", "min_ms", "latencies_ms", "confirm_lines_per_device", "first_confirmation_reads_enforced",
    "resolver_outcomes", "stages", "probes", "released",
}  # fmt: skip


def _skip_reason() -> str | None:
    return switch_lab_skip_reason("ovs-vswitchd", "ovsdb-server", "nsenter", "ethtool")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(f"latency benchmark needs a sandbox with OVS: {reason}")
    out = tmp_path_factory.mktemp("bench") / "enforce_latency.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_result_shape(quick_result: dict[str, Any]) -> None:
    assert quick_result["benchmark"] == "enforce_latency" and quick_result["quick"] is True
    assert quick_result["controller_alive"] is True
    assert {p["mode"] for p in quick_result["phases"]} == {"cached", "fetch"}
    for phase in quick_result["phases"]:
        assert set(phase) == PHASE_KEYS
        assert len(phase["latencies_ms"]) == phase["enforced"]
    assert set(quick_result["knee"]) == {"cached", "fetch"}
    assert set(quick_result["targets"]) == {"cached", "fetch"}


def test_every_device_enforced_and_released(quick_result: dict[str, Any]) -> None:
    for phase in quick_result["phases"]:
        assert phase["devices"] > 0
        assert (phase["enforced"], phase["dropped"], phase["timed_out"]) == (phase["devices"], 0, 0), phase["mode"]
        assert phase["released"] is True
    fetch = next(p for p in quick_result["phases"] if p["mode"] == "fetch")
    # one full fetch + signature check per device: each URL was answered "fresh" (not from the cache)
    assert fetch["resolver_outcomes"] == {"fresh": fetch["devices"]}


def test_allowed_probe_arrives_and_forbidden_does_not(quick_result: dict[str, Any]) -> None:
    for phase in quick_result["phases"]:
        probes = phase["probes"]
        assert probes["sampled"] == phase["devices"]  # --quick probes every device
        for probe in probes["detail"]:
            assert probe["allowed_arrived"] is True, probe
            assert probe["forbidden_arrived"] is False, probe
