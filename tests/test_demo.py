"""``make demo``: the enforcer in the home lab. Runs the real demo job once, then checks its verdict logic
catches every kind of deviation."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.lab import demo, sandbox

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return demo.run_demo()


def test_demo_passes_and_reports_every_device_and_probe(result: dict[str, Any]) -> None:
    assert demo.failures(result) == []
    text = demo.report(result)
    assert text.endswith("RESULT: PASS")
    for name, via in (
        ("bulb", "dhcpv4"),
        ("sensor6", "dhcpv6"),
        ("hub", "lldp"),
        ("laptop", "-"),
        ("broken", "dhcpv4"),
    ):
        assert any(line.startswith(f"{name:<8} {via:<8}") for line in text.splitlines()), name
    assert "CN=mud_ryu lab MUD signer" in text
    assert "UPDATE POLICY" in text and "rollback-url" in text and "signer-changed" in text and "other-host" in text
    assert "RFC 8520 ABSTRACTIONS" in text and "https://mfgtest.nist.local/super1" in text
    assert "ATTACKS FROM THE LAN" in text and "laptop sends bulb a DHCP offer" in text


@pytest.mark.parametrize(
    "breakage",
    ["probe", "trace", "spoof", "restart-flows", "restart-deleted", "ping", "reconcile", "policy", "token", "dns",
     "abstraction-probe", "my-controller", "mfg-join", "abstraction-state", "attack", "attack-dns", "attack-port",
     "attack-takeover"],
)
def test_every_deviation_fails_the_demo(result: dict[str, Any], breakage: str) -> None:
    bad = copy.deepcopy(result)
    if breakage == "probe":
        bad["probes"][0]["observed"] = "allowed" if bad["probes"][0]["expected"] == "blocked" else "blocked"
    elif breakage == "trace":
        bad["traces"][0]["observed"] = "allowed"
    elif breakage == "spoof":
        bad["checks"]["spoof_left_flows_alone"] = False
    elif breakage == "restart-flows":
        bad["checks"]["flows_missing_after_restart"] = ["cookie=0x4d3... priority=59996,tcp actions=goto_table:3"]
    elif breakage == "restart-deleted":
        bad["checks"]["monitor_deleted"] = ["event=DELETED table=0 cookie=0x4d..."]
    elif breakage == "ping":
        bad["checks"]["ping_through_restart"] = ["60 packets transmitted, 57 received, 5% packet loss"]
    elif breakage == "policy":
        bad["policy"]["steps"][2]["observed"] = {"443": "allowed", "8883": "allowed"}
    elif breakage == "dns":
        bad["dns"]["failures"] = [{"address": "10.0.0.11", "ok": False}]
    elif breakage == "abstraction-probe":
        bad["abstractions"]["probes"][2]["observed"] = "allowed"  # cam reaching bulb: another manufacturer
    elif breakage == "my-controller":
        bad["abstractions"]["my_controller"][-1]["observed"] = "allowed"  # still open after the entry was deleted
    elif breakage == "mfg-join":
        bad["abstractions"]["join"]["bulb_profile_touched"] = ["event=MODIFIED table=2 cookie=0x..."]
    elif breakage == "abstraction-state":
        bad["abstractions"]["devices"][0]["state"] = "quarantined"
    elif breakage == "attack":
        blocked = next(r for r in bad["attacks"]["attacks"] if r["expected"] == "blocked")
        blocked["observed"] = "delivered"
    elif breakage == "attack-dns":
        bad["attacks"]["dns"]["forged_bound"] = True
    elif breakage == "attack-port":
        bad["attacks"]["hot_added_port"]["switch_errors"] = ["switch dpid=... error type=12 code=1"]
    elif breakage == "attack-takeover":
        bad["attacks"]["takeover"]["port_after"] = 9
    elif breakage == "token":
        bad["policy"]["unauthorised_status"] = 200
    elif breakage == "reconcile":
        bad["checks"]["reconcile_line"] = "reconcile dpid=1: 110 held, 114 wanted, 4 to add, 0 stale"
    assert demo.failures(bad)
    assert "RESULT: FAIL" in demo.report(bad)


def test_make_demo_entry_point_exit_status() -> None:
    done = subprocess.run([sys.executable, "-m", "mud_ryu.lab.demo"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RESULT: PASS" in done.stdout
