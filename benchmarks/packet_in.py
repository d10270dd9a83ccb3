"""Packet-in throughput over a socket: mud_ryu against Ryu's simple_switch_13 (BENCHMARKS.md item 3), same run.

For each path a fresh pair of controllers is started on free loopback ports -- ``ryu-manager mud_ryu.app``
(private state directory, signatures required, a local HTTPS MUD server with a lab PKI) and ``ryu-manager
ryu.app.simple_switch_13`` -- and one fake switch (``benchmarks/fake_switch.py``, ``--ports`` access ports) connects
to each. Every run sends one burst of packet-ins as fast as the socket takes them, spread round robin over the
ports so no per-port rate limit binds (mud_ryu's token bucket: 50/s, burst 100 per port and kind), while the switch
sends an ECHO_REQUEST every 250 ms. Runs alternate between the two controllers (the order flips each run), so the
ratio of a run pair is measured under the same machine noise.

* ``learning``: ARP requests from new MACs on the controller's learning flow (mud_ryu's learning copy,
  simple_switch_13's table-miss). Answered: a FLOW_MOD naming the MAC or a PACKET_OUT of its frame.
* ``discovery``: DHCPDISCOVERs with option 161 from new MACs on mud_ryu's DHCP punt; one URL whose signed file
  was fetched and verified in the warm-up (a cached profile). Answered: the device's first flow (its admission);
  also reported: how many were enforced (classified under the profile, confirmed by a barrier) and when. Then
  each device sends a DHCPRELEASE (followed by a learning packet-in whose answer says they were all handled), so
  every run starts with no device standing; ``benchmarks/mass_join.py`` measures a growing population.
* ``drop``: DHCP that changes nothing -- half malformed (chaddr is not the Ethernet source), half without a URL from
  each port's already-learned host. Nothing is sent back for these, so a learning packet-in from a new MAC goes
  last: the controller handles a switch's messages in order, and its answer marks the end of the burst.

Packet-ins/s = packet-ins handled / (the last answer - the first byte sent). Echo RTT: every echo sent during the
burst; one still unanswered counts as its age at the end. Medians with min/max over runs (after a warm-up run).

Usage: python benchmarks/packet_in.py [--runs 5] [--paths learning,discovery,drop] [--smoke] [--out PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_switch as fs
import fake_switch_loads as loads
import fake_switch_wire as w
import ofload_env as env

RESULTS = env.ROOT / "benchmarks" / "results" / "packet_in.json"
PATHS = ("learning", "discovery", "drop")
APPS = {"mud_ryu": env.MUD_APP, "simple_switch_13": env.SIMPLE_APP}
COUNTS = {"learning": 20_000, "discovery": 2_000, "drop": 20_000}
SMOKE_COUNTS = {"learning": 300, "discovery": 40, "drop": 300}
WARMUP_GROUP, SENTINEL_GROUP, RELEASE_GROUP = 0xF0, 0xF1, 0xF3
SHARED = "shared"


def one_run(sw: fs.FakeSwitch, path: str, group: int, count: int, url: str, timeout: float) -> dict[str, Any]:
    """One burst on ``sw``; returns what it measured (``handled`` None when it did not finish in ``timeout``)."""
    sentinel: list[bytes] = []
    if path == "learning":
        targets, msgs = loads.learning_load(sw, group, count)
    elif path == "discovery":
        targets, msgs = loads.discovery_load(sw, group, count, url)
    else:
        marker, last = loads.marker_load(sw, SENTINEL_GROUP, group)
        sentinel = [marker]
        msgs, targets = [*loads.drop_load(sw, group, count), last], sentinel
    counts_before = dict(sw.counts)
    cpu_before = _cpu()
    start = time.monotonic()
    sw.send(msgs)
    done = fs.wait_until(lambda: all(m in sw.answered for m in targets), timeout, lambda: bool(sw.disconnected))
    answered = [sw.answered[m] for m in targets if m in sw.answered]
    end = max(answered) if done else time.monotonic()
    handled = (count if done else None) if sentinel else len(answered)
    row: dict[str, Any] = {
        "sent": count, "handled": handled, "complete": done, "seconds": round(end - sw.first_sent, 4),
        "per_s": round(handled / max(end - sw.first_sent, 1e-9), 1) if handled else None,
        "echo_s": sw.echo_since(start, end),
        # the generator's own CPU (all its threads) over the burst: far below its wall time, or it was the bottleneck
        "generator_cpu_s": round(_cpu() - cpu_before, 3),
    }  # fmt: skip
    if path == "discovery" and sw.punt_flow is not None:  # a controller that enforces MUD (not a learning switch)
        fs.wait_until(lambda: all(m in sw.enforced for m in targets), timeout, lambda: bool(sw.disconnected))
        enforced = [sw.enforced[m] for m in targets if m in sw.enforced]
        row["enforced"] = len(enforced)
        row["enforced_s"] = round(max(enforced) - sw.first_sent, 4) if enforced else None
    settle(sw, timeout)
    row["flow_mods"] = sw.counts[w.FLOW_MOD] - counts_before.get(w.FLOW_MOD, 0)
    row["packet_outs"] = sw.counts[w.PACKET_OUT] - counts_before.get(w.PACKET_OUT, 0)
    row["answers_per_packet_in"] = round((row["flow_mods"] + row["packet_outs"]) / max(count, 1), 3)
    if path == "discovery":  # the devices leave again: every run starts from the same (empty) population
        marker, last = loads.marker_load(sw, RELEASE_GROUP, group)
        sw.send([*loads.release_load(sw, targets), last])
        row["released"] = fs.wait_until(lambda: marker in sw.answered, timeout, lambda: bool(sw.disconnected))
        settle(sw, timeout)
    return row


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def all_answered(sw: fs.FakeSwitch, macs: Sequence[bytes]) -> bool:
    return all(m in sw.answered for m in macs)


def settle(sw: fs.FakeSwitch, timeout: float) -> None:
    """Until the controller has been quiet (no FLOW_MOD) for 0.5 s and answers an echo: the next run starts idle."""
    fs.wait_until(lambda: time.monotonic() - sw.last_flow_mod > 0.5, timeout, lambda: bool(sw.disconnected))
    sw.echo_round_trip(timeout)


def run_path(path: str, args: argparse.Namespace, server: env.MudServer, workdir: Path) -> dict[str, Any]:
    count = SMOKE_COUNTS[path] if args.smoke else args.count or COUNTS[path]
    url = server.url(SHARED)
    controllers: dict[str, env.Controller] = {}
    switches: dict[str, fs.FakeSwitch] = {}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in APPS}
    try:
        for name, app in APPS.items():
            settings = server.settings(workdir / path / name / "state") if app == env.MUD_APP else None
            controllers[name] = env.Controller(app, workdir / path / name, settings)
            sw = fs.FakeSwitch(1, range(1, args.ports + 2), controllers[name].port)  # + the marker port
            sw.connect()
            switches[name] = sw
            if not sw.wait_ready(args.timeout, punts=app == env.MUD_APP):
                raise RuntimeError(f"{name}: the switch was not set up in {args.timeout}s ({sw.disconnected})")
        for name, sw in switches.items():  # warm-up: the code paths, the profile fetched and cached, renewers
            if path == "drop":
                macs, msgs = loads.renewers_load(sw)
                sw.send(msgs)
                if not fs.wait_until(functools.partial(all_answered, sw, macs), args.timeout):
                    raise RuntimeError(f"{name}: the renewers were not learned")
            warm = one_run(sw, path, WARMUP_GROUP, max(1, count // 10), url, args.timeout)
            if path == "discovery" and name == "mud_ryu" and not warm.get("enforced"):
                raise RuntimeError(f"mud_ryu: no warm-up device enforced; see {controllers[name].log_path}")
        for run in range(args.runs):
            order = list(APPS) if run % 2 == 0 else list(reversed(APPS))
            for name in order:
                rows[name].append(one_run(switches[name], path, run + 1, count, url, args.timeout))
        alive = {name: c.alive() and not switches[name].disconnected for name, c in controllers.items()}
    finally:
        for sw in switches.values():
            sw.close()
        for c in controllers.values():
            c.stop()
    return summarise(path, count, rows, alive)


def summarise(path: str, count: int, rows: dict[str, list[dict[str, Any]]], alive: dict[str, bool]) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "count": count, "apps": {}}
    for name, runs in rows.items():
        rates = [r["per_s"] for r in runs if r["per_s"] and r["complete"]]
        echo = [e for r in runs for e in r["echo_s"]]
        out["apps"][name] = {
            "runs": [{k: v for k, v in r.items() if k != "echo_s"} for r in runs],
            "complete_runs": sum(r["complete"] for r in runs),
            "per_s_median": statistics.median(rates) if rates else None,
            "per_s_min": min(rates, default=None), "per_s_max": max(rates, default=None),
            "echo_samples": len(echo), "echo_p50_ms": _ms(env.percentile(echo, 50)),
            "echo_p99_ms": _ms(env.percentile(echo, 99)), "echo_max_ms": _ms(max(echo, default=None)),
            "answers_per_packet_in": statistics.median([r["answers_per_packet_in"] for r in runs]) if runs else None,
            "connected_to_the_end": alive[name],
        }  # fmt: skip
    pairs = zip(rows["mud_ryu"], rows["simple_switch_13"], strict=True)
    ratios = [
        m["per_s"] / s["per_s"] for m, s in pairs if m["per_s"] and s["per_s"] and m["complete"] and s["complete"]
    ]
    out["ratio_mud_over_simple"] = {
        "median": round(statistics.median(ratios), 3) if ratios else None,
        "min": round(min(ratios), 3) if ratios else None, "max": round(max(ratios), 3) if ratios else None,
        "per_run": [round(r, 3) for r in ratios],
    }  # fmt: skip
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def table(paths: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'PATH':<10} {'APP':<17} {'N':>6} {'RUNS':>5} {'PKT-IN/s med':>12} {'min-max':>15} {'ECHO p50':>9} "
             f"{'p99':>8} {'max ms':>8} {'ANS/PKT':>8} {'MUD/SS13':>9}"]  # fmt: skip
    for p in paths:
        ratio = p["ratio_mud_over_simple"]
        for name, a in p["apps"].items():
            span = f"{_n(a['per_s_min'])}-{_n(a['per_s_max'])}"
            r = f"{ratio['median']:.2f}x" if name == "mud_ryu" and ratio["median"] is not None else ""
            lines.append(
                f"{p['path']:<10} {name:<17} {p['count']:>6} {a['complete_runs']:>2}/{len(a['runs']):<2} "
                f"{_n(a['per_s_median']):>12} {span:>15} {_n(a['echo_p50_ms']):>9} {_n(a['echo_p99_ms']):>8} "
                f"{_n(a['echo_max_ms']):>8} {_n(a['answers_per_packet_in'], 2):>8} {r:>9}"
            )
    return "\n".join(lines)


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of " + ",".join(PATHS))
    ap.add_argument("--runs", type=int, default=5, help="measured runs per controller and path (after a warm-up)")
    ap.add_argument("--count", type=int, default=0, help=f"packet-ins per run (default per path: {COUNTS})")
    ap.add_argument("--ports", type=int, default=400, help="access ports of the fake switch")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a run (or a set-up step) may take")
    ap.add_argument("--smoke", action="store_true", help="tiny counts, one run, 100 ports: seconds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs, args.ports, args.timeout = 1, 100, 60.0
    paths = [p for p in args.paths.split(",") if p]
    if unknown := set(paths) - set(PATHS):
        ap.error(f"unknown paths {sorted(unknown)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="packet-in-bench-") as tmp, env.MudServer(Path(tmp) / "srv", [SHARED]) as s:
        for path in paths:
            results.append(run_path(path, args, s, Path(tmp)))
            print(table(results[-1:]), file=sys.stderr, flush=True)  # progress: a path can take minutes
    report = {
        "benchmark": "packet_in", "smoke": args.smoke, "runs": args.runs, "ports": args.ports,
        "machine": env.machine(),
        "method": "one burst per run over a loopback socket from benchmarks/fake_switch.py; packet-ins/s = handled "
                  "/ (last answer - first byte sent); echo every 250 ms during the burst, unanswered ones at their "
                  "age; runs alternate between the controllers; ratio per run pair",
        "paths": results,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
