"""DNS names live in the lab (THREATS.md R15): a rotating A record, a device looking the name up before every
connection every 100 ms, and ryu-manager mud_ryu.app holding each answer until its address is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from mud_ryu.lab import dns_scenario, sandbox

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.dns_scenario:dns_rotation", None, timeout=400)
    assert isinstance(result, dict)
    return result


def test_proactive_resolution_opens_the_named_service_only(run: dict[str, Any]) -> None:
    *rotating, own = run["before_device_lookup"]
    assert "allowed" in rotating  # resolved by the controller at profile load: the first connection works
    assert own == "blocked"


def test_every_answer_is_usable_through_the_rotations(run: dict[str, Any]) -> None:
    assert run["rounds"] == 120
    assert run["failures"] == []  # no interval where the answered address was not allowed
    assert run["addresses_seen"] == sorted(dns_scenario.ROTATING)  # the record really rotated


def test_only_the_named_service_is_reachable(run: dict[str, Any]) -> None:
    assert run["other_host_during"] == "blocked"


def test_an_address_no_longer_given_expires_after_its_ttl(run: dict[str, Any]) -> None:
    after = run["old_blocked_after_s"]
    assert after is not None and after >= dns_scenario.TTL
