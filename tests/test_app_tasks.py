"""The app's background tasks outlive a failing round: a green thread that died would end DNS expiry (stale
addresses allowed for good), resolution retries or refreshes silently."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from mud_ryu.edge import tasks as app_tasks
from mud_ryu.enforcer.core import Effect, FlowUpdate
from tests.enforcer_lab import BULB, Lab
from tests.test_enforcer_dns_spelling import NAME, PLAIN, RESOLVER, _file


class Stop(Exception):
    """Ends a loop under test from its sleep."""


def test_dns_expiry_goes_on_after_a_round_fails(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", dns_servers=(RESOLVER,))
    lab.connect()
    lab.announce(BULB, 1, PLAIN)
    lab.resolve(PLAIN, _file(PLAIN, NAME))
    past = time.time() - 10_000.0  # bound long ago: due at once
    lab.apply(lab.enforcer.dns_resolved({NAME: (("198.51.100.7",), 300.0)}, past))
    rounds: list[list[Effect]] = []
    sleeps: list[float] = []

    def execute(effects: Iterable[Effect]) -> None:
        rounds.append(list(effects))
        if len(rounds) == 1:
            raise RuntimeError("the switch went away mid-update")

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # another address falls due while the task waits
            lab.enforcer.dns_resolved({NAME: (("198.51.100.8",), 300.0)}, past)
        else:
            raise Stop

    with pytest.raises(Stop):
        app_tasks.dns_loop(lab.enforcer, execute, sleep)
    assert len(rounds) == 2  # the round after the failure ran
    assert any(isinstance(e, FlowUpdate) and e.deletes for e in rounds[1])  # and expired the second address
    assert lab.enforcer.dns.next_expiry() is None
    lab.store.close()


def test_resolution_retries_go_on_after_a_round_fails(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    lab.connect()
    lab.enforcer.resolution.resolving[PLAIN] = time.time() - 1_000.0  # asked long ago, never answered
    rounds: list[list[Effect]] = []

    def execute(effects: Iterable[Effect]) -> None:
        rounds.append(list(effects))
        if len(rounds) == 1:
            raise RuntimeError("worker gone")

    def sleep(seconds: float) -> None:
        if len(rounds) == 2:
            raise Stop

    with pytest.raises(Stop):
        app_tasks.retry_loop(lab.enforcer, execute, sleep)
    assert len(rounds) == 2
    lab.store.close()
