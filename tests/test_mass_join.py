"""Many devices joining at once cost the enforcer work linear in their number (issue 14), counted, not timed.

Measured before: each answer for a URL that many devices share rewrote the row of every device on it (one fsync
each) and ran the update policy for each, and each newcomer's resolution brought another such answer -- quadratic
in the devices of a URL. Now an answer concerns only the devices waiting on it (an index, not a scan), a repeat
writes nothing, and a newcomer meets the worker's last answer while it stands (a file verified and in force within
RECHECK_S, a failure until its retry_at) without a resolution of its own. These tests count what a join costs: rows
written, policy steps, resolutions asked; each bound fails on the quadratic code.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.discovery.scan import Announcement
from mud_ryu.enforcer import resolution
from mud_ryu.enforcer.core import Enforcer
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.enforcer.resolution import RECHECK_S
from mud_ryu.enforcer.state import Alert, Effect, FlowUpdate, ResolveRequest
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.wire import WireResult
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStore, TrustStoreError
from mud_ryu.policy.table import UpdatePolicy
from mud_ryu.policy.types import DeviceId
from mud_ryu.settings import MudSettings
from tests.mudfiles import ip_mud_file

DPID = 1
PORTS = 100  # access ports 1..100; 101 is the uplink
UPLINK = PORTS + 1
URL = "https://mud.test/bulb.json"
DEAD = "https://dead.test/bulb.json"
NOW = 1_767_225_600.0
DEVICES = 300
VENDOR = Signer("aa" * 20, ("CN=bulb signer,O=Vendor", "CN=Vendor CA"), "a1" * 32)
STRANGER = Signer("bb" * 20, ("CN=bulb signer,O=Vendor", "CN=Another CA"), "b2" * 32)


class Counted:
    """An enforcer on real stores whose row writes and policy steps are counted."""

    def __init__(self, state: Path) -> None:
        self.settings = MudSettings(state_dir=str(state), uplink_ports=frozenset({(DPID, UPLINK)}),
                                    min_url_change_interval=0, min_pending_interval=0)  # fmt: skip
        self.store = DeviceStore.open(self.settings.device_db_path)
        self.trust_store = TrustStore.open(self.settings.state_dir)
        self.trust = TrustGate(UpdatePolicy(self.settings.policy_settings()), self.trust_store)
        self.calls: Counter[str] = Counter()
        self._count(self.store, "save_device")
        self._count(self.trust, "verified_many", "verified")  # policy steps: one per device in the batch
        self._count(self.trust, "fetch_failed_many", "fetch_failed")
        self._count(self.trust_store, "commit_many", "trust_transactions", per_item=False)
        self.enforcer = Enforcer(self.settings, self.store, self.trust, NOW)
        self.enforcer.switch_up(DPID, range(1, UPLINK + 1), metered=True)
        self.enforcer.reconcile(DPID, [], NOW)
        self.requests: list[str] = []

    def _count(self, target: Any, name: str, label: str = "", *, per_item: bool = True) -> None:
        """Count calls of ``target.name`` under ``label``; a batch method (``*_many``) counts its items."""
        real: Callable[..., Any] = getattr(target, name)
        batch = name.endswith("_many") and per_item

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[label or name] += len(args[0]) if batch else 1
            return real(*args, **kwargs)

        setattr(target, name, counted)

    def run(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            if isinstance(effect, FlowUpdate):
                self.enforcer.confirmed(effect.confirms)  # the barrier came back
            elif isinstance(effect, ResolveRequest):
                self.requests.append(effect.url)
        return effects

    def announce(self, i: int, url: str, now: float = NOW) -> list[Effect]:
        mac = f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
        ann = Announcement("dhcpv4", mac, None, url, msg_type=1, chaddr=mac)
        return self.run(self.enforcer.discovered(DPID, 1 + i % PORTS, ann, now))

    def answer(self, result: WireResult, now: float = NOW) -> list[Effect]:
        return self.run(self.enforcer.resolved(result, now))

    def states(self) -> Counter[tuple[str, str]]:
        return Counter((d.state, d.reason) for d in self.enforcer.devices.values())

    def close(self) -> None:
        self.store.close()
        self.trust_store.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Counted]:
    counted = Counted(tmp_path / "state")
    yield counted
    counted.close()


def _verified(url: str, signer: Signer | None = None) -> WireResult:
    body = ip_mud_file(url, port=443)
    sha, until = hashlib.sha256(body).hexdigest(), None if signer is None else NOW + 86400  # the chain's expiry
    return WireResult(1, url, Outcome.FRESH, "", "ok", None, None, sha, signer, body, until)


def _failed(url: str, outcome: Outcome, retry_at: float) -> WireResult:
    return WireResult(1, url, outcome, "fetch:connect", "refused", retry_at, None, None, None, b"")


def test_a_mass_join_on_a_verified_file_is_linear(lab: Counted) -> None:
    for i in range(DEVICES):  # all announce before the worker answers: one resolution in flight
        lab.announce(i, URL)
    assert lab.requests == [URL]
    lab.answer(_verified(URL))
    assert lab.states() == Counter({("enforced", ""): DEVICES})
    assert lab.calls["trust_transactions"] == 1  # the answer's first uses, all pinned in one commit
    for i in range(DEVICES, 2 * DEVICES):  # newcomers while the file stands: no resolution of their own
        lab.announce(i, URL)
    assert lab.requests == [URL]
    assert lab.states() == Counter({("enforced", ""): 2 * DEVICES})
    assert lab.calls["verified"] == 2 * DEVICES  # each device's own trust decision, once
    assert lab.calls["save_device"] <= 3 * 2 * DEVICES  # admitted, then confirmed (quarantined, then enforced)
    pins = {r.identity.mac: r.current_sha256 for r in lab.trust_store.records()}
    assert len(pins) == 2 * DEVICES and len(set(pins.values())) == 1  # every newcomer's trust pinned the file


def test_a_mass_join_on_a_failing_url_is_linear(lab: Counted) -> None:
    loud: list[Effect] = []
    for i in range(DEVICES):
        before = len(lab.requests)
        lab.announce(i, DEAD)
        for _ in lab.requests[before:]:  # the worker answers at once, as it does from its negative cache
            first = lab.calls["fetch_failed"] == 0
            loud += lab.answer(_failed(DEAD, Outcome.FIRST_CONTACT_FAILED if first else Outcome.BACKOFF, NOW + 60))
    assert lab.requests == [DEAD]  # the failure stands until its retry_at: newcomers meet it
    assert lab.states() == Counter({("quarantined", "fetch:connect"): DEVICES})
    assert lab.calls["fetch_failed"] == DEVICES
    assert lab.calls["save_device"] <= 3 * DEVICES
    assert [e.code for e in loud if isinstance(e, Alert)] == ["quarantined"]  # the first failure's, once


def test_a_repeated_failure_writes_no_row(lab: Counted) -> None:
    for i in range(DEVICES):
        lab.announce(i, DEAD)
    lab.answer(_failed(DEAD, Outcome.FIRST_CONTACT_FAILED, NOW + 60))
    written = lab.calls["save_device"]
    lab.answer(_failed(DEAD, Outcome.BACKOFF, NOW + 120), NOW + 61)  # the retry failed the same way
    assert lab.calls["save_device"] == written


def test_an_answer_stands_only_while_it_holds(lab: Counted) -> None:
    lab.announce(0, URL)
    lab.answer(_verified(URL))
    lab.announce(1, URL, NOW + RECHECK_S - 1)
    assert lab.requests == [URL]  # within RECHECK_S: the file stands
    lab.announce(2, URL, NOW + RECHECK_S + 1)
    assert lab.requests == [URL, URL]  # past it: the worker is asked again
    lab.announce(3, DEAD)
    lab.answer(_failed(DEAD, Outcome.FIRST_CONTACT_FAILED, NOW + 60))
    lab.announce(4, DEAD, NOW + 59)
    assert lab.requests.count(DEAD) == 1  # the failure stands until its retry_at
    lab.announce(5, DEAD, NOW + 61)
    assert lab.requests.count(DEAD) == 2


def test_a_standing_file_still_goes_through_each_devices_own_trust(lab: Counted) -> None:
    """A newcomer met by the standing answer gets the update policy's decision for its own record, as the worker's
    answer would have given it: a device pinned to one signer is refused the next version signed by another."""
    v1, v2 = "https://mud.test/bulb/v1.json", "https://mud.test/bulb/v2.json"
    lab.announce(0, v1)
    lab.answer(_verified(v1, VENDOR))
    lab.announce(1, v2)
    lab.answer(_verified(v2, STRANGER))  # device 1's first use: pinned to STRANGER
    effects = lab.announce(0, v2)  # a last-segment change, signed by another CA than device 0's pin
    assert lab.requests == [v1, v2]  # answered from the standing file
    assert "update-violation" in [e.code for e in effects if isinstance(e, Alert)]
    device = lab.enforcer.devices["02:00:00:00:00:00"]
    assert device.state == "quarantined" and device.reason.startswith("policy:")  # violation_action = quarantine
    assert lab.enforcer.devices["02:00:00:00:00:01"].state == "enforced"  # the other device's trust is its own


def test_a_batch_the_trust_store_refuses_pins_no_one_and_fails_closed(lab: Counted) -> None:
    for i in range(DEVICES):
        lab.announce(i, URL)
    real = lab.trust_store.commit_many

    def refuse(items: object) -> None:
        raise TrustStoreError("unavailable", "injected: the disk refused the write")

    lab.trust_store.commit_many = refuse  # type: ignore[method-assign]
    lab.answer(_verified(URL))
    assert lab.states() == Counter({("quarantined", "policy:trust-store-failed"): DEVICES})
    assert all(r.current_sha256 is None for r in lab.trust_store.records())  # nothing pinned on disk
    assert all(lab.trust.record(DeviceId(DPID, 1 + i % PORTS, d.mac)).current_sha256 is None
               for i, d in enumerate(lab.enforcer.devices.values()))  # nor in the gate's cache  # fmt: skip
    lab.trust_store.commit_many = real  # type: ignore[method-assign]
    for i in range(DEVICES):  # the devices announce again (a DHCP retry): their first use goes through now
        lab.announce(i, URL, NOW + 1)
    lab.answer(_verified(URL), NOW + 1)
    assert lab.states() == Counter({("enforced", ""): DEVICES})


def test_the_standing_answers_stay_bounded(lab: Counted, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verified answers are kept (with their bodies) under the same LRU bound as failures: devices cycling through
    many URLs, each verified once and never announced again, must not grow the memory for good."""
    monkeypatch.setattr(resolution, "STANDING_ANSWERS", 3)
    for i in range(10):
        url = f"https://mud.test/bulb-{i}.json"
        lab.announce(i, url)
        lab.answer(_verified(url))
        assert lab.enforcer.devices[f"02:00:00:00:00:{i:02x}"].state == "enforced"
    assert len(lab.enforcer.resolution._answers) <= 3
    lab.announce(20, "https://mud.test/bulb-9.json")  # the newest still stands
    assert lab.requests.count("https://mud.test/bulb-9.json") == 1


def test_a_clock_that_went_back_does_not_stretch_a_standing_answer(lab: Counted) -> None:
    """The worker treats a backoff whose failure lies in the future as elapsed (a clock step never freezes a URL);
    a standing answer must not either: after the clock went back an hour, a newcomer's URL goes to the worker."""
    lab.announce(0, DEAD)
    lab.answer(_failed(DEAD, Outcome.FIRST_CONTACT_FAILED, NOW + 60))
    lab.announce(1, DEAD, NOW - 3600)
    assert lab.requests == [DEAD, DEAD]
    lab.announce(2, URL)
    lab.answer(_verified(URL))
    lab.announce(3, URL, NOW - 3600)
    assert lab.requests.count(URL) == 2


def test_a_signed_file_stands_only_while_its_chain_is_valid(lab: Counted) -> None:
    """The worker's verification found when the signer's chain expires: no newcomer's first use (which pins the
    signer) is granted from the standing answer past it, even within RECHECK_S; the worker is asked again."""
    signed = dataclasses.replace(_verified(URL, VENDOR), signed_until=NOW + 10)
    lab.announce(0, URL)
    lab.answer(signed)
    lab.announce(1, URL, NOW + 9)
    assert lab.requests == [URL]  # still valid: it stands
    lab.announce(2, URL, NOW + 11)
    assert lab.requests == [URL, URL]  # expired since: the worker decides (it re-verifies at the current time)
    assert lab.enforcer.devices["02:00:00:00:00:02"].state == "quarantined"
    lab.answer(dataclasses.replace(_verified(URL, VENDOR), signed_until=None), NOW + 12)  # no expiry known
    lab.announce(3, URL, NOW + 13)
    assert lab.requests == [URL, URL, URL]  # a signed answer without it never stands
