"""At start the trust store decides who may be enforced, not the device rows: a revoke whose row write never
happened (a crash, a failed disk write) must not be undone by a restart."""

from __future__ import annotations

from pathlib import Path

from mud_ryu.policy.types import DeviceId
from tests.enforcer_lab import BULB, DPID, NOW, PEER_PORT, URL, Lab
from tests.mudfiles import ip_mud_file


def _enforced(state: Path) -> Lab:
    lab = Lab(state)
    lab.connect()
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    return lab


def _restart(before: Lab, state: Path) -> Lab:
    before.store.close()
    after = Lab(state)
    after.sim = before.sim  # the switch still holds the enforced flows
    after.connect()
    return after


def test_a_revoke_committed_to_trust_but_not_to_the_row_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lab = _enforced(state)
    lab.trust.revoke(DeviceId(DPID, 1, BULB), NOW)  # trust committed; the crash comes before the row and the flows
    assert lab.store.devices()[0].state == "enforced"
    restarted = _restart(lab, state)
    assert restarted.enforcer.devices[BULB].state == "quarantined"
    assert not restarted.sim.is_output(restarted.tcp(BULB, 1, 443), PEER_PORT)


def test_a_device_trust_keeps_enforced_stays_enforced_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    restarted = _restart(_enforced(state), state)
    assert restarted.enforcer.devices[BULB].state == "enforced"
    assert restarted.sim.is_output(restarted.tcp(BULB, 1, 443), PEER_PORT)
