"""Discovery -> enforcement latency of the running enforcer (BENCHMARKS.md item 2, THREATS.md R14).

One sandboxed lab (see ``benchmarks/latency_lab.py``): userspace OVS, ``ryu-manager mud_ryu.app``, a local
HTTPS MUD server with signed files. New devices announce a MUD URL in a DHCPDISCOVER (option 161) at
1, 5, 20 and 50 devices/s, in two modes:

* ``cached``: every device announces the same URL, fetched and verified once before timing starts;
* ``fetch``: every device announces its own URL: a full HTTPS fetch + CMS signature verification each.

Latency of a device = the controller's ``time.monotonic()`` when the barrier confirming its enforced flows
came back (its ``confirmed ... state=enforced`` log line) minus the sender's ``time.monotonic()`` at send
(CLOCK_MONOTONIC is system-wide). The first confirmation of a device is always its admission (quarantine)
barrier; the app logs the device's state at reply time, so with a cached profile that first line already
reads ``enforced`` although only the quarantine flows were confirmed: the latency is taken from the first
``enforced`` line AFTER the first line (see :func:`enforcement_stamp`). A sample of enforced devices is
probed: a TCP SYN the policy allows must reach the peer, one it forbids must not.

Percentiles are nearest-rank over the devices of one phase (with 10 devices, p99 is the maximum). The knee
of a mode is the first rate at which a device was lost or p99 more than doubled against the previous rate.
Targets: p99 <= 100 ms at 20/s cached, <= 500 ms at 20/s with fetch + signature.

Usage: python benchmarks/enforce_latency.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mud_ryu.lab import sandbox  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "enforce_latency.json"
FULL_PLAN = ((1, 10), (5, 25), (20, 60), (50, 100))  # (devices/s, devices)
QUICK_PLAN = ((5, 4),)
TARGETS_MS = {"cached": (20, 100.0), "fetch": (20, 500.0)}  # mode -> (rate, p99 bound)
KNEE_FACTOR = 2.0


def enforcement_stamp(lines: Sequence[Sequence[Any]]) -> float | None:
    """The monotonic stamp of the barrier that confirmed the device's enforced flows, or ``None``.
    ``lines``: the device's confirmations in log order, as (state, monotonic)."""
    for state, stamp in list(lines)[1:]:
        if state == "enforced":
            return float(stamp)
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def stages(phase: Mapping[str, Any], offset: float) -> dict[str, float | None]:
    """Fetch mode only (one URL per device): p50 of send -> the app receiving the resolver's answer, and of that
    answer -> the enforced barrier. ``offset``: monotonic minus wall clock, to place the log's wall stamps."""
    if phase["mode"] != "fetch":
        return {}
    resolve: list[float] = []
    install: list[float] = []
    for sent in phase["sent"]:
        answers = phase["outcomes"].get(sent["url"], [])
        stamp = enforcement_stamp(phase["confirms"].get(sent["mac"], []))
        if not answers or stamp is None:
            continue
        answered = float(answers[0][1]) + offset
        resolve.append((answered - float(sent["monotonic"])) * 1000.0)
        install.append((stamp - answered) * 1000.0)
    return {
        "send_to_resolved_p50_ms": _r(percentile(resolve, 50)),
        "resolved_to_enforced_p50_ms": _r(percentile(install, 50)),
        "resolved_to_enforced_max_ms": _r(max(install) if install else None),
    }


def summarise(phase: Mapping[str, Any], offset: float) -> dict[str, Any]:
    """A phase's raw observations -> latency statistics, losses and probe verdicts."""
    confirms: Mapping[str, Sequence[Sequence[Any]]] = phase["confirms"]
    latencies: list[float] = []
    dropped = timed_out = 0
    for sent in phase["sent"]:
        lines = confirms.get(sent["mac"], [])
        stamp = enforcement_stamp(lines)
        if stamp is not None:
            latencies.append((stamp - float(sent["monotonic"])) * 1000.0)
        elif not lines:
            dropped += 1  # never admitted: the announcement did not reach the enforcer
        else:
            timed_out += 1  # admitted (quarantined) but not enforced within the phase's bound
    stamps = [float(s["monotonic"]) for s in phase["sent"]]
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    lines_per_device = [len(confirms.get(s["mac"], [])) for s in phase["sent"]]
    first_enforced = sum(1 for s in phase["sent"] if confirms.get(s["mac"]) and confirms[s["mac"]][0][0] == "enforced")
    outcomes: dict[str, int] = {}
    for results in phase["outcomes"].values():
        for outcome, _ in results:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    probes = phase["probes"]
    return {
        "mode": phase["mode"], "rate": phase["rate"], "devices": phase["devices"],
        "offered_rate": round((len(stamps) - 1) / span, 2) if span > 0 else None,
        "standing_at_start": phase["standing_at_start"],
        "enforced": len(latencies), "dropped": dropped, "timed_out": timed_out,
        "p50_ms": _r(percentile(latencies, 50)), "p99_ms": _r(percentile(latencies, 99)),
        "max_ms": _r(max(latencies) if latencies else None), "min_ms": _r(min(latencies) if latencies else None),
        "latencies_ms": [round(v, 2) for v in latencies],
        "confirm_lines_per_device": {"mean": _r(sum(lines_per_device) / len(lines_per_device)),
                                     "max": max(lines_per_device)},
        "first_confirmation_reads_enforced": first_enforced,
        "resolver_outcomes": outcomes, "stages": stages(phase, offset),
        "probes": {"sampled": len(probes), "allowed_arrived": sum(p["allowed_arrived"] for p in probes),
                   "forbidden_arrived": sum(p["forbidden_arrived"] for p in probes), "detail": probes},
        "released": phase["released"],
    }  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def knee(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The first rate where a device was lost or p99 grew more than KNEE_FACTOR x over the previous rate."""
    previous: Mapping[str, Any] | None = None
    for row in sorted(rows, key=lambda r: float(r["rate"])):
        lost = row["dropped"] + row["timed_out"]
        if lost:
            return {"rate": row["rate"], "why": f"{lost} of {row['devices']} devices not enforced"}
        if previous is not None and previous["p99_ms"] and row["p99_ms"] > KNEE_FACTOR * previous["p99_ms"]:
            return {"rate": row["rate"], "why": f"p99 {previous['p99_ms']} -> {row['p99_ms']} ms"}
        previous = row
    top = max((float(r["rate"]) for r in rows), default=0.0)
    return {"rate": None, "why": f"none up to {top:g} devices/s"}


def verdicts(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode, (rate, bound) in TARGETS_MS.items():
        row = next((r for r in rows if r["mode"] == mode and r["rate"] == rate), None)
        if row is None:
            out[mode] = {"target": f"p99 <= {bound:g} ms at {rate}/s", "verdict": "not measured"}
            continue
        met = row["p99_ms"] is not None and row["p99_ms"] <= bound and not row["dropped"] + row["timed_out"]
        out[mode] = {"target": f"p99 <= {bound:g} ms at {rate}/s", "p99_ms": row["p99_ms"],
                     "verdict": "met" if met else "missed"}  # fmt: skip
    return out


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = (f"{'MODE':<7} {'RATE/s':>6} {'N':>4} {'OFFERED':>8} {'OK':>4} {'DROP':>4} {'T/O':>4} {'P50 ms':>8} "
            f"{'P99 ms':>8} {'MAX ms':>8} {'CONF/DEV':>8} {'PROBE ok/fwd/n':>15}")  # fmt: skip
    lines = [head]
    for r in rows:
        p = r["probes"]
        lines.append(
            f"{r['mode']:<7} {r['rate']:>6} {r['devices']:>4} {r['offered_rate'] or 0:>8.1f} {r['enforced']:>4} "
            f"{r['dropped']:>4} {r['timed_out']:>4} {_f(r['p50_ms']):>8} {_f(r['p99_ms']):>8} {_f(r['max_ms']):>8} "
            f"{r['confirm_lines_per_device']['mean']:>8.1f} "
            f"{p['allowed_arrived']:>5}/{p['forbidden_arrived']}/{p['sampled']:<6}"
        )  # fmt: skip
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def plan(quick: bool) -> list[dict[str, Any]]:
    steps = QUICK_PLAN if quick else FULL_PLAN
    return [{"mode": mode, "rate": rate, "devices": n} for mode in ("cached", "fetch") for rate, n in steps]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one rate, a few devices, both modes")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--phase-timeout", type=float, default=15.0, help="seconds after a phase's last send")
    parser.add_argument("--probe-sample", type=int, default=5, help="devices probed per phase")
    parser.add_argument("--app", default="mud_ryu.app", help="diagnostics: the Ryu app module to run (A/B a variant)")
    args = parser.parse_args(argv)
    reason = sandbox.unavailable_reason()
    if reason is not None:
        print(f"enforce_latency needs a sandbox: {reason}", file=sys.stderr)
        return 2
    payload = {"phases": plan(args.quick), "phase_timeout": args.phase_timeout, "probe_sample": args.probe_sample,
               "release_rate": 25.0, "app": args.app}  # fmt: skip
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]  # e.g. where an --app variant lives
    pythonpath = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), *extra])
    try:
        raw = sandbox.run_callable("latency_lab:job", payload, timeout=900.0, env={"PYTHONPATH": pythonpath})
    except sandbox.SandboxError as exc:
        print(f"enforce_latency failed: {exc}", file=sys.stderr)
        return 1
    rows = [summarise(p, float(raw["monotonic_minus_wall"])) for p in raw["phases"]]
    modes = sorted({r["mode"] for r in rows})
    result = {
        "benchmark": "enforce_latency", "quick": args.quick, "app": args.app,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "method": "latency = app monotonic at the barrier confirming enforced flows - sender monotonic at send; "
                  "nearest-rank percentiles per phase; devices released (DHCPRELEASE) between phases",
        "warmup_s": round(raw["warmup_s"], 3), "controller_alive": raw["controller_alive"],
        "phases": rows, "knee": {m: knee([r for r in rows if r["mode"] == m]) for m in modes},
        "targets": verdicts(rows), "alerts": raw["alerts"], "errors": raw["errors"],
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    for mode, k in result["knee"].items():
        print(f"knee {mode}: {k['rate'] if k['rate'] is not None else '-'} ({k['why']})")
    for mode, v in result["targets"].items():
        print(f"target {mode}: {v['target']}: {v['verdict']}" + (f" (p99 {v['p99_ms']} ms)" if "p99_ms" in v else ""))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
