"""``benchmarks/dns_update.py --quick`` end to end: the in-process layer always, the sandboxed switch layer (real OVS,
ryu-manager, a signed 100-name profile over HTTPS, raw DNS frames) when a sandbox with OVS is available. Asserts
the result's shape and what each update must do (an answer adds the new address's flows and deletes none, its
expiry deletes exactly those, the data plane follows); timings are the benchmark's business."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile import semantic
from tests.lab_tools import switch_lab_skip_reason

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "dns_update.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
import dns_update_core as core  # noqa: E402

ROUND_KEYS = {"rounds", "p50_ms", "p99_ms", "max_ms", "mean_ms", "early_p50_ms", "late_p50_ms", "bound_before", "adds",
              "deletes", "rounds_with_full_gc", "full_gc_ms_max", "p99_without_full_gc_ms"}  # fmt: skip


def _switch_skip_reason() -> str | None:
    return switch_lab_skip_reason("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "nsenter", "ethtool")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "dns_update.json"
    extra = [] if _switch_skip_reason() is None else ["--no-switch"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), *extra], cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_generated_profiles_are_valid_up_to_the_name_cap() -> None:
    for names in (1, 10, semantic.MAX_DNS_NAMES):
        mud = mudfile.parse(core.dns_mud_file(names)).mud
        used = {ip.dst_dnsname for acl in mud.from_device for ace in acl.aces if (ip := ace.matches.ipv4)}
        back = {ip.src_dnsname for acl in mud.to_device for ace in acl.aces if (ip := ace.matches.ipv4)}
        assert used == back == {core.dns_name(i) for i in range(names)}
    assert core.refused_reason(semantic.MAX_DNS_NAMES + 1) == "too-many-dns-names"


def test_round_plan_respects_the_per_name_address_cap() -> None:
    picks = core.plan_rounds(10, 1000, 16, seed=5)
    assert len(picks) == 160 and max(Counter(picks).values()) == 16
    assert len({core.bench_address(k) for k in range(70000)}) == 70000


def test_result_shape(quick_result: dict[str, Any]) -> None:
    assert quick_result["benchmark"] == "dns_update" and quick_result["quick"] is True
    layer = quick_result["core"]
    assert [r["names"] for r in layer["sizes"]] == [10, 100]
    for row in layer["sizes"]:
        assert set(row["answer"]) == set(row["expiry"]) == ROUND_KEYS
        assert row["answer"]["rounds"] == row["expiry"]["rounds"] == 20
        assert row["profile_flows_peak"] > row["profile_flows"]
    assert set(layer["scaling"]) == {"10", "100"} and layer["scaling"]["10"]["answer_p50_ratio"] == 1.0
    shares = layer["profile"]["share"]
    # An answer re-expands only the ACEs naming the name (recompile_sets), never the whole profile.
    assert shares["Enforcer.dns_seen"] == 1.0 and 0 < shares["recompile_sets"] <= 1.0
    assert shares["compile_profile"] == 0
    assert layer["refused"] == {"257": "too-many-dns-names", "1000": "too-many-aces"}


def test_answers_add_and_expiries_delete_only_the_changed_flows(quick_result: dict[str, Any]) -> None:
    for row in quick_result["core"]["sizes"]:
        answer, expiry, checks = row["answer"], row["expiry"], row["checks"]
        assert answer["adds"]["min"] >= 1 and answer["deletes"]["max"] == 0  # an answer never removes
        assert expiry["adds"]["max"] == 0 and expiry["deletes"] == answer["adds"]  # expiry takes exactly those out
        # the profile grew by exactly the flows the answers added
        assert row["profile_flows_peak"] - row["profile_flows"] == answer["adds"]["mean"] * answer["rounds"]
        assert checks["failures"] == [] and checks["bound_at_end"] == 0
        assert checks["allowed_after_answer"] == checks["denied_after_expiry"] == checks["checked"] == 20


def test_switch_layer_installs_the_same_flows(quick_result: dict[str, Any]) -> None:
    switch = quick_result["switch"]
    if "skipped" in switch:
        pytest.skip(f"switch layer: {switch['skipped']}")
    assert "failed" not in switch, switch.get("failed")
    assert switch["controller_alive"] is True and switch["errors"] == []
    assert switch["rounds"] == 5 and switch["missed"] == 0 and switch["ofctl_agrees"] == 5
    core_100 = next(r for r in quick_result["core"]["sizes"] if r["names"] == 100)
    assert switch["app_adds"]["mean"] == core_100["answer"]["adds"]["mean"] and switch["app_deletes"]["max"] == 0
    assert switch["app_updates_per_round"] == {"min": 1, "max": 1, "mean": 1.0}
    probes = switch["probes"]
    assert probes["sampled"] == 5 and probes["allowed_arrived"] == 5 and probes["unanswered_arrived"] == 0
