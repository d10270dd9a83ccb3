"""What caching ``DnsBindings.current()`` saves a DNS update, before and after in one run.

``current()`` is the DNS part of the compile context: every DNS-driven update reads it once. Before the cache it
re-sorted every bound address of every name (parsing each to sort by value) on every call; now a name's sorted
tuple lives until its address set changes and the whole view until anything it shows changes.

Two enforcers (``dns_update_core.Harness``) enforce the same ``names``-name profile. One keeps the cache; the other's
table throws it away before every ``current()`` -- exactly the old algorithm's work. Both get the same answers and
then the same expiries, alternating which goes first each round; ``Enforcer.dns_seen`` / ``dns_expire`` is timed
around each. Both must end with identical flows and bindings (checked; the run fails otherwise).

Usage: python benchmarks/dns_view.py [--rounds N] [--sizes 100,256] [--out P]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dns_update_core as core
from enforce_latency import percentile

from mud_ryu.dns.bind import DnsBindings
from tests.enforcer_lab import NOW, UPLINK

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "dns_view.json"


class UncachedBindings(DnsBindings):
    """The binding table as it was before the cache: ``current()`` rebuilds everything on every call."""

    def current(self) -> Mapping[str, tuple[str, ...]]:
        self._view = None
        self._ordered.clear()
        return super().current()


def _uncached(h: core.Harness) -> None:
    """Swap the harness enforcer's table for an uncached one watching the same names (nothing is bound yet)."""
    old = h.lab.enforcer.dns
    if old.expiries():
        raise RuntimeError("the harness bound addresses before the swap")
    fresh = UncachedBindings(old.settings)
    for url, profile in h.lab.enforcer.profiles.items():
        fresh.watch(url, profile.dns_names)
    h.lab.enforcer.state.dns = fresh


def run(names: int, rounds: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dns-view-bench-") as tmp:
        after, before = core.Harness(Path(tmp) / "after", names), core.Harness(Path(tmp) / "before", names)
        try:
            _uncached(before)
            picks = core.plan_rounds(names, rounds, after.lab.enforcer.dns.settings.max_addresses_per_name, seed)
            times: dict[str, dict[str, list[float]]] = {k: {"answer": [], "expiry": []} for k in ("before", "after")}
            stamps = []
            for k, i in enumerate(picks):
                now = NOW + k * core.STEP_S
                stamps.append(now)
                order = [("after", after), ("before", before)][:: 1 if k % 2 else -1]
                for label, h in order:
                    query, answer = h.frames(core.dns_name(i), core.bench_address(k))
                    h.lab.enforcer.dns_seen(query, now, ingress=UPLINK)
                    t0 = time.perf_counter()
                    effects = h.lab.enforcer.dns_seen(answer, now, ingress=UPLINK)
                    times[label]["answer"].append(time.perf_counter() - t0)
                    h.lab.apply(effects)
                if k % 10 == 0:
                    _same(after, before, f"answer {k}")
            for k, stamp in enumerate(stamps):
                order = [("after", after), ("before", before)][:: 1 if k % 2 else -1]
                for label, h in order:
                    t0 = time.perf_counter()
                    effects = h.lab.enforcer.dns_expire(stamp + core.TTL_S)
                    times[label]["expiry"].append(time.perf_counter() - t0)
                    h.lab.apply(effects)
            _same(after, before, "end")
        finally:
            after.close()
            before.close()
    row: dict[str, Any] = {"names": names, "rounds": len(picks)}
    for kind in ("answer", "expiry"):
        b = percentile([s * 1000 for s in times["before"][kind]], 50)
        a = percentile([s * 1000 for s in times["after"][kind]], 50)
        row[kind] = {"before_p50_ms": _r(b), "after_p50_ms": _r(a), "after_over_before": _r(a / b if a and b else None)}
    return row


def _same(a: core.Harness, b: core.Harness, when: str) -> None:
    da, db = a.lab.enforcer.dns, b.lab.enforcer.dns
    same_dns = (da.expiries(), da.current()) == (db.expiries(), db.current())
    if a.lab.sim.table_hash() != b.lab.sim.table_hash() or not same_dns:
        raise RuntimeError(f"cached and uncached enforcers differ at {when}")


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=150, help="answer (and expiry) rounds per size (default 150)")
    parser.add_argument("--sizes", default="100,256", help="profile sizes in DNS names (default 100,256)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not 1 <= args.rounds <= 5000 or not all(1 <= s <= 256 for s in sizes):
        parser.error("--rounds must be 1..5000 and each size 1..256")
    rows = [run(n, args.rounds, args.seed) for n in sizes]
    result = {"benchmark": "dns_view", "method": "perf_counter around Enforcer.dns_seen(answer) / dns_expire; the "
              "'before' enforcer's table drops current()'s cache before every call; rounds alternate which enforcer "
              "goes first; nearest-rank p50", "sizes": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'NAMES':>5} {'KIND':<6} {'N':>4} {'BEFORE p50 ms':>13} {'AFTER p50 ms':>12} {'AFTER/BEFORE':>12}")
    for row in rows:
        for kind in ("answer", "expiry"):
            s = row[kind]
            print(f"{row['names']:>5} {kind:<6} {row['rounds']:>4} {s['before_p50_ms']:>13.3f} "
                  f"{s['after_p50_ms']:>12.3f} {s['after_over_before']:>12.2f}")  # fmt: skip
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
