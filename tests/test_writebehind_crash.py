"""Device rows written behind (issue 14) and a crash before their flush: at start the trust store decides who may be
enforced, so a row the last turn left behind never restores a policy the device's trust does not hold there (R2:
no device has a policy without a pin)."""

from __future__ import annotations

from pathlib import Path

from mud_ryu.policy.types import DeviceId
from tests.enforcer_lab import BULB, DPID, PEER_PORT, URL, Lab
from tests.mudfiles import ip_mud_file


def _deferred_lab(state: Path) -> Lab:
    lab = Lab(state)
    lab.store.defer_writes(lambda: None)  # the app's flush never runs: a crash comes first
    lab.connect()
    return lab


def _crash_and_restart(before: Lab, state: Path) -> Lab:
    # No close() (it would flush): the rows still waiting are lost, as with kill -9.
    after = Lab(state)
    after.sim = before.sim  # the switch still holds the flows it had
    after.connect()
    return after


def test_a_move_whose_row_was_not_flushed_does_not_restore_the_old_place(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lab = _deferred_lab(state)
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.store.flush()  # on disk: enforced at port 1
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    lab.apply(lab.enforcer.port_down(DPID, 1, 1.0))
    lab.announce(BULB, 2, URL)  # the trust moves to port 2 (committed); its row waits
    assert lab.trust.record(DeviceId(DPID, 2, BULB)).current_url == URL
    assert lab.trust.record(DeviceId(DPID, 1, BULB)).current_url is None
    restarted = _crash_and_restart(lab, state)
    device = restarted.enforcer.devices[BULB]
    assert (device.port, device.state) == (1, "quarantined")  # no pin at (switch, 1, MAC): no policy there
    assert not restarted.sim.is_output(restarted.tcp(BULB, 1, 443), PEER_PORT)


def test_a_small_change_whose_row_was_not_flushed_is_not_stuck_on_the_old_url(tmp_path: Path) -> None:
    url2 = "https://mud.test/bulb-v2.json"
    state = tmp_path / "state"
    lab = _deferred_lab(state)
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.store.flush()  # on disk: enforced on URL
    lab.announce(BULB, 1, url2)
    lab.resolve(url2, ip_mud_file(url2, port=8443))
    assert lab.trust.record(DeviceId(DPID, 1, BULB)).current_url == url2
    assert lab.enforcer.devices[BULB].url == url2
    restarted = _crash_and_restart(lab, state)
    # The row says URL; the trust record holds url2 (URL is a rollback for it now): not enforced from the row.
    assert restarted.enforcer.devices[BULB].state == "quarantined"
    # The device's next announcement and the worker's answer restore what its trust holds.
    restarted.announce(BULB, 1, url2)
    restarted.resolve(url2, ip_mud_file(url2, port=8443))
    device = restarted.enforcer.devices[BULB]
    assert (device.state, device.url) == ("enforced", url2)
    assert restarted.sim.is_output(restarted.tcp(BULB, 1, 8443), PEER_PORT)
