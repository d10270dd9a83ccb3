"""Mass join: N devices announcing a MUD URL at once (BENCHMARKS.md items 4 and 5), against ``mud_ryu.app``.

Per device count and case a fresh ``ryu-manager mud_ryu.app`` (private state directory) and one fake switch
(``benchmarks/fake_switch.py``) with max(100, N/50) access ports; all N DHCPDISCOVERs (option 161, one new MAC
each, round robin over the ports so no per-port limit binds) are sent in one burst.

* ``cached``: one URL, its signed file served by a local HTTPS server (lab PKI) and already fetched, verified and
  cached -- a warm-up device was enforced under it first. A device is done when its classification under the
  profile (table 0, ``in_port+eth_src``, metadata with the profile id) was confirmed by a barrier.
* ``failing``: one URL on a loopback port nothing listens on (the fetch is refused at once; the URL passes the
  gate). A device is done when it is quarantined (its quarantine classification confirmed by a barrier) and the
  failed resolution was applied to it (its record in the app's ``devices.sqlite3`` carries the failure reason --
  read-only, polled).

Measured: the time from the first byte sent until every device is done (and when 50 % / 90 % were), echo RTT
during the join (an ECHO_REQUEST every 250 ms; one unanswered counts as its age), and the controller's VmRSS (and
its resolver worker's) before and after, per device. A case that is not done within ``--timeout`` gives a row
"timed out after X s, Y of N done". ``--py-spy BIN`` samples the controller during each join and prints where it
spent its time (see ``pyspy_summary.py``).

Usage: python benchmarks/mass_join.py [--devices 1000,10000] [--cases cached,failing] [--timeout 300] [--smoke]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_switch as fs
import fake_switch_loads as loads
import ofload_env as env
import pyspy_summary

from mud_ryu.fetch.budget import BUSY

RESULTS = env.ROOT / "benchmarks" / "results" / "mass_join.json"
CASES = ("cached", "failing")
WARM_GROUP, JOIN_GROUP = 0xF2, 0x10
POLL_S = 0.1
STORE_POLL_S = 0.25
_OUTCOME = re.compile(r"MUD URL \S+: (\S+)")
_ALERT = re.compile(r"ALERT (\S+)")


def failed_in_store(db: Path, url: str) -> int | None:
    """Devices on ``url`` whose record carries a failure (not in-flight, not busy); None if unreadable now."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5) as conn:
            row = conn.execute("SELECT count(*) FROM device WHERE url = ? AND state = 'quarantined' AND reason NOT IN "
                               "('', ?)", (url, BUSY)).fetchone()  # fmt: skip
    except sqlite3.Error:
        return None
    return int(row[0])


def rss(pid: int) -> dict[str, int | None]:
    workers = env.children(pid)
    return {"controller_kb": env.rss_kb(pid), "worker_kb": sum(env.rss_kb(c) or 0 for c in workers) or None}


def join_case(n: int, case: str, args: argparse.Namespace, server: env.MudServer, workdir: Path) -> dict[str, Any]:
    ports = max(100, math.ceil(n / 50))
    url = server.url("shared") if case == "cached" else env.refused_url()
    state = workdir / "state"
    row: dict[str, Any] = {"devices": n, "case": case, "ports": ports, "url": url}
    with env.Controller(env.MUD_APP, workdir, server.settings(state)) as ctl:
        sw = fs.FakeSwitch(1, range(1, ports + 2), ctl.port)  # + the marker port, never a device's
        sw.connect()
        try:
            if not sw.wait_ready(args.timeout, punts=True):
                raise RuntimeError(f"switch not set up in {args.timeout}s ({sw.disconnected}); see {ctl.log_path}")
            if case == "cached":  # the file fetched, verified and cached; the profile compiled
                warm, msgs = loads.discovery_load(sw, WARM_GROUP, 1, url)
                sw.send(msgs)
                if not fs.wait_until(lambda: warm[0] in sw.enforced, args.timeout, lambda: bool(sw.disconnected)):
                    raise RuntimeError(f"warm-up device not enforced in {args.timeout}s; see {ctl.log_path}")
                fs.wait_until(lambda: time.monotonic() - sw.last_flow_mod > 0.5, 10.0)
            macs, msgs = loads.discovery_load(sw, JOIN_GROUP, n, url)
            row["rss_before"] = rss(ctl.pid)
            spy = pyspy_summary.start(args.py_spy, ctl.pid, workdir / "pyspy.txt") if args.py_spy else None
            row.update(_watch(sw, macs, msgs, case, state / "devices.sqlite3", url, args.timeout))
            row["rss_after"] = rss(ctl.pid)
            if spy is not None:
                row["profile"] = pyspy_summary.stop(spy, workdir / "pyspy.txt")
            row["controller_alive"] = ctl.alive() and not sw.disconnected
        finally:
            sw.close()
    before, after = row["rss_before"]["controller_kb"], row["rss_after"]["controller_kb"]
    row["rss_kb_per_device"] = round((after - before) / n, 2) if before and after else None
    row["log"] = _log_counts(ctl.log_text())
    return row


def _watch(sw: fs.FakeSwitch, macs: list[bytes], msgs: list[bytes], case: str, db: Path, url: str,
           timeout: float) -> dict[str, Any]:  # fmt: skip
    """Send the burst and follow it until every device is done or ``timeout`` passes."""
    n = len(macs)
    start = time.monotonic()
    sw.send(msgs)
    marks: dict[str, float] = {}
    timeline: list[dict[str, Any]] = []
    failed, next_store, next_sample = 0, 0.0, start
    while True:
        now = time.monotonic()
        quarantined = sum(m in sw.quarantined for m in macs)
        if case == "failing" and now >= next_store:
            failed = failed_in_store(db, url) or failed
            next_store = now + STORE_POLL_S
        done = sum(m in sw.enforced for m in macs) if case == "cached" else min(failed, quarantined)
        for label, share in (("p50", 0.5), ("p90", 0.9), ("all", 1.0)):
            if label not in marks and done >= math.ceil(share * n):
                marks[label] = now
        if now >= next_sample:
            echo = sw.echo_since(now - 1.0, now)
            timeline.append({"t_s": round(now - start, 2), "done": done, "admitted": quarantined,
                             "echo_max_ms": round(max(echo) * 1000, 1) if echo else None})  # fmt: skip
            next_sample = now + 1.0
        if done >= n or now - start > timeout or sw.disconnected:
            break
        time.sleep(POLL_S)  # polling interval, not a fixed wait
    t0 = sw.first_sent or start
    if case == "cached":  # the switch's own stamps: when the barrier behind each device was answered
        stamps = sorted(sw.enforced[m] for m in macs if m in sw.enforced)
        for label, share in (("p50", 0.5), ("p90", 0.9), ("all", 1.0)):
            k = math.ceil(share * n)
            if 0 < k <= len(stamps):
                marks[label] = stamps[k - 1]
    end = marks.get("all", time.monotonic())
    echo = sw.echo_since(start, end)
    out: dict[str, Any] = {
        "done": done, "complete": done >= n, "admitted": quarantined,
        "seconds_all": round(marks["all"] - t0, 3) if "all" in marks else None,
        "seconds_p50": round(marks["p50"] - t0, 3) if "p50" in marks else None,
        "seconds_p90": round(marks["p90"] - t0, 3) if "p90" in marks else None,
        "echo_samples": len(echo), "echo_unanswered": sw.unanswered_echoes(),
        "echo_p50_ms": _ms(env.percentile(echo, 50)), "echo_p99_ms": _ms(env.percentile(echo, 99)),
        "echo_max_ms": _ms(max(echo, default=None)), "timeline": timeline,
        "disconnected": sw.disconnected,
    }  # fmt: skip
    if done < n:
        why = f"switch disconnected ({sw.disconnected})" if sw.disconnected else "timed out"
        out["timed_out"] = f"{why} after {time.monotonic() - start:.0f} s, {done} of {n} done"
    return out


def _log_counts(text: str) -> dict[str, Any]:
    outcomes = collections.Counter(m[1] for m in _OUTCOME.finditer(text))
    alerts = collections.Counter(m[1] for m in _ALERT.finditer(text))
    return {"resolutions": dict(outcomes), "alerts_logged": dict(alerts), "tracebacks": text.count("Traceback")}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'N':>6} {'CASE':<8} {'PORTS':>5} {'DONE':>11} {'ALL s':>8} {'50% s':>7} {'90% s':>7} "
        f"{'ECHO p50':>9} {'p99':>7} {'max ms':>8} {'RSS MiB before/after':>21} {'KB/dev':>7} {'RESOLVED':>9}"
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['devices']:>6} {r['case']:<8} failed: {r['error']}")
            continue
        b, a = r["rss_before"]["controller_kb"], r["rss_after"]["controller_kb"]
        mem = f"{(b or 0) / 1024:.0f}/{(a or 0) / 1024:.0f}"
        lines.append(
            f"{r['devices']:>6} {r['case']:<8} {r['ports']:>5} {r['done']:>5}/{r['devices']:<5} {_n(r['seconds_all'])}"
            f" {_n(r['seconds_p50'], 7)} {_n(r['seconds_p90'], 7)} {_n(r['echo_p50_ms'], 9, 0)} "
            f"{_n(r['echo_p99_ms'], 7, 0)} {_n(r['echo_max_ms'], 8, 0)} {mem:>21} {_n(r['rss_kb_per_device'], 7, 1)} "
            f"{sum(r['log']['resolutions'].values()):>9}"
        )
        if r.get("timed_out"):
            lines.append(f"{'':>6} {r['case']:<8} {r['timed_out']}")
    return "\n".join(lines)


def _n(value: float | None, width: int = 8, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width},.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", default="1000,10000", help="comma-separated device counts")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds each case may take before it gives up")
    ap.add_argument("--py-spy", default=None, help="path of a py-spy binary: profile the controller in each join")
    ap.add_argument("--smoke", action="store_true", help="20 devices, both cases, 60 s cap: seconds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    counts = [20] if args.smoke else [int(c) for c in args.devices.split(",") if c]
    if args.smoke:
        args.timeout = min(args.timeout, 60.0)
    cases = [c for c in args.cases.split(",") if c]
    if unknown := set(cases) - set(CASES):
        ap.error(f"unknown cases {sorted(unknown)}")
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="mass-join-bench-") as tmp,
        env.MudServer(Path(tmp) / "srv", ["shared"]) as s,
    ):
        for n in counts:
            for case in cases:
                try:
                    rows.append(join_case(n, case, args, s, Path(tmp) / f"{case}-{n}"))
                except (RuntimeError, OSError) as error:
                    rows.append({"devices": n, "case": case, "error": str(error)})
                print(table(rows[-1:]), file=sys.stderr, flush=True)  # progress: a case can take minutes
                for line in rows[-1].get("profile", {}).get("lines", []):
                    print(f"    {line}", file=sys.stderr)
    report = {
        "benchmark": "mass_join", "smoke": args.smoke, "timeout_s": args.timeout, "machine": env.machine(),
        "method": "all DHCPDISCOVERs (option 161) in one burst from benchmarks/fake_switch.py; done = classification "
                  "under the profile confirmed by a barrier (cached) / quarantined and the failure recorded "
                  "(failing); times from the first byte sent; VmRSS of ryu-manager before/after",
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(rows))
    print(f"results: {args.out}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
