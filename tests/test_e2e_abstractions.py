"""RFC 8520's abstractions live in the lab with the NIST corpus files: ryu-manager mud_ryu.app enforcing nine devices
that announce over DHCPv4, DHCPv6 and LLDP, every verdict observed with real packets (issue 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mud_ryu.lab import abstractions_scenario as scenario
from mud_ryu.lab import labhosts, sandbox
from mud_ryu.mudfile import reader as mudfile

needs_sandbox = pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason=str(sandbox.unavailable_reason()))


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.abstractions_scenario:abstractions", None, timeout=400)
    assert isinstance(result, dict)
    return result


def test_the_served_files_are_the_corpus_files() -> None:
    """Byte for byte, except the two the lab writes: a second model URL of the same-manufacturer file, and the
    toothbrush (no corpus file names a device those ACEs could reach)."""
    for role in scenario.ROLES:
        if role.source.startswith("lab:"):
            continue
        tree = json.loads((scenario.CORPUS / role.source).read_bytes())
        assert tree["ietf-mud:mud"]["mud-url"] == role.url
    second = json.loads(scenario.second_model_file())
    first = json.loads((scenario.CORPUS / scenario.ROLES[0].source).read_bytes())
    assert second["ietf-mud:mud"].pop("mud-url") == scenario.SAME_MFG_2
    assert first["ietf-mud:mud"].pop("mud-url") == scenario.SAME_MFG
    assert second == first
    assert mudfile.parse(scenario.toothbrush_file()).mud.mud_url == scenario.TOOTHBRUSH
    assert mudfile.parse(scenario.second_model_file()).mud.mud_url == scenario.SAME_MFG_2


def test_each_abstraction_has_a_corpus_device_and_every_device_a_lab_host() -> None:
    kinds = {r.abstraction.split(" ")[0] for r in scenario.ROLES if not r.source.startswith("lab:")}
    assert {"same-manufacturer", "manufacturer", "model", "local-networks", "controller", "my-controller"} <= kinds
    for role in scenario.ROLES:
        assert role.device in labhosts.placement("abstractions")
    assert len({r.device for r in scenario.ROLES}) == len(scenario.ROLES)


@needs_sandbox
def test_every_device_is_enforced_by_its_announced_url(run: dict[str, Any]) -> None:
    by_mac = {d["mac"]: d for d in run["devices"]}
    for role in scenario.ROLES:
        device = by_mac[labhosts.host(role.device).mac]
        assert (device["url"], device["state"]) == (role.url, "enforced")
    assert {by_mac[labhosts.host(n).mac]["via"] for n in ("bulb", "sensor6", "hub")} == {"dhcpv4", "dhcpv6", "lldp"}


@needs_sandbox
@pytest.mark.parametrize("index", range(len(scenario.PROBES)),
                         ids=[f"{p.src}->{p.dst}:{p.proto}/{p.port}" for p in scenario.PROBES])  # fmt: skip
def test_probe(run: dict[str, Any], index: int) -> None:
    probe = run["probes"][index]
    assert probe["observed"] == probe["expected"], probe["reason"]


@needs_sandbox
def test_a_device_of_the_same_manufacturer_joins_without_touching_the_first_ones_flows(run: dict[str, Any]) -> None:
    join = run["join"]
    assert join["events"] > 0  # the monitor saw bulb2's own flows arrive
    assert join["bulb_profile_touched"] == []


@needs_sandbox
def test_my_controller_set_and_cleared_over_the_rest_api(run: dict[str, Any]) -> None:
    assert [(s["phase"], s["dst"], s["observed"]) for s in run["my_controller"]] == [
        (phase, dst, expected) for phase, dst, expected in scenario.MY_CONTROLLER_PROBES
    ]
    assert (run["put"]["_status"], run["put"]["reason"]) == (200, "set")
    entries = [e for e in run["listed"]["entries"] if e["url"] == scenario.MY_CONTROLLER]
    assert entries == [{"url": scenario.MY_CONTROLLER, "addresses": [scenario.MY_CONTROLLER_IP], "source": "operator"}]
    assert (run["delete"]["_status"], run["delete"]["reason"]) == (200, "cleared")
    assert run["unauthorised_status"] == 401
