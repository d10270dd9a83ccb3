"""The MUD URL update policy end to end: real clients announce changed URLs in the Mininet lab, the enforcer
(ryu-manager mud_ryu.app) accepts or refuses each per draft-ietf-iotops-mud-acceptable-urls, real traffic shows the
result, the REST API shows state and alerts, an operator approves, and a restart resets no trust."""

from __future__ import annotations

from typing import Any

import pytest

from mud_ryu.lab import sandbox

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.policy_scenario:update_policy", None, timeout=400)
    assert isinstance(result, dict)
    return result


def _step(run: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(s for s in run["steps"] if s["step"].startswith(prefix))


def test_every_step_matches_on_the_wire_and_over_rest(run: dict[str, Any]) -> None:
    assert len(run["steps"]) == 7
    for step in run["steps"]:
        assert step["observed"] == step["expected"], step
        assert step["state"] == step["expected_state"], step
        assert step["alert_seen"], step


def test_small_change_applied_and_first_use_pinned(run: dict[str, Any]) -> None:
    assert _step(run, "first use")["url"] == "https://mud.lab/bulb.json"
    assert _step(run, "firmware update")["url"] == "https://mud.lab/bulb-v2.json"


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [("rollback", "rollback-url"), ("bulb-x.json", "signer-changed"), ("bulb2: URL on another host", "other-host")],
)
def test_violations_carry_their_reason(run: dict[str, Any], prefix: str, reason: str) -> None:
    step = _step(run, prefix)
    assert (step["state"], step["alert_reason"]) == ("quarantined", reason)


def test_restart_keeps_the_quarantine_and_the_operator_can_approve(run: dict[str, Any]) -> None:
    assert _step(run, "controller kill -9")["state"] == "quarantined"
    approved = _step(run, "operator approves")
    assert approved["state"] == "enforced" and approved["decision"] == "approved"


def test_state_changes_need_the_token(run: dict[str, Any]) -> None:
    assert (run["unauthorised_status"], run["unauthorised"]) == (401, "bad-token")
