"""What a device or host on the LAN cannot do, on real Open vSwitch (issue 11): every attack, forged with scapy and
sent from a lab host's own interface, against ``ryu-manager mud_ryu.app`` in the home lab, observed by a catcher on
the target's interface -- each with a control the same catcher must see (mud_ryu.lab.attack_scenario)."""

from __future__ import annotations

from typing import Any

import pytest

from mud_ryu.lab import attack_scenario, labhosts, sandbox

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))
ATTACKS = [a.id for a in attack_scenario._frames("ids")]


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.attack_scenario:lan_attacks", None, timeout=420)
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("attack_id", ATTACKS)
def test_attack_verdict(run: dict[str, Any], attack_id: str) -> None:
    (row,) = [r for r in run["attacks"] if r["id"] == attack_id]
    assert row["observed"] == row["expected"], (row, run["controller_log_tail"][-1500:])


def test_a_forged_dns_answer_from_the_devices_port_binds_nothing(run: dict[str, Any]) -> None:
    dns = run["dns"]
    assert dns["wrong_port"] >= 1 and not dns["forged_bound"] and dns["control_bound"]


def test_a_new_mac_on_a_device_port_is_alerted(run: dict[str, Any]) -> None:
    assert run["new_mac_alerted"]


def test_a_hot_added_port_gets_its_meter_first_and_its_device_is_discovered(run: dict[str, Any]) -> None:
    port = run["hot_added_port"]
    assert port["meter_present"] and len(port["punts"]) == 3 and port["enforced"]
    assert all("meter:" in f for f in port["punts"])
    assert port["switch_errors"] == []


def test_a_released_devices_identity_is_not_taken_from_another_port(run: dict[str, Any]) -> None:
    takeover = run["takeover"]
    assert takeover["alerted"] and takeover["port_after"] == labhosts.host("bulb2").home_port
