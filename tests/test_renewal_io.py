"""A DHCP renewal / LLDP refresh of an enforced device costs no write (THREATS.md "correct under attack"), and
everything that is not a renewal still commits and behaves exactly as before.

Writes are counted twice, independently: by the real stores' write methods (subclasses that count, then do the
write), and by SQLite itself -- ``PRAGMA data_version`` on a second connection changes whenever another connection
commits to the file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import overload

import pytest

from mud_ryu.discovery.scan import Announcement
from mud_ryu.enforcer import operator as operator_actions
from mud_ryu.enforcer.core import Effect, Enforcer, FlowUpdate, ResolveRequest
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import check_mud_url
from mud_ryu.fetch.wire import WireResult
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStore, TrustStoreError
from mud_ryu.policy.table import UpdatePolicy
from mud_ryu.policy.types import DeviceId, PolicySettings, TrustRecord, TrustState, Verdict
from tests.counting_stores import CountingDeviceStore, CountingTrustStore
from tests.enforcer_lab import BULB, DPID, IPS, NOW, PEER_PORT, Lab, alerts
from tests.mudfiles import ip_mud_file

V1 = "https://mud.test/bulb/v1.json"
V2 = "https://mud.test/bulb/v2.json"
OTHER_HOST = "https://evil.test/bulb/v2.json"
VENDOR = Signer("aa" * 20, ("CN=bulb signer,O=Vendor", "CN=Vendor CA"), "a1" * 32)
STRANGER = Signer("bb" * 20, ("CN=bulb signer,O=Vendor", "CN=Another CA"), "b2" * 32)
STORM = 300


@overload
def _counting(opened: TrustStore) -> CountingTrustStore: ...
@overload
def _counting(opened: DeviceStore) -> CountingDeviceStore: ...
def _counting(opened: TrustStore | DeviceStore) -> CountingTrustStore | CountingDeviceStore:
    """``open`` is a classmethod building ``cls``: the store it returns is the counting one."""
    assert isinstance(opened, CountingTrustStore | CountingDeviceStore)
    return opened


class CountingGate(TrustGate):
    lookups = 0

    def record(self, identity: DeviceId) -> TrustRecord:
        self.lookups += 1
        return super().record(identity)


class Watch:
    """A second connection to a SQLite file: its data_version moves when anyone else commits to it."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path)

    def version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


class IoLab(Lab):
    """The enforcer harness with counting stores and clocks the test controls."""

    def __init__(self, state: Path) -> None:
        super().__init__(state)
        self.store.close()
        self.trust_store.close()
        self.store = self.devices = _counting(CountingDeviceStore.open(self.settings.device_db_path))
        self.trust_store = self.tstore = _counting(CountingTrustStore.open(self.settings.state_dir))
        self.trust = self.gate = CountingGate(UpdatePolicy(self.settings.policy_settings()), self.tstore)
        self.enforcer = Enforcer(self.settings, self.store, self.trust, NOW)
        self.watch_trust = Watch(self.tstore.path)
        self.watch_devices = Watch(Path(self.settings.device_db_path))

    def say(self, mac: str, port: int, url: str, now: float, protocol: str = "dhcpv4") -> list[Effect]:
        if protocol == "lldp":
            ann = Announcement("lldp", mac, None, url, chassis_id="04" + mac.replace(":", ""), ttl=120)
        else:
            ann = Announcement("dhcpv4", mac, None, url, msg_type=3, chaddr=mac)
        effects = self.apply(self.enforcer.discovered(DPID, port, ann, now))
        if mac in IPS:  # its traffic comes from its lab address (bound by the IP source guard; no store writes)
            effects += self.bind(mac, port, IPS[mac])
        return effects

    def answer(self, url: str, body: bytes, signer: Signer, now: float) -> list[Effect]:
        sha = hashlib.sha256(body).hexdigest()
        result = WireResult(1, url, Outcome.FRESH, "", "test", None, None, sha, signer, body)
        return self.apply(self.enforcer.resolved(result, now))

    def writes(self) -> tuple[int, int, int]:
        return self.tstore.commits + self.tstore.forgets, self.devices.saves, self.tstore.reads

    def versions(self) -> tuple[int, int]:
        return self.watch_trust.version(), self.watch_devices.version()

    def storm(self, mac: str, port: int, url: str, start: float, count: int = STORM) -> list[list[Effect]]:
        """``count`` renewals 0.1 s apart (all within the 60 s re-check window), alternating DHCP and LLDP."""
        return [self.say(mac, port, url, start + i * 0.1, ("dhcpv4", "lldp")[i % 2]) for i in range(count)]

    def close(self) -> None:
        self.watch_trust.close()
        self.watch_devices.close()
        self.store.close()
        self.trust_store.close()


def _enforced(tmp_path: Path, name: str) -> IoLab:
    lab = IoLab(tmp_path / name)
    lab.connect()
    lab.say(BULB, 1, V1, NOW)
    lab.answer(V1, ip_mud_file(V1, port=443), VENDOR, NOW)
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    return lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[IoLab]:
    running = _enforced(tmp_path, "a")
    yield running
    running.close()


def _identity(port: int = 1) -> DeviceId:
    return DeviceId(DPID, port, BULB)


# ---- the renewal storm -------------------------------------------------------------------------------------------


def test_a_renewal_storm_writes_nothing_and_sends_nothing(lab: IoLab) -> None:
    before_writes, before_versions = lab.writes(), lab.versions()
    record = lab.trust.record(_identity())
    device = lab.store.devices()
    log = lab.tstore.decisions(limit=1000)
    rules = lab.sim.rules()
    for effects in lab.storm(BULB, 1, V1, NOW + 1):
        assert effects == []  # no flow update, no barrier to confirm, no resolution, no alert
    assert lab.writes() == before_writes  # no commit, no device-row write, not even a read of the trust store
    assert lab.versions() == before_versions  # SQLite agrees: nobody committed to either file
    assert lab.trust.record(_identity()) == record
    assert lab.store.devices() == device and lab.tstore.decisions(limit=1000) == log
    assert lab.sim.rules() == rules and lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)


def test_each_renewal_looks_the_trust_record_up_once(lab: IoLab) -> None:
    lab.gate.lookups = 0
    lab.storm(BULB, 1, V1, NOW + 1, count=10)
    assert lab.gate.lookups == 10


def test_the_stored_last_decision_is_the_last_one_that_said_something(lab: IoLab) -> None:
    lab.storm(BULB, 1, V1, NOW + 1, count=5)
    last = lab.trust.record(_identity()).last_decision
    assert last is not None and (last.verdict, last.reason_code, last.at) == (Verdict.APPLY, "first-use", NOW)
    restarted = TrustStore.open(lab.settings.state_dir)  # and that is what the disk holds
    assert restarted.get(_identity()) == lab.trust.record(_identity())
    restarted.close()


def test_renewal_after_the_recheck_window_asks_the_worker_and_a_quiet_answer_writes_nothing(lab: IoLab) -> None:
    before = lab.writes()
    effects = lab.say(BULB, 1, V1, NOW + 61)
    assert effects == [ResolveRequest(V1)]
    assert lab.answer(V1, ip_mud_file(V1, port=443), VENDOR, NOW + 62) == []  # V-unchanged: nothing new
    assert lab.writes() == before


# ---- what is not a renewal still commits, and behaves as without the storm ----------------------------------------


def _compare(tmp_path: Path, steps: list[tuple[str, str, int, float]]) -> tuple[IoLab, IoLab]:
    """Run ``steps`` on a quiet lab and on one where, before each step, an enforced device renews its URL in
    force ``STORM`` times: the effects of every step, the flows, the trust records, the decision logs and the
    device rows must be the same."""
    quiet, stormy = _enforced(tmp_path, "quiet"), _enforced(tmp_path, "stormy")
    announced, last = V1, NOW
    for what, url, port, now in steps:
        device = stormy.enforcer.devices[BULB]
        if device.state == "enforced":  # it renews with the URL it last announced (a pending change's, too)
            assert now - last > STORM * 0.1
            stormy.storm(BULB, device.port, announced, start=last + 0.1)
        announced = url if what == "say" else announced
        last = now
        outs = [_step(lab_, what, url, port, now) for lab_ in (quiet, stormy)]
        assert outs[0] == outs[1], what
    assert quiet.sim.rules() == stormy.sim.rules()
    assert quiet.tstore.records() == stormy.tstore.records()
    assert [e.decision for e in quiet.tstore.decisions(limit=1000)] == [
        e.decision for e in stormy.tstore.decisions(limit=1000)
    ]
    assert quiet.store.devices() == stormy.store.devices()
    assert quiet.tstore.commits == stormy.tstore.commits  # every step's commits happened; the storms added none
    return quiet, stormy


def _step(lab: IoLab, what: str, url: str, port: int, now: float) -> list[Effect]:
    if what == "say":
        return lab.say(BULB, port, url, now)
    if what == "answer":
        return lab.answer(url, ip_mud_file(url, port=8883), STRANGER if url == OTHER_HOST else VENDOR, now)
    if what == "down":
        return lab.apply(lab.enforcer.port_down(DPID, port, now))
    assert what == "approve"
    digest = hashlib.sha256(ip_mud_file(url, port=8883)).hexdigest()  # the file the "answer" step serves
    return lab.apply(list(operator_actions.approve(lab.enforcer, BULB, url, digest, now).effects))


def test_a_url_change_after_a_storm(tmp_path: Path) -> None:
    quiet, stormy = _compare(tmp_path, [("say", V2, 1, NOW + 100), ("answer", V2, 1, NOW + 150)])
    record = stormy.trust.record(_identity())
    assert (record.current_url, record.state) == (V2, TrustState.TRUSTED)
    assert stormy.sim.is_output(stormy.tcp(BULB, 1, 8883), PEER_PORT)
    quiet.close()
    stormy.close()


def test_a_violation_after_a_storm_and_the_storm_of_the_violating_url(tmp_path: Path) -> None:
    quiet, stormy = _compare(tmp_path, [("say", OTHER_HOST, 1, NOW + 100)])
    assert "update-violation" in alerts(stormy.effects)
    assert stormy.trust.record(_identity()).state is TrustState.QUARANTINED
    assert not stormy.sim.is_output(stormy.tcp(BULB, 1, 443), PEER_PORT)
    # The device keeps announcing the refused URL: every announcement still alerts the operator. The first
    # repeat records its new reason ("quarantined", both in the trust record and the device row) once; after
    # that nothing is written and no flow is sent.
    commits, saves, _ = stormy.writes()
    storm = stormy.storm(BULB, 1, OTHER_HOST, NOW + 101)
    for effects in storm:
        assert alerts(effects) == ["pending-approval"]
        assert all(not (e.adds or e.deletes) for e in effects if isinstance(e, FlowUpdate))
    assert all(len(effects) == 1 for effects in storm[1:])
    after_commits, after_saves, _ = stormy.writes()
    assert (after_commits - commits, after_saves - saves) == (1, 2)  # the row, and again once its barrier is back
    assert stormy.store.devices()[0].reason == "policy:quarantined"
    quiet.close()
    stormy.close()


def test_a_port_move_after_a_storm(tmp_path: Path) -> None:
    steps = [("down", V1, 1, NOW + 100), ("say", V1, 2, NOW + 150)]
    quiet, stormy = _compare(tmp_path, steps)
    assert stormy.tstore.get(_identity(1)) is None
    moved = stormy.trust.record(_identity(2))
    assert (moved.current_url, moved.state) == (V1, TrustState.TRUSTED)
    assert stormy.sim.is_output(stormy.tcp(BULB, 2, 443), PEER_PORT)
    quiet.close()
    stormy.close()


def test_an_approval_after_a_storm(tmp_path: Path) -> None:
    steps = [("say", OTHER_HOST, 1, NOW + 100), ("approve", OTHER_HOST, 1, NOW + 200),
             ("answer", OTHER_HOST, 1, NOW + 300)]  # fmt: skip
    quiet, stormy = _compare(tmp_path, steps)
    record = stormy.trust.record(_identity())
    assert (record.current_url, record.state, record.signer) == (OTHER_HOST, TrustState.TRUSTED, STRANGER)
    assert stormy.sim.is_output(stormy.tcp(BULB, 1, 8883), PEER_PORT)
    quiet.close()
    stormy.close()


# ---- the cache is never ahead of the disk --------------------------------------------------------------------------


def test_a_failed_commit_leaves_the_cache_at_what_the_disk_holds(lab: IoLab) -> None:
    lab.tstore.fail = True
    effects = lab.say(BULB, 1, V2, NOW + 100)  # a URL change whose FETCH decision cannot be written
    assert "trust-store-failed" in alerts(effects)
    assert not [e for e in effects if isinstance(e, ResolveRequest)]
    on_disk = lab.tstore.get(_identity())
    assert lab.trust.record(_identity()) == on_disk
    assert on_disk is not None and on_disk.pending is None and on_disk.current_url == V1
    lab.tstore.fail = False
    assert ResolveRequest(V2) in lab.say(BULB, 1, V2, NOW + 101)  # the store is back: the change goes ahead
    assert lab.tstore.get(_identity()) == lab.trust.record(_identity())


def _gate(tmp_path: Path, **settings: object) -> tuple[TrustGate, CountingTrustStore]:
    store = _counting(CountingTrustStore.open(tmp_path / "gate"))
    return TrustGate(UpdatePolicy(PolicySettings(**settings)), store), store  # type: ignore[arg-type]


def test_an_apply_is_never_returned_for_trust_the_store_refused(tmp_path: Path) -> None:
    gate, store = _gate(tmp_path)
    who, url = DeviceId(1, 1, BULB), check_mud_url(V1)
    gate.announced(who, url, NOW)
    store.fail = True
    with pytest.raises(TrustStoreError):
        gate.verified(who, url, "ab" * 32, VENDOR, url, NOW)
    assert gate.record(who).state is TrustState.UNKNOWN and gate.record(who) == store.get(who)
    store.fail = False
    assert gate.verified(who, url, "ab" * 32, VENDOR, url, NOW + 1).verdict is Verdict.APPLY
    assert gate.record(who) == store.get(who) and gate.record(who).state is TrustState.TRUSTED
    store.close()


# ---- which repeats are written -----------------------------------------------------------------------------------


def _trusted(gate: TrustGate, who: DeviceId) -> None:
    url = check_mud_url(V1)
    gate.announced(who, url, NOW)
    assert gate.verified(who, url, "ab" * 32, VENDOR, url, NOW).verdict is Verdict.APPLY


def test_first_use_repeats_and_rate_limited_repeats_are_written_once(tmp_path: Path) -> None:
    gate, store = _gate(tmp_path, min_change_interval_s=600.0)
    who = DeviceId(1, 1, BULB)
    for i in range(5):  # first use, its fetch still out: the same FETCH each time, pending since the first
        assert gate.announced(who, check_mud_url(V1), NOW + i).reason_code == "first-use"
    assert store.commits == 1
    pending = gate.record(who).pending
    assert pending is not None and pending.at == NOW
    assert gate.verified(who, check_mud_url(V1), "ab" * 32, VENDOR, check_mud_url(V1), NOW + 5).verdict is Verdict.APPLY
    before = store.commits
    for i in range(6):  # an attacker alternating the URL in force and a change the rate limit holds back
        url = (V1, V2)[i % 2]
        decision = gate.announced(who, check_mud_url(url), NOW + 10 + i)
        assert decision.reason_code == ("same-url", "rate-limited")[i % 2]
    assert store.commits == before + 1  # the rate-limited attempt is logged once; same-url confirmations never
    assert [e.decision.reason_code for e in store.decisions(who)] == ["first-use", "first-use", "rate-limited"]
    store.close()


def test_operator_actions_always_commit(tmp_path: Path) -> None:
    gate, store = _gate(tmp_path)
    who = DeviceId(1, 1, BULB)
    _trusted(gate, who)
    before = store.commits
    for i in range(3):
        gate.approve(who, check_mud_url(V2), "ab" * 32, NOW + i)
        gate.revoke(who, NOW + i)
    assert store.commits == before + 6
    store.close()


def test_a_changed_pending_entry_is_written(tmp_path: Path) -> None:
    """Only the time of a repeated pending entry is ignored: a new URL waiting for approval is a change."""
    gate, store = _gate(tmp_path)
    who = DeviceId(1, 1, BULB)
    _trusted(gate, who)
    gate.announced(who, check_mud_url(OTHER_HOST), NOW + 1)  # violation: quarantined, OTHER_HOST pending
    before = store.commits
    gate.announced(who, check_mud_url("https://evil.test/bulb/v3.json"), NOW + 61)  # past min_pending_interval
    record = gate.record(who)
    assert store.commits == before + 1 and record.pending is not None
    assert record.pending.url == "https://evil.test/bulb/v3.json" and record == store.get(who)
    store.close()


def test_a_move_and_a_forget_keep_the_cache_in_step(tmp_path: Path) -> None:
    gate, store = _gate(tmp_path)
    old, new = DeviceId(1, 1, BULB), DeviceId(1, 2, BULB)
    _trusted(gate, old)
    assert gate.moved(old, new)
    assert gate.record(old) == TrustRecord(old) and store.get(old) is None
    assert gate.record(new) == store.get(new) == dataclasses.replace(gate.record(new), identity=new)
    assert gate.record(new).state is TrustState.TRUSTED
    assert gate.forget(new) and gate.record(new) == TrustRecord(new) and store.get(new) is None
    store.close()


# ---- the benchmark measures what it says ----------------------------------------------------------------------------


def test_the_renewal_benchmark_counts_the_writes_of_both_paths(tmp_path: Path) -> None:
    """``benchmarks/renewal.py --quick``: its counts (never its times) are what the code does."""
    out = tmp_path / "renewal.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "renewal.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(out.read_text())
    after, before = report["modes"]["after"], report["modes"]["before"]
    renewals = report["devices"] * report["renewals_per_device_per_run"] * report["runs"]
    assert after["renewals"] == before["renewals"] == renewals
    assert (after["trust_commits"], after["device_writes"], after["trust_reads"], after["flow_updates"]) == (0, 0, 0, 0)
    assert (before["trust_commits"], before["device_writes"]) == (renewals, 2 * renewals)
    assert before["fsyncs_per_renewal"] == 3 and before["trust_reads_per_renewal"] == 3
    assert before["flow_updates"] == 0 and report["before_over_after_p50"] > 0
