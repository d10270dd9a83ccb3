"""Cost of a DNS-driven address-set update (issue 6 item 4): answer seen -> flows confirmed, and flows per update.

A device's profile names N services by DNS (``ietf-acldns:dst-dnsname``, plus the ``src-dnsname`` return ACE of
each, device-initiated TCP 443). When the configured resolver answers the device's query with a new address, the
enforcer binds it, recompiles the profile and sends only the changed flows. Two layers:

* **core** (``dns_update_core.py``): in-process ``Enforcer.dns_seen`` of the answer, and ``dns_expire`` when that
  address's TTL runs out, for profiles of 10, 100 and 256 names (256 = ``semantic.MAX_DNS_NAMES``: the validator
  refuses more, so 1000 names cannot be enforced; the refusal is recorded). 150 rounds per size by default: the
  10-name profile holds at most 160 addresses (16 per name), so every size grows through the same number of bound
  addresses and their p50s compare. Cost per update p50/p99, flows added and deleted per update, the ratio of each
  size's p50 (and of its first-tenth p50, nearly nothing bound yet) to the 10-name one, where the time goes (a
  cProfile pass), and which rounds contained a full (generation 2) garbage collection (p99 with and without them).
* **switch** (``dns_update_lab.py``, sandboxed): userspace OVS + ``ryu-manager mud_ryu.app``, the signed 100-name
  profile fetched over HTTPS, raw query and answer frames; answer sent -> the new address's flows visible in the
  switch (flow-stats polled back to back over the bridge's management socket: the app logs no monotonic stamp for
  DNS updates).

Percentiles are nearest-rank. Usage: python benchmarks/dns_update.py [--quick] [--rounds N] [--no-switch] [--out P]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dns_update_core as core
from enforce_latency import percentile

from mud_ryu.lab import sandbox
from mud_ryu.mudfile import semantic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "dns_update.json"
SIZES, QUICK_SIZES = (10, 100, semantic.MAX_DNS_NAMES), (10, 100)
REFUSED_SIZES = (semantic.MAX_DNS_NAMES + 1, 1000)
SWITCH_NAMES = 100


def _ms(values: Sequence[float]) -> dict[str, float | None]:
    ms = [v * 1000.0 for v in values]
    return {"p50_ms": _r(percentile(ms, 50)), "p99_ms": _r(percentile(ms, 99)), "max_ms": _r(max(ms) if ms else None),
            "mean_ms": _r(statistics.fmean(ms) if ms else None)}  # fmt: skip


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _counts(values: Sequence[int]) -> dict[str, float]:
    return {"min": min(values), "max": max(values), "mean": round(statistics.fmean(values), 2)} if values else {}


def summarise_rounds(rounds: Sequence[core.Round]) -> dict[str, Any]:
    """Timing and flow counts of one kind of round; ``early``/``late``: p50 of the first and last tenth, to show
    whether the cost grows with the number of addresses already bound."""
    tenth = max(1, len(rounds) // 10)
    return {
        "rounds": len(rounds), **_ms([r.seconds for r in rounds]),
        "early_p50_ms": _r(percentile([r.seconds * 1000 for r in rounds[:tenth]], 50)),
        "late_p50_ms": _r(percentile([r.seconds * 1000 for r in rounds[-tenth:]], 50)),
        "bound_before": _counts([r.bound for r in rounds]),
        "adds": _counts([r.adds for r in rounds]), "deletes": _counts([r.deletes for r in rounds]),
        "rounds_with_full_gc": sum(1 for r in rounds if r.full_gc_s > 0),
        "full_gc_ms_max": _r(max((r.full_gc_s * 1000 for r in rounds), default=0.0)),
        "p99_without_full_gc_ms": _r(percentile([r.seconds * 1000 for r in rounds if r.full_gc_s == 0], 99)),
    }  # fmt: skip


def core_layer(sizes: Sequence[int], rounds: int, seed: int, check_every: int) -> dict[str, Any]:
    rows = []
    for names in sizes:
        raw = core.run_size(names, rounds, seed=seed, check_every=check_every)
        rows.append({"names": names, "profile_flows": raw["profile_flows"], "profile_flows_peak":
                     raw["profile_flows_peak"], "answer": summarise_rounds(raw["answers"]),
                     "expiry": summarise_rounds(raw["expiries"]), "checks": raw["checks"]})  # fmt: skip
    base = rows[0]
    scaling = {
        str(r["names"]): {
            "names_ratio": round(r["names"] / base["names"], 2),
            "answer_p50_ratio": _ratio(r["answer"]["p50_ms"], base["answer"]["p50_ms"]),
            "answer_early_p50_ratio": _ratio(r["answer"]["early_p50_ms"], base["answer"]["early_p50_ms"]),
            "expiry_p50_ratio": _ratio(r["expiry"]["p50_ms"], base["expiry"]["p50_ms"]),
        }
        for r in rows
    }
    middle = SWITCH_NAMES if SWITCH_NAMES in sizes else sizes[-1]
    return {"sizes": rows, "scaling_vs": base["names"], "scaling": scaling,
            "profile": core.profile_shares(middle, min(rounds, 100), seed=seed + 1),
            "refused": {str(n): core.refused_reason(n) for n in REFUSED_SIZES}}  # fmt: skip


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def summarise_switch(raw: Mapping[str, Any], expect: int) -> dict[str, Any]:
    offset = float(raw["monotonic_minus_wall"])
    first, full, app_sent, period = [], [], [], []
    missed = 0
    for r in raw["rounds"]:
        if r["all_visible"] is None:
            missed += 1
            continue
        first.append(r["first_visible"] - r["sent_monotonic"])
        full.append(r["all_visible"] - r["sent_monotonic"])
        period.append(r["poll_span_s"] / max(1, r["polls"]))
        if r["app_update"] is not None:
            app_sent.append(r["app_update"][0] + offset - r["sent_monotonic"])
    updates = [r["app_update"] for r in raw["rounds"] if r["app_update"] is not None]
    probes = raw["probes"]
    return {
        "names": raw["names"], "rounds": len(raw["rounds"]), "missed": missed, "enforce_s": _r(raw["enforce_s"]),
        "answer_to_first_flow": _ms(first), "answer_to_all_flows": _ms(full), "answer_to_app_sent": _ms(app_sent),
        "poll_period_ms": _r(statistics.fmean(period) * 1000 if period else None),
        "app_adds": _counts([u[1] for u in updates]), "app_deletes": _counts([u[2] for u in updates]),
        "ofctl_agrees": sum(1 for r in raw["rounds"] if r["all_visible"] is not None and r["ofctl_count"] >= expect),
        "app_updates_per_round": _counts([r["app_updates_in_round"] for r in raw["rounds"]]),
        "probes": {"sampled": len(probes), "allowed_arrived": sum(p["allowed_arrived"] for p in probes),
                   "unanswered_arrived": sum(p["unanswered_arrived"] for p in probes)},
        "controller_alive": raw["controller_alive"], "alerts": raw["alerts"], "errors": raw["errors"],
        "all_ms": [round(v * 1000, 2) for v in full],
    }  # fmt: skip


def switch_layer(rounds: int, expect: int, probe_every: int, seed: int) -> dict[str, Any]:
    reason = sandbox.unavailable_reason()
    if reason is not None:
        return {"skipped": f"needs a sandbox: {reason}"}
    payload = {"names": SWITCH_NAMES, "rounds": rounds, "expect_flows": expect, "probe_every": probe_every,
               "seed": seed}  # fmt: skip
    pythonpath = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)])
    try:
        raw = sandbox.run_callable("dns_update_lab:job", payload, timeout=600.0, env={"PYTHONPATH": pythonpath})
    except sandbox.SandboxError as exc:
        return {"failed": str(exc)[-2000:]}
    return summarise_switch(raw, expect)


def core_table(result: Mapping[str, Any]) -> str:
    head = (f"{'NAMES':>5} {'FLOWS':>11} {'KIND':<6} {'N':>4} {'P50 ms':>8} {'P99 ms':>8} {'MAX ms':>8} "
            f"{'EARLY/LATE p50':>15} {'ADDS':>5} {'DELS':>5} {'x P50':>6} {'GC RNDS':>7} {'P99 noGC':>8}")  # fmt: skip
    lines = [head]
    for row in result["sizes"]:
        ratios = result["scaling"][str(row["names"])]
        for kind in ("answer", "expiry"):
            s = row[kind]
            flows = f"{row['profile_flows']}->{row['profile_flows_peak']}" if kind == "answer" else ""
            lines.append(
                f"{row['names']:>5} {flows:>11} {kind:<6} {s['rounds']:>4} {_f(s['p50_ms'])} {_f(s['p99_ms'])} "
                f"{_f(s['max_ms'])} {_f(s['early_p50_ms'], 7)}/{_f(s['late_p50_ms'], 7).strip():<7} "
                f"{s['adds'].get('mean', 0):>5} {s['deletes'].get('mean', 0):>5} "
                f"{ratios[kind + '_p50_ratio'] or 0:>5.2f}x {s['rounds_with_full_gc']:>7} "
                f"{_f(s['p99_without_full_gc_ms'])}"
            )  # fmt: skip
    return "\n".join(lines)


def switch_table(sw: Mapping[str, Any]) -> str:
    if "rounds" not in sw:
        return f"switch layer: {sw.get('skipped') or sw.get('failed')}"
    lines = [f"switch ({sw['names']} names, {sw['rounds']} rounds, {sw['missed']} missed, flow stats polled every "
             f"{sw['poll_period_ms']} ms)", f"{'STAGE':<26} {'P50 ms':>8} {'P99 ms':>8} {'MAX ms':>8}"]  # fmt: skip
    for key in ("answer_to_app_sent", "answer_to_first_flow", "answer_to_all_flows"):
        s = sw[key]
        lines.append(f"{key:<26} {_f(s['p50_ms'])} {_f(s['p99_ms'])} {_f(s['max_ms'])}")
    p = sw["probes"]
    lines.append(f"flows per update (app): +{sw['app_adds'].get('mean')} -{sw['app_deletes'].get('mean')}; "
                 f"ovs-ofctl agrees {sw['ofctl_agrees']}/{sw['rounds'] - sw['missed']}; probes: {p['allowed_arrived']}/"
                 f"{p['sampled']} new addresses reached, {p['unanswered_arrived']} unanswered did")  # fmt: skip
    return "\n".join(lines)


def _f(value: float | None, width: int = 8) -> str:
    return f"{'-' if value is None else f'{value:.3f}':>{width}}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 names, 20 rounds, 5 switch rounds")
    parser.add_argument("--rounds", type=int, default=None, help="answer (and expiry) rounds per size (default 150)")
    parser.add_argument("--switch-rounds", type=int, default=None, help="switch rounds (default 60)")
    parser.add_argument("--no-switch", action="store_true", help="core layer only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    rounds = args.rounds or (20 if args.quick else 150)
    switch_rounds = args.switch_rounds or (5 if args.quick else 60)
    if not 1 <= rounds <= 5000 or not 1 <= switch_rounds <= 1000:
        parser.error("--rounds must be 1..5000 and --switch-rounds 1..1000")
    sizes = QUICK_SIZES if args.quick else SIZES
    core_result = core_layer(sizes, rounds, args.seed, check_every=1 if args.quick else 10)
    by_names = {r["names"]: r for r in core_result["sizes"]}
    expect = int(by_names[SWITCH_NAMES]["answer"]["adds"]["max"])  # what one update adds in-process
    switch = {"skipped": "--no-switch"} if args.no_switch else switch_layer(switch_rounds, expect, 1 if args.quick
                                                                             else 10, args.seed)  # fmt: skip
    result = {
        "benchmark": "dns_update", "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "method": "core: perf_counter around Enforcer.dns_seen(answer) / dns_expire(now) (bind, recompile, diff), one "
                  "new address per round for a random name, TTL 60 s (the floor); switch: sender monotonic at the "
                  "answer's send -> the address's flows visible in OpenFlow flow stats (polled back to back on the "
                  "bridge's mgmt socket), and "
                  "-> the app's DEBUG '+N -M flows' line (wall stamp placed with a measured offset); nearest-rank",
        "caps": {"max_dns_names": semantic.MAX_DNS_NAMES, "max_aces": semantic.MAX_ACES},
        "core": core_result, "switch": switch,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(core_table(core_result))
    shares = core_result["profile"]["share"]
    print(f"where an answer's time goes ({core_result['profile']['names']} names, cProfile): "
          + ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if k != "Enforcer.dns_seen"))  # fmt: skip
    print("refused: " + ", ".join(f"{n} names -> {why}" for n, why in core_result["refused"].items()))
    print(switch_table(switch))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
