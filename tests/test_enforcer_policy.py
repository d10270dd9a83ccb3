"""The MUD URL update policy inside the enforcer: what each decision does to a device's flows (on the table
simulator), that trust survives a restart, and the operator's approve / revoke / forget."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mud_ryu.enforcer import operator as operator_actions
from mud_ryu.enforcer.core import Alert, Effect, ResolveRequest
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.wire import WireResult
from mud_ryu.policy.types import TrustState
from tests.enforcer_lab import BULB, BULB2, IPS, NOW, PEER_MAC, PEER_PORT, Lab, alerts, device_rules
from tests.mudfiles import ip_mud_file
from tests.packets import Packet

V1 = "https://mud.test/bulb/v1.json"
V2 = "https://mud.test/bulb/v2.json"
OTHER_HOST = "https://evil.test/bulb/v2.json"
OTHER_PREFIX = "https://mud.test/other/v2.json"
VENDOR = Signer("aa" * 20, ("CN=bulb signer,O=Vendor", "CN=Vendor CA"), "a1" * 32)
STRANGER = Signer("bb" * 20, ("CN=bulb signer,O=Vendor", "CN=Another CA"), "b2" * 32)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    running = Lab(tmp_path / "state")
    running.connect()
    running.announce(BULB, 1, V1)
    running.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    assert running.sim.is_output(running.tcp(BULB, 1, 443), PEER_PORT)  # v1 enforced, VENDOR pinned
    yield running
    running.store.close()


def _allows(lab: Lab, port: int) -> bool:
    return lab.sim.is_output(lab.tcp(BULB, 1, port), PEER_PORT)


def test_small_change_same_signer_is_applied(lab: Lab) -> None:
    effects = lab.announce(BULB, 1, V2)
    assert ResolveRequest(V2) in effects
    lab.resolve(V2, ip_mud_file(V2, port=8883), signer=VENDOR)
    assert _allows(lab, 8883) and not _allows(lab, 443)
    record = lab.trust.record(lab.trust.store.records()[0].identity)
    assert (record.current_url, record.state) == (V2, TrustState.TRUSTED)
    assert [a.url for a in record.history] == [V1, V2]


@pytest.mark.parametrize("url", [OTHER_HOST, OTHER_PREFIX, "https://mud.test:8443/bulb/v2.json"])
def test_big_url_changes_are_violations_and_quarantine(lab: Lab, url: str) -> None:
    effects = lab.announce(BULB, 1, url)
    assert alerts(effects) == ["update-violation"]
    assert not [e for e in effects if isinstance(e, ResolveRequest)]  # never even fetched
    assert not _allows(lab, 443)  # quarantined: bootstrap only
    assert device_rules(lab, BULB)  # ... but classified (DHCP still works)
    assert lab.store.devices()[0].reason.startswith("policy:")


def test_another_signer_is_a_violation(lab: Lab) -> None:
    lab.announce(BULB, 1, V2)
    lab.resolve(V2, ip_mud_file(V2, port=8883), signer=STRANGER)
    assert "update-violation" in alerts(lab.effects)
    assert not _allows(lab, 8883) and not _allows(lab, 443)


def test_rollback_after_an_update_is_refused(lab: Lab) -> None:
    lab.announce(BULB, 1, V2)
    lab.resolve(V2, ip_mud_file(V2, port=8883), signer=VENDOR)
    effects = lab.announce(BULB, 1, V1)
    assert alerts(effects) == ["update-violation"]
    assert any(isinstance(e, Alert) and "rollback" in e.message for e in effects)
    assert not _allows(lab, 443) and not _allows(lab, 8883)


def test_keep_last_instead_of_quarantine(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", violation_action="keep-last")
    lab.connect()
    lab.announce(BULB, 1, V1)
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    effects = lab.announce(BULB, 1, OTHER_HOST)
    assert alerts(effects) == ["update-violation"]
    assert _allows(lab, 443)  # the last verified policy stays
    lab.store.close()


def test_violation_survives_a_restart(lab: Lab, tmp_path: Path) -> None:
    lab.announce(BULB, 1, OTHER_HOST)
    lab.store.close()
    restarted = Lab(tmp_path / "state")
    restarted.sim = lab.sim
    restarted.connect()
    assert not _allows(restarted, 443)
    effects = restarted.announce(BULB, 1, V1)  # the old, once-trusted URL does not lift the quarantine
    assert not _allows(restarted, 443)
    assert alerts(effects) == ["pending-approval", "pending-replaced"]  # the refused URL it replaced is gone
    restarted.store.close()


def test_operator_approves_a_refused_change(lab: Lab) -> None:
    lab.announce(BULB, 1, OTHER_HOST)
    body = ip_mud_file(OTHER_HOST, port=8080)
    # Refused on its URL alone, never fetched: the operator names the digest of the file they reviewed.
    outcome = operator_actions.approve(lab.enforcer, BULB, OTHER_HOST, hashlib.sha256(body).hexdigest(), NOW)
    assert (outcome.ok, outcome.reason) == (True, "approved")
    assert ResolveRequest(OTHER_HOST, force=True) in outcome.effects
    lab.resolve(OTHER_HOST, body, signer=STRANGER)
    assert _allows(lab, 8080) and not _allows(lab, 443)


def test_operator_revokes_and_forgets(lab: Lab) -> None:
    revoked = operator_actions.revoke(lab.enforcer, BULB, NOW)
    lab.apply(list(revoked.effects))
    assert revoked.ok and not _allows(lab, 443)
    forgotten = operator_actions.forget(lab.enforcer, BULB, NOW)
    lab.apply(list(forgotten.effects))
    assert forgotten.ok and device_rules(lab, BULB) == []
    assert lab.store.devices() == [] and lab.trust.store.records() == []
    # Forgotten: the next announcement is a first use again.
    lab.announce(BULB, 1, OTHER_HOST)
    lab.resolve(OTHER_HOST, ip_mud_file(OTHER_HOST, port=8080), signer=STRANGER)
    assert _allows(lab, 8080)


def test_operator_errors_have_reasons(lab: Lab) -> None:
    digest = "ab" * 32
    assert operator_actions.approve(lab.enforcer, "02:00:00:00:00:99", V2, digest, NOW).reason == "unknown-device"
    assert operator_actions.approve(lab.enforcer, BULB, V2, digest, NOW).reason == "nothing-to-approve"
    assert operator_actions.approve(lab.enforcer, BULB, "http://x.test/a", digest, NOW, chosen=True).reason == "bad-url"
    assert operator_actions.approve(lab.enforcer, BULB, V2, "ab" * 31, NOW, chosen=True).reason == "bad-field"


def test_refresh_with_new_content_from_same_signer_is_applied(lab: Lab) -> None:
    lab.resolve(V1, ip_mud_file(V1, port=8443, systeminfo="v1 respun"), signer=VENDOR)
    assert _allows(lab, 8443) and not _allows(lab, 443)


def test_unchanged_refresh_is_quiet(lab: Lab) -> None:
    mark = len(lab.effects)
    lab.resolve(V1, ip_mud_file(V1, port=443), Outcome.CACHED, signer=VENDOR)
    assert lab.effects[mark:] == []


def test_quarantine_keeps_local_dns_and_ntp(tmp_path: Path) -> None:
    """The issue's quarantine: DHCP (bootstrap band) and DNS/NTP to the local servers only."""
    lab = Lab(tmp_path / "state", dns_servers=("10.0.0.53",), ntp_servers=("10.0.0.123",))
    lab.connect()
    lab.announce(BULB, 1, V1)
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    lab.announce(BULB, 1, OTHER_HOST)  # violation: quarantined
    dns = Packet.udp(1, BULB, PEER_MAC, IPS[BULB], "10.0.0.53", 40000, 53)
    ntp = Packet.udp(1, BULB, PEER_MAC, IPS[BULB], "10.0.0.123", 40000, 123)
    other_dns = Packet.udp(1, BULB, PEER_MAC, IPS[BULB], "192.0.2.53", 40000, 53)
    assert lab.sim.is_output(dns, PEER_PORT) and lab.sim.is_output(ntp, PEER_PORT)
    assert not lab.sim.is_output(other_dns, PEER_PORT) and not _allows(lab, 443)
    lab.store.close()


def _aged(lab: Lab, outcome: Outcome = Outcome.KEPT_LAST) -> list[Effect]:
    """The worker's answer for V1 once its signer expired: the last verified bytes, with the aged reason."""
    body = ip_mud_file(V1, port=443)
    sha = hashlib.sha256(body).hexdigest()
    result = WireResult(2, V1, outcome, "signature:expired", "signer expired", None, None, sha, VENDOR, body)
    effects = lab.enforcer.resolved(result, NOW)
    lab.apply(effects)
    return list(effects)


def test_an_expired_signer_keeps_the_held_policy_and_never_enforces_a_newcomer(lab: Lab) -> None:
    lab.enforcer.resolution.asked([V1], NOW)  # the refresh of V1 is in flight: no standing answer for newcomers
    lab.announce(BULB2, 2, V1)  # a second device asks for the same URL meanwhile: waiting, not yet enforced
    assert not lab.sim.is_output(lab.tcp(BULB2, 2, 443), PEER_PORT)
    effects = _aged(lab)
    assert sorted(alerts(effects)) == ["signature-expired", "signature-expired"]
    assert _allows(lab, 443)  # BULB keeps what it holds (never wider)
    assert not lab.sim.is_output(lab.tcp(BULB2, 2, 443), PEER_PORT)  # BULB2 is not granted an aged file
    reasons = {d.mac: (d.state, d.reason) for d in lab.store.devices()}
    assert reasons[BULB] == ("enforced", "signature:expired")  # what the API shows
    assert reasons[BULB2][0] != "enforced"
    assert alerts(_aged(lab, Outcome.BACKOFF)) == []  # a backoff answer repeats no alert
    # Signed again: the next fresh answer clears the reason.
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    assert {d.mac: d.reason for d in lab.store.devices()}[BULB] == ""


def test_an_expired_signer_quarantines_when_so_configured(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", expired_signature_action="quarantine")
    lab.connect()
    lab.announce(BULB, 1, V1)
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    assert _allows(lab, 443)
    assert alerts(_aged(lab)) == ["signature-expired"]
    assert not _allows(lab, 443)
    assert [(d.state, d.reason) for d in lab.store.devices()] == [("quarantined", "signature:expired")]
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)  # signed again
    assert _allows(lab, 443)
    lab.store.close()


@pytest.mark.parametrize("named", [V1 + "?x", "https://mud.test//bulb/v1.json", "https://mud.test/bulb/./v1.json"])
def test_a_file_whose_mud_url_fails_the_gate_is_invalid_not_replaced_by_the_fetched_url(
    tmp_path: Path, named: str
) -> None:
    lab = Lab(tmp_path / "state")
    lab.connect()
    lab.announce(BULB, 1, V1)
    lab.resolve(V1, ip_mud_file(named, port=443), signer=VENDOR)
    assert not _allows(lab, 443)  # first use refused: never enforced under a file naming an ungated URL
    assert [(d.state, d.reason) for d in lab.store.devices()] == [("quarantined", "mud:bad-mud-url")]
    assert "quarantined" in alerts(lab.effects)
    lab.store.close()


def test_the_canonical_mud_url_is_what_the_compiler_sees(lab: Lab) -> None:
    # The file names its URL with an upper-case host: the gate's canonical form decides manufacturer and model.
    lab.announce(BULB2, 2, V2)
    lab.resolve(V2, ip_mud_file("https://MUD.test/bulb/v2.json", port=8883), signer=VENDOR)
    profile = lab.enforcer.profiles[V2]
    assert profile.file_mud_url == V2 and profile.mud is not None and profile.mud.mud_url == V2
    assert profile.mfg_id == lab.enforcer.profiles[V1].mfg_id


def test_a_device_quarantined_for_an_aged_signer_is_not_re_enforced_by_announcing_again(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", expired_signature_action="quarantine")
    lab.connect()
    lab.announce(BULB, 1, V1)
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    _aged(lab)
    assert not _allows(lab, 443)
    effects = lab.announce(BULB, 1, V1)  # a DHCP renewal: the file in memory must not be enforced again
    assert not _allows(lab, 443) and ResolveRequest(V1) in effects  # the worker decides
    for i in range(4):  # even with its port's resolution budget held by a port-mate stalling four URLs
        lab.enforcer.resolution.budget.admit(f"https://slow.test/{i}.json", f"02:00:00:00:01:{i:02x}", (1, 1), NOW)
    lab.enforcer.resolved(WireResult(3, V1, Outcome.BACKOFF, "fetch:busy", "", None, None, None, None, b""), NOW)
    lab.announce(BULB, 1, V1)
    assert not _allows(lab, 443)
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)  # signed again
    assert _allows(lab, 443)
    lab.store.close()
