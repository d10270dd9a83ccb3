"""The app against a bare userspace Open vSwitch: what a switch connect installs, the fail-mode warning (R1),
and an announcement whose MUD server cannot be reached (quarantine, fail closed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mud_ryu.lab import sandbox

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = sandbox.run_callable("tests.app_ovs_jobs:standalone_bridge", None, timeout=180,
                                  env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert isinstance(result, dict)
    return result


def test_standalone_fail_mode_is_reported_loudly(run: dict[str, Any]) -> None:
    assert run["connected"], run["log"]
    assert run["standalone_reported"], run["log"]


def test_connect_installs_meters_and_per_port_punts(run: dict[str, Any]) -> None:
    assert "meter=17" in run["meters"] and "meter=18" in run["meters"] and "meter=1 " in run["meters"]
    assert "rate=100" in run["meters"]
    # three punts (DHCPv4, DHCPv6, LLDP) per port, each metered and copying whole frames to the controller
    assert len(run["punts"]) == 6
    assert all("meter:" in f and "CONTROLLER:65535" in f for f in run["punts"])


def test_unreachable_mud_server_quarantines(run: dict[str, Any]) -> None:
    assert run["quarantined"], run["log"]
    flows = run["device_flows"]
    assert any("write_metadata:0x100000000000001/" in f for f in flows)  # src profile 1 = quarantine, managed
    assert any("actions=drop" in f for f in flows)  # anti-spoofing
