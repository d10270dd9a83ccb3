"""End to end: ``ryu-manager mud_ryu.app`` enforcing on userspace Open vSwitch in the Mininet lab, with real
udhcpc/dhclient/dhclient -6/lldpd clients, a real HTTPS MUD server with a lab CA and signed files, dnsmasq, and
real traffic. Everything runs inside a private sandbox (mud_ryu.lab.sandbox); the jobs live in
mud_ryu.lab.scenarios and return plain data that is asserted here (data plane and flow table)."""

from __future__ import annotations

from typing import Any

import pytest

from mud_ryu.lab import labhosts, labmud, sandbox

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))


@pytest.fixture(scope="module")
def home() -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.scenarios:home", {"restart": True}, timeout=400)
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def two() -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.scenarios:two_switch", None, timeout=400)
    assert isinstance(result, dict)
    return result


def _device(home: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in home["devices"] if d["device"] == name)


def test_every_probe_matches_both_directions(home: dict[str, Any]) -> None:
    mismatches = [p for p in home["probes"] if p["expected"] != p["observed"]]
    assert mismatches == []
    verdicts = {(p["src"] == "internet", p["observed"]) for p in home["probes"]}
    assert {(False, "allowed"), (False, "blocked"), (True, "blocked")} <= verdicts
    assert len(home["probes"]) >= len(labmud.PROBES)


@pytest.mark.parametrize(("name", "via"), [("bulb", "dhcpv4"), ("cam", "dhcpv4"), ("sensor6", "dhcpv6"),
                                           ("hub", "lldp")])  # fmt: skip
def test_each_discovery_path_leads_to_enforcement(home: dict[str, Any], name: str, via: str) -> None:
    device = _device(home, name)
    assert (device["via"], device["state"], device["url"]) == (via, "enforced", labhosts.host(name).mud_url)
    assert device["signer"].startswith("CN=mud_ryu lab MUD signer")
    assert device["device_flows"] >= 3 and device["profile_flows"] > 0
    assert device["device_flow_packets"] > 0  # cookie-tagged flows that really carried the probes


def test_direction_initiated_on_the_real_switch(home: dict[str, Any]) -> None:
    assert [(t["expected"], t["observed"]) for t in home["traces"]] == [("blocked", "blocked"), ("allowed", "allowed")]


def test_two_devices_share_one_profile(home: dict[str, Any]) -> None:
    bulb, bulb2 = _device(home, "bulb"), _device(home, "bulb2")
    assert bulb["profile_id"] == bulb2["profile_id"] is not None
    assert bulb["profile_flows"] == bulb2["profile_flows"] > 0  # the same shared rules, counted once on the switch


def test_server_down_quarantines_and_no_mud_is_default_allowed(home: dict[str, Any]) -> None:
    broken = _device(home, "broken")
    assert broken["state"] == "quarantined"
    assert broken["reason"].endswith("fetch:connect-failed")  # later re-announcements meet the worker's backoff
    assert broken["device_flows"] >= 3 and broken["profile_flows"] == 0
    assert _device(home, "laptop")["state"] == "unmanaged"
    assert home["checks"]["laptop_lease"] == labhosts.host("laptop").ip


def test_spoofed_dhcp_from_another_port_is_refused(home: dict[str, Any]) -> None:
    checks = home["checks"]
    assert checks["spoof_alerted"] and checks["spoof_left_flows_alone"]
    assert checks["bulb_after_spoof"] == "allowed"


def test_release_removes_device_flows(home: dict[str, Any]) -> None:
    assert home["checks"]["bulb2_flows_after_release"] == []


def test_controller_kill_and_restart_deletes_no_valid_flow(home: dict[str, Any]) -> None:
    checks = home["checks"]
    assert (checks["during_outage_bulb_443"], checks["during_outage_bulb_22"]) == ("allowed", "blocked")
    assert checks["flows_missing_after_restart"] == []
    # only learned hosts may appear (traffic during the restart window), never policy flows
    assert all("priority=20000" in f or "priority=20001" in f for f in checks["flows_added_after_restart"])
    assert checks["monitor_deleted"] == []
    assert checks["reconcile_line"].endswith(" 0 to add, 0 stale")
    assert " 0% packet loss" in checks["ping_through_restart"][0]
    assert (checks["bulb_after_restart"], checks["bulb_22_after_restart"]) == ("allowed", "blocked")


def test_two_switches_and_a_device_move(two: dict[str, Any]) -> None:
    assert [p for p in two["probes"] if p["expected"] != p["observed"]] == []
    assert {p["phase"] for p in two["probes"]} == {"before-move", "after-move"}
    checks = two["checks"]
    assert checks["bulb2_on_s2_before"] >= 3
    assert checks["bulb2_device_flows_on_s2_after"] == []
    assert checks["bulb2_device_flows_on_s1_after"] == 2
