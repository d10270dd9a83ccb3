"""What a DHCP renewal / LLDP refresh of an already-enforced device costs the controller (THREATS.md "correct under
attack": a device, or an attacker on a port, re-announcing the URL in force up to the punt limit of 100 pps).

N devices (``--devices``, default 200; one per switch port, ``--urls`` profiles shared between them) are enforced
through the real :class:`~mud_ryu.enforcer.core.Enforcer` with real SQLite stores (WAL, ``synchronous=FULL``) in a
temporary directory. Then every device re-announces its URL ``--renewals`` times per run (alternately over DHCP and
LLDP, the enforcer clock advancing inside the 60 s re-check window so no resolution is due), each renewal timed
from ``Enforcer.discovered`` to its effects carried out (a ``confirms`` is saved as the app does after its barrier).

Two modes, interleaved run by run so both see the same machine noise; each has its own stores and enforcer:

* ``after``: the code as it is: the gate's write-through cache and its "nothing new, nothing written" rule.
* ``before``: the same enforcer driven with the store I/O of the code before that change, reconstructed on the
  real stores: a gate without cache that commits every decision (one IMMEDIATE transaction, an fsync), two more
  trust-record reads (the old ``_after_announcement`` and ``_admit`` each loaded it again) and two device-row
  writes (the old ``_admit`` saved the row, and the barrier its ``confirms`` asked for saved it again).

Counts come from the real stores' write methods (counting subclasses): trust commits, device-row writes, and the
fsync-bearing transactions they add up to (every one is a SQLite commit under ``synchronous=FULL``); flow updates
are what the switch would be sent. Times: per run the p50/p99 of the individually timed renewals; the table gives
the median over runs with min/max of the per-run p50, and before/after as ratios measured in the same run.

Usage: python benchmarks/renewal.py [--devices 200] [--renewals 10] [--runs 5] [--urls 10] [--quick] [--out P]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the MUD file builder lives with the tests
sys.modules.pop("tests", None)

from mud_ryu.discovery.scan import Announcement  # noqa: E402
from mud_ryu.enforcer.core import Effect, Enforcer, FlowUpdate  # noqa: E402
from mud_ryu.fetch.refresh import Outcome as FetchOutcome  # noqa: E402
from mud_ryu.fetch.wire import WireResult  # noqa: E402
from mud_ryu.policy.gate import TrustGate  # noqa: E402
from mud_ryu.policy.table import Outcome, UpdatePolicy  # noqa: E402
from mud_ryu.policy.types import DeviceId, TrustRecord  # noqa: E402
from mud_ryu.settings import MudSettings  # noqa: E402
from tests.counting_stores import CountingDeviceStore, CountingTrustStore  # noqa: E402
from tests.mudfiles import ip_mud_file  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "renewal.json"
DPID = 0x1
NOW = 1_767_225_600.0
WINDOW_S = 50.0  # all renewals of a mode fall inside the enforcer's 60 s re-check window
PUNT_PPS = 100  # settings punt_rate_pps: the most renewals one port can push at the controller


class UncachedGate(TrustGate):
    """The gate as it was: every record read from the store, every decision committed."""

    def record(self, identity: DeviceId) -> TrustRecord:
        return self.store.load(identity)

    def _commit(self, previous: TrustRecord, outcome: Outcome, *, always: bool = False) -> Outcome:
        self.store.commit(outcome.record, outcome.decision)
        return outcome


def mac_of(i: int) -> str:
    return f"02:00:00:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def url_of(i: int, urls: int) -> str:
    return f"https://mud.bench/device{i % urls}.json"


@dataclass
class Harness:
    """One enforcer with its own counting stores; ``devices`` enforced devices, one per port."""

    mode: str
    state: Path
    devices: int
    urls: int
    now: float = NOW
    flow_updates: int = 0
    samples: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        settings = MudSettings(state_dir=str(self.state), min_url_change_interval=0)
        device_store = CountingDeviceStore.open(settings.device_db_path)
        trust_store = CountingTrustStore.open(settings.state_dir)
        # ``open`` is a classmethod building ``cls``: these are the counting stores.
        assert isinstance(device_store, CountingDeviceStore) and isinstance(trust_store, CountingTrustStore)
        self.store, self.trust_store = device_store, trust_store
        gate_type = UncachedGate if self.mode == "before" else TrustGate
        self.gate = gate_type(UpdatePolicy(settings.policy_settings()), self.trust_store)
        self.enforcer = Enforcer(settings, self.store, self.gate, self.now)
        self.enforcer.switch_up(DPID, range(1, self.devices + 1), metered=True)
        self._carry(self.enforcer.reconcile(DPID, [], self.now))
        for i in range(self.devices):
            self._carry(self.enforcer.discovered(DPID, i + 1, self._announcement(i, 0), self.now))
        for u in range(min(self.urls, self.devices)):
            url = url_of(u, self.urls)
            body = ip_mud_file(url, port=443 + u)
            sha = hashlib.sha256(body).hexdigest()
            result = WireResult(1, url, FetchOutcome.FRESH, "", "bench", None, None, sha, None, body)
            self._carry(self.enforcer.resolved(result, self.now))
        enforced = sum(d.state == "enforced" for d in self.enforcer.devices.values())
        if enforced != self.devices:
            raise RuntimeError(f"{self.mode}: only {enforced} of {self.devices} devices enforced")
        self.flow_updates = 0

    def _announcement(self, i: int, k: int) -> Announcement:
        mac, url = mac_of(i), url_of(i, self.urls)
        if k % 2:
            return Announcement("lldp", mac, None, url, chassis_id="04" + mac.replace(":", ""), ttl=120)
        return Announcement("dhcpv4", mac, None, url, msg_type=3, chaddr=mac)

    def _carry(self, effects: list[Effect]) -> None:
        """What the app does with the effects that touch the stores: a flow update's barrier saves its devices."""
        for effect in effects:
            if isinstance(effect, FlowUpdate):
                if effect.adds or effect.deletes:
                    self.flow_updates += 1
                self.enforcer.confirmed(effect.confirms)

    def counters(self) -> dict[str, int]:
        s, t = self.store, self.trust_store
        return {"trust_commits": t.commits + t.forgets, "device_writes": s.saves, "trust_reads": t.reads,
                "flow_updates": self.flow_updates}  # fmt: skip

    def renewal(self, i: int, k: int, step: float) -> int:
        """One renewal of device ``i``, timed; returns nanoseconds."""
        self.now += step
        ann, port = self._announcement(i, k), i + 1
        t0 = time.perf_counter_ns()
        self._carry(self.enforcer.discovered(DPID, port, ann, self.now))
        if self.mode == "before":
            identity = DeviceId(DPID, port, ann.src_mac)
            self.gate.record(identity)  # the old _after_announcement's read
            self.gate.record(identity)  # the old _admit's read
            self.enforcer.confirmed([ann.src_mac, ann.src_mac])  # the old _admit's row write and its barrier's
        return time.perf_counter_ns() - t0

    def run(self, renewals: int, step: float) -> list[float]:
        """Every device renews ``renewals`` times (round robin); per-renewal microseconds."""
        out = [self.renewal(i, k, step) / 1e3 for k in range(renewals) for i in range(self.devices)]
        self.samples.append(out)
        return out

    def close(self) -> None:
        self.store.close()
        self.trust_store.close()


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summarise(h: Harness, before_counts: dict[str, int], renewals_total: int) -> dict[str, Any]:
    p50s = [pct(s, 50) for s in h.samples]
    p99s = [pct(s, 99) for s in h.samples]
    after = h.counters()
    delta = {k: after[k] - before_counts[k] for k in after}
    fsyncs = delta["trust_commits"] + delta["device_writes"]
    return {
        "renewals": renewals_total,
        "p50_us": statistics.median(p50s),
        "p99_us": statistics.median(p99s),
        "p50_min_us": min(p50s),
        "p50_max_us": max(p50s),
        "p99_min_us": min(p99s),
        "p99_max_us": max(p99s),
        **delta,
        "fsync_transactions": fsyncs,
        "fsyncs_per_renewal": fsyncs / renewals_total,
        "trust_reads_per_renewal": delta["trust_reads"] / renewals_total,
        "loop_share_at_punt_limit": PUNT_PPS * statistics.median(p50s) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--renewals", type=int, default=10, help="renewals per device per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--urls", type=int, default=10, help="distinct MUD URLs (profiles) the devices share")
    ap.add_argument("--quick", action="store_true", help="20 devices, 2 renewals, 2 runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        devices, renewals, runs = 20, 2, 2
    else:
        devices, renewals, runs = max(args.devices, 1), max(args.renewals, 1), max(args.runs, 1)
    urls = max(1, min(args.urls, devices))
    per_run = devices * renewals
    step = WINDOW_S / ((runs + 1) * per_run)  # + 1: the warm-up round
    report: dict[str, Any] = {
        "devices": devices, "renewals_per_device_per_run": renewals, "runs": runs, "urls": urls,
        "python": platform.python_version(), "cpus": os.cpu_count(), "modes": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="renewal-bench-") as tmp:
        harnesses = {mode: Harness(mode, Path(tmp) / mode, devices, urls) for mode in ("after", "before")}
        for h in harnesses.values():
            h.run(renewals, step)  # warm-up: not kept
            h.samples.clear()
        start = {mode: h.counters() for mode, h in harnesses.items()}
        for _ in range(runs):
            for h in harnesses.values():
                h.run(renewals, step)
        for mode, h in harnesses.items():
            report["modes"][mode] = summarise(h, start[mode], runs * per_run)
            h.close()
    after, before = report["modes"]["after"], report["modes"]["before"]
    report["before_over_after_p50"] = before["p50_us"] / after["p50_us"]
    report["before_over_after_p99"] = before["p99_us"] / after["p99_us"]
    pairs = zip(harnesses["after"].samples, harnesses["before"].samples, strict=True)
    ratios_p50 = [pct(b, 50) / pct(a, 50) for a, b in pairs]
    report["before_over_after_p50_per_run"] = ratios_p50
    print(f"{devices} enforced devices x {renewals} renewals x {runs} runs per mode ({urls} shared profiles)")
    print(f"{'mode':<8}{'renewals':>9}{'p50 us':>9}{'p99 us':>9}{'p50 min':>9}{'p50 max':>9}{'commits':>9}"
          f"{'dev rows':>9}{'fsync tx':>9}{'tx/renew':>9}{'reads/ren':>10}{'flows':>7}{'loop@100pps':>12}")  # fmt: skip
    for mode in ("before", "after"):
        m = report["modes"][mode]
        print(f"{mode:<8}{m['renewals']:>9}{m['p50_us']:>9.1f}{m['p99_us']:>9.1f}{m['p50_min_us']:>9.1f}"
              f"{m['p50_max_us']:>9.1f}{m['trust_commits']:>9}{m['device_writes']:>9}{m['fsync_transactions']:>9}"
              f"{m['fsyncs_per_renewal']:>9.2f}{m['trust_reads_per_renewal']:>10.2f}{m['flow_updates']:>7}"
              f"{m['loop_share_at_punt_limit']:>11.1%}")  # fmt: skip
    print(
        f"before/after: p50 {report['before_over_after_p50']:.1f}x (per run {min(ratios_p50):.1f}-"
        f"{max(ratios_p50):.1f}x), p99 {report['before_over_after_p99']:.1f}x; same run, same machine"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
