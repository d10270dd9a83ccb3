"""Bounds on the MUD URL resolutions one device and one access port may have in flight (THREATS.md row 25)."""

from __future__ import annotations

from pathlib import Path

from mud_ryu.enforcer.core import ResolveRequest
from mud_ryu.fetch.budget import BUSY, ResolveBudget
from tests.enforcer_lab import BULB, PEER_PORT, Lab, alerts
from tests.mudfiles import ip_mud_file

A, B, C = "02:00:00:00:0a:01", "02:00:00:00:0a:02", "02:00:00:00:0a:03"
PORT3 = (1, 3)


def test_per_device_per_port_and_total_bounds() -> None:
    budget = ResolveBudget(per_device=2, per_port=3, total=5, timeout_s=30.0)
    assert [budget.admit(f"u{i}", A, PORT3, 0.0) for i in range(3)] == [None, None, BUSY]
    assert budget.admit("u0", C, (1, 9), 0.0) is None  # joining a URL in flight costs nothing
    assert budget.admit("v0", B, PORT3, 0.0) is None
    assert budget.admit("v1", B, PORT3, 0.0) == BUSY  # the port's third is taken
    assert "port" in budget.which_bound(B, PORT3)
    budget.done("u0")
    assert budget.admit("v1", B, PORT3, 0.0) is None
    assert budget.admit("w0", C, (1, 4), 0.0) is None and budget.admit("w1", C, (1, 4), 0.0) is None
    assert len(budget) == 5 and budget.admit("x", "02:00:00:00:0b:01", (1, 7), 0.0) == BUSY  # total
    assert budget.refused == 3


def test_an_answer_that_never_came_stops_counting() -> None:
    budget = ResolveBudget(per_device=1, per_port=4, timeout_s=30.0)
    assert budget.admit("u0", A, PORT3, 0.0) is None
    assert budget.admit("u1", A, PORT3, 29.9) == BUSY
    assert budget.admit("u1", A, PORT3, 30.0) is None
    assert budget.admit("u2", A, PORT3, 10.0) is None  # a clock that went back frees it too


def test_a_port_churning_urls_cannot_starve_another_device(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    lab.connect()
    asked: list[str] = []
    busy: list[str] = []
    # Three MACs on port 3 announce five first-use URLs each, on hosts whose answers never come.
    for mac in (A, B, C):
        for i in range(5):
            effects = lab.announce(mac, 3, f"https://stall{i}.{mac[-2:]}.test/dev.json", bind=False)
            asked += [e.url for e in effects if isinstance(e, ResolveRequest)]
            busy += [a for a in alerts(effects) if a == "fetch-busy"]
    assert len(asked) == 4  # the port's bound: 2 for A, 2 for B, none for C
    assert busy == ["fetch-busy"] * 3  # one alert a minute per device
    assert {d.mac: d.reason for d in lab.store.devices()}[C] == BUSY
    # Another device, on another port, is asked for and enforced as usual.
    url = "https://mud.test/bulb.json"
    assert ResolveRequest(url) in lab.announce(BULB, 1, url)
    lab.resolve(url, ip_mud_file(url, port=443))
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    # An answer frees a slot: the port's next announcement is asked for again.
    lab.resolve(asked[0], None, reason="fetch:deadline")
    again = lab.announce(C, 3, "https://stall0.03.test/dev.json", bind=False)
    assert ResolveRequest("https://stall0.03.test/dev.json") in again
    lab.store.close()


def test_a_shared_port_has_its_own_bound(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", shared_ports=frozenset({(1, 4)}), max_resolving_per_shared_port=6)
    lab.connect()
    macs = [f"02:00:00:00:0c:{i:02x}" for i in range(8)]
    asked = [
        e.url for i, mac in enumerate(macs)
        for e in lab.announce(mac, 4, f"https://vendor{i}.test/dev.json", bind=False) if isinstance(e, ResolveRequest)
    ]  # fmt: skip
    assert len(asked) == 6  # an access point in front of many devices: more than an access port's 4
    lab.store.close()


def test_a_busy_or_failed_worker_answer_is_asked_again_soon(tmp_path: Path) -> None:
    from mud_ryu.enforcer.resolution import RESOLVE_TIMEOUT_S, RETRY_SOON_S
    from mud_ryu.fetch.refresh import Outcome
    from mud_ryu.fetch.wire import WireResult
    from tests.enforcer_lab import NOW

    lab = Lab(tmp_path / "state")
    lab.connect()
    url = "https://mud.test/bulb.json"
    lab.announce(BULB, 1, url)
    for reason in ("fetch:busy", "internal:AttributeError"):
        lab.enforcer.resolved(WireResult(1, url, Outcome.BACKOFF, reason, "", NOW + 5, None, None, None, b""), NOW)
        assert lab.enforcer.retry_lost(NOW + RETRY_SOON_S - 0.1) == []
        assert lab.enforcer.retry_lost(NOW + RETRY_SOON_S) == [ResolveRequest(url)]  # without re-announcing
    lab.enforcer.resolved(WireResult(2, url, Outcome.FIRST_CONTACT_FAILED, "fetch:bad-status", "", None, None, None,
                                     None, b""), NOW)  # fmt: skip
    assert lab.enforcer.retry_lost(NOW + RESOLVE_TIMEOUT_S) == []  # an answer about the URL is not retried here
    lab.store.close()
