"""The in-process half of ``benchmarks/dns_update.py``: what one DNS-driven address-set update costs the enforcer.

An :class:`~mud_ryu.enforcer.core.Enforcer` with real stores in a temporary directory (``tests.enforcer_lab.Lab``) holds
one device enforced under a generated profile of ``names`` distinct DNS names. Each answer round: the device's query
for one name, then the configured resolver's answer binding a new address to it -- the answer's ``dns_seen`` (bind,
recompile, per-owner diff) is timed and its flow update counted. Then expiry rounds: ``dns_expire`` at the instant
exactly one of those addresses runs out. Frames are scanned outside the timed region (dns_parse.py times scans).

Each update is also applied to the table simulator, outside the timer, and checked on a sample: a TCP SYN from the
device to the new address now leaves through the peer port; after its expiry it no longer does.

Run as a script, it compares the compiler's two ways to follow one such change (no enforcer, no diff): a full
``compile_profile`` of the profile against ``recompile_sets``, which re-expands only the ACEs naming the changed name
(issue 6: "address sets update without recompiling the profile's other rules"). Both run on the same context each
round, in alternating order, and every ``--check-every`` round their results are compared (outside the timer).
Usage: python benchmarks/dns_update_core.py [--quick] [--rounds N] [--runs N] [--out P]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import json
import os
import platform
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the frame builders and the enforcer harness live with the tests
sys.modules.pop("tests", None)
from enforce_latency import percentile  # noqa: E402

from mud_ryu.compiler.compile import CompiledProfile, compile_profile, recompile_sets  # noqa: E402
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NetworkContext  # noqa: E402
from mud_ryu.dns.frame import scan_dns  # noqa: E402
from mud_ryu.enforcer.core import FlowUpdate  # noqa: E402
from mud_ryu.mudfile import reader as mudfile  # noqa: E402
from mud_ryu.mudfile import semantic  # noqa: E402
from mud_ryu.mudfile.errors import MudFileError  # noqa: E402
from tests import dns_frames as dns  # noqa: E402
from tests.enforcer_lab import BULB, IPS, NOW, PEER_MAC, PEER_PORT, UPLINK, Lab  # noqa: E402
from tests.packets import Packet  # noqa: E402

RESOLVER = "10.0.0.53"
SERVICE_PORT = 443
TTL_S = 60  # the binding table's TTL floor: every answer binds for exactly this long
STEP_S = 0.001  # enforcer clock advance per round: every address gets its own expiry instant
# Functions whose share of an update's time the profile pass reports (qualified by file so names do not collide).
HOTSPOTS = {
    "Enforcer.dns_seen": ("enforcer/core.py", "dns_seen"),  # the key stays: reports compare by it
    "DnsBindings.answer_seen": ("dns/bind.py", "answer_seen"),
    "FlowBook._context": ("enforcer/profiles.py", "context"),  # the key stays: now ProfileBook.context
    "DnsBindings.current": ("dns/bind.py", "current"),
    "compile_profile": ("compiler/compile.py", "compile_profile"),
    "recompile_sets": ("compiler/compile.py", "recompile_sets"),
    "FlowBook._sync": ("enforcer/flows.py", "sync"),  # the key stays: reports compare by it
    "FlowBook._owner_flows": ("enforcer/flows.py", "_owner_flows"),
    "FlowBook._set_owner": ("enforcer/flows.py", "set_owner"),  # the key stays: reports compare by it
    "dataclass __hash__ (self time)": ("<string>", "__hash__"),
}


def dns_name(i: int) -> str:
    return f"svc{i}.bench.example"


def profile_url(names: int) -> str:
    return f"https://mud.bench/dns{names}.json"


def dns_mud_file(names: int, url: str | None = None, signature: str | None = None) -> bytes:
    """A MUD file whose device talks TCP 443 to ``names`` distinct DNS names: one from-device ACE per name
    (``dst-dnsname``, device-initiated) and its to-device return ACE (``src-dnsname``), the shape real profiles
    have. ``signature``: a ``mud-signature`` URL (the switch lab serves signed files)."""
    url = url or profile_url(names)

    def ace(i: int, out: bool) -> dict[str, Any]:
        ip_key = "ietf-acldns:dst-dnsname" if out else "ietf-acldns:src-dnsname"
        port_key = "destination-port" if out else "source-port"
        tcp = {port_key: {"operator": "eq", "port": SERVICE_PORT}, "ietf-mud:direction-initiated": "from-device"}
        return {"name": f"{'out' if out else 'back'}{i}", "actions": {"forwarding": "accept"},
                "matches": {"ipv4": {"protocol": 6, ip_key: dns_name(i)}, "tcp": tcp}}  # fmt: skip

    mud: dict[str, Any] = {
        "mud-version": 1, "mud-url": url, "last-update": "2026-01-01T00:00:00+00:00", "cache-validity": 48,
        "is-supported": True, "systeminfo": f"dns update bench, {names} names",
        "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
        "to-device-policy": {"access-lists": {"access-list": [{"name": "to"}]}},
    }  # fmt: skip
    if signature is not None:
        mud["mud-signature"] = signature
    acls = [
        {"name": "fr", "type": "ipv4-acl-type", "aces": {"ace": [ace(i, True) for i in range(names)]}},
        {"name": "to", "type": "ipv4-acl-type", "aces": {"ace": [ace(i, False) for i in range(names)]}},
    ]
    return json.dumps({"ietf-mud:mud": mud, "ietf-access-control-list:acls": {"acl": acls}}).encode()


def refused_reason(names: int) -> str | None:
    """Why the validator refuses a profile of ``names`` names (None: it accepts it)."""
    try:
        mudfile.parse(dns_mud_file(names))
    except MudFileError as error:
        return error.finding.reason
    return None


def bench_address(k: int) -> str:
    """The k-th distinct answer address (198.18.0.0/15, the benchmarking range: bindable, never local)."""
    return f"198.{18 + (k >> 16 & 1)}.{k >> 8 & 0xFF}.{k & 0xFF}"


def plan_rounds(names: int, rounds: int, cap: int, seed: int) -> list[int]:
    """Which name each answer round binds: random, but never a name already holding ``cap`` addresses (the
    binding table would refuse the newcomer and the round would measure nothing)."""
    slots = [i for i in range(names) for _ in range(cap)]
    rng = random.Random(seed)
    return rng.sample(slots, min(rounds, len(slots)))


@dataclass(frozen=True)
class Round:
    """One timed update: ``seconds`` of the enforcer call, the flows its update adds and deletes."""

    seconds: float
    adds: int
    deletes: int
    bound: int  # addresses bound (all names) before the update
    full_gc_s: float = 0.0  # time spent in full (generation 2) garbage collections during the call


class FullGcClock:
    """Time in full (generation 2) garbage collections, from ``gc.callbacks``: the interpreter's stop-the-world
    pauses that land inside a timed call (the recompile allocates thousands of objects per update)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.total += time.perf_counter() - self._started
            self._started = None

    def __enter__(self) -> FullGcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class Harness:
    """An enforcer with one device enforced under the ``names``-name profile, and the frames to drive it."""

    def __init__(self, state: Path, names: int) -> None:
        self.names = names
        self.lab = Lab(state, dns_servers=(RESOLVER,))
        self.lab.connect()
        self.url = profile_url(names)
        self.lab.announce(BULB, 1, self.url)
        self.lab.resolve(self.url, dns_mud_file(names))
        device = self.lab.enforcer.devices[BULB]
        if device.state != "enforced":
            raise RuntimeError(f"bench device not enforced: {device.state} {device.reason}")
        self.profile_flows = len(self.lab.enforcer.profiles[self.url].compiled.rules)
        self.txid = 0

    def close(self) -> None:
        self.lab.store.close()
        self.lab.trust_store.close()

    def frames(self, name: str, address: str) -> tuple[object, object]:
        """The scanned query and answer of one exchange (a fresh transaction id each)."""
        self.txid = (self.txid + 1) & 0xFFFF
        query = dns.query_frame(dns.query(name, txid=self.txid), client_ip=IPS[BULB], resolver_ip=RESOLVER, mac=BULB)
        body = dns.response(name, [dns.a(name, address, TTL_S)], txid=self.txid)
        answer = dns.answer_frame(body, client_ip=IPS[BULB], resolver_ip=RESOLVER, mac=BULB)
        return scan_dns(query), scan_dns(answer)

    def reaches(self, address: str) -> bool:
        pkt = Packet.tcp(1, BULB, PEER_MAC, IPS[BULB], address, 40000, SERVICE_PORT)
        return self.lab.sim.is_output(pkt, PEER_PORT)

    def bound(self) -> int:
        return sum(len(t) for t in self.lab.enforcer.dns.expiries().values())


def _counted(effects: Sequence[object]) -> tuple[int, int]:
    updates = [e for e in effects if isinstance(e, FlowUpdate)]
    return sum(len(u.adds) for u in updates), sum(len(u.deletes) for u in updates)


def run_size(names: int, rounds: int, *, seed: int = 1, check_every: int = 10) -> dict[str, Any]:
    """Answer rounds then expiry rounds on a fresh enforcer; raw per-round observations and the checks."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dns-update-bench-"))
        h = Harness(Path(tmp) / "state", names)
        stack.callback(h.close)
        cap = h.lab.enforcer.dns.settings.max_addresses_per_name
        picks = plan_rounds(names, rounds, cap, seed)
        answers: list[Round] = []
        expiries: list[Round] = []
        allowed = denied = 0
        failures: list[str] = []
        stamps: list[float] = []
        clock = stack.enter_context(FullGcClock())
        for k, i in enumerate(picks):
            now = NOW + k * STEP_S
            address = bench_address(k)
            query, answer = h.frames(dns_name(i), address)
            h.lab.enforcer.dns_seen(query, now, ingress=UPLINK)
            before, gc0 = h.bound(), clock.total
            t0 = time.perf_counter()
            effects = h.lab.enforcer.dns_seen(answer, now, ingress=UPLINK)
            seconds = time.perf_counter() - t0
            answers.append(Round(seconds, *_counted(effects), before, clock.total - gc0))
            stamps.append(now)
            h.lab.apply(effects)
            if k % check_every == 0:
                if h.reaches(address):
                    allowed += 1
                else:
                    failures.append(f"answer {k}: {address} not allowed")
        peak_flows = len(h.lab.enforcer.profiles[h.url].compiled.rules)
        for k, stamp in enumerate(stamps):
            before, gc0 = h.bound(), clock.total
            t0 = time.perf_counter()
            effects = h.lab.enforcer.dns_expire(stamp + TTL_S)
            seconds = time.perf_counter() - t0
            expiries.append(Round(seconds, *_counted(effects), before, clock.total - gc0))
            h.lab.apply(effects)
            if k % check_every == 0:
                if h.reaches(bench_address(k)):
                    failures.append(f"expiry {k}: {bench_address(k)} still allowed")
                else:
                    denied += 1
        checks = {"checked": len(range(0, len(picks), check_every)), "allowed_after_answer": allowed,
                  "denied_after_expiry": denied, "bound_at_end": h.bound(), "failures": failures}  # fmt: skip
        return {"names": names, "profile_flows": h.profile_flows, "profile_flows_peak": peak_flows,
                "answers": answers, "expiries": expiries, "checks": checks}  # fmt: skip


def profile_shares(names: int, rounds: int, *, seed: int = 2) -> dict[str, Any]:
    """Where an answer round's time goes: cProfile over ``rounds`` answer rounds (a separate pass: the profiler's
    overhead stays out of the timed numbers); cumulative time of HOTSPOTS as a share of all ``dns_seen`` time."""
    with tempfile.TemporaryDirectory(prefix="dns-update-prof-") as tmp:
        h = Harness(Path(tmp) / "state", names)
        try:
            picks = plan_rounds(names, rounds, h.lab.enforcer.dns.settings.max_addresses_per_name, seed)
            exchanges = [h.frames(dns_name(i), bench_address(k)) for k, i in enumerate(picks)]
            prof = cProfile.Profile()
            for k, (query, answer) in enumerate(exchanges):
                h.lab.enforcer.dns_seen(query, NOW + k * STEP_S, ingress=UPLINK)
                prof.enable()
                h.lab.enforcer.dns_seen(answer, NOW + k * STEP_S, ingress=UPLINK)
                prof.disable()
        finally:
            h.close()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    calls: dict[str, int] = {}
    for label, (filename, func) in HOTSPOTS.items():
        hits = [v for (f, _, fn), v in stats.items() if fn == func and f.endswith(filename)]
        cumulative[label] = sum(v[3] for v in hits) if func != "__hash__" else sum(v[2] for v in hits)
        calls[label] = sum(v[1] for v in hits)
    total = cumulative["Enforcer.dns_seen"] or 1e-12
    return {
        "names": names, "rounds": len(picks), "profiled_total_s": round(total, 6),
        "share": {k: round(v / total, 3) for k, v in cumulative.items()},
        "calls_per_round": {k: round(v / max(1, len(picks)), 1) for k, v in calls.items()},
    }  # fmt: skip


# ---- the compiler alone: full compile against recompile_sets ---------------------------------------------------
COMPILE_RESULTS = ROOT / "benchmarks" / "results" / "dns_update_compile.json"
COMPILE_SIZES, COMPILE_QUICK_SIZES = (100, semantic.MAX_DNS_NAMES), (100,)
COMPILE_PID = 2


def _compile_timed(fn: Callable[[], CompiledProfile], clock: FullGcClock) -> tuple[CompiledProfile, float, float]:
    gc0 = clock.total
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, clock.total - gc0


def compile_paths(names: int, rounds: int, *, seed: int = 1, check_every: int = 10) -> dict[str, Any]:
    """One run: ``rounds`` answers (a new address for a random name) then as many expiries (each address removed
    again, oldest first). Each round times both paths on the same new context; ``recompile_sets`` continues from
    its own previous result, as the enforcer would. Raw per-round seconds and full-GC seconds per path."""
    mud = mudfile.parse(dns_mud_file(names)).mud
    url = profile_url(names)
    picks = plan_rounds(names, rounds, 16, seed)
    bound: dict[str, tuple[str, ...]] = {}

    def context() -> NetworkContext:
        return NetworkContext(dns=bound, controllers={DNS_CONTROLLER_URN: (RESOLVER,)}, profile_ids={url: COMPILE_PID})

    previous = compile_profile(mud, context(), COMPILE_PID)
    steps = [(dns_name(i), bench_address(k), True) for k, i in enumerate(picks)]
    steps += [(dns_name(i), bench_address(k), False) for k, i in enumerate(picks)]
    raw: dict[str, list[tuple[float, float]]] = {"full": [], "incremental": []}
    flows = [len(previous.rules)]
    mismatches: list[str] = []
    with FullGcClock() as clock:
        for k, (name, address, add) in enumerate(steps):
            members = bound.get(name, ())
            bound[name] = (*members, address) if add else tuple(a for a in members if a != address)
            ctx, changed = context(), frozenset({f"dns:{name}"})
            paths = {"full": functools.partial(compile_profile, mud, ctx, COMPILE_PID),
                     "incremental": functools.partial(recompile_sets, previous, mud, ctx, changed)}  # fmt: skip
            results: dict[str, CompiledProfile] = {}
            for path in ("full", "incremental") if k % 2 == 0 else ("incremental", "full"):
                results[path], seconds, gc_s = _compile_timed(paths[path], clock)
                raw[path].append((seconds, gc_s))
            if k % check_every == 0 and results["full"] != results["incremental"]:
                mismatches.append(f"round {k}: {name} {'+' if add else '-'}{address}")
            previous = results["incremental"]
            flows.append(len(previous.rules))
    return {"names": names, "profile_flows": flows[0], "profile_flows_peak": max(flows), "raw": raw,
            "checked": len(range(0, len(steps), check_every)), "mismatches": mismatches}  # fmt: skip


def _path_summary(runs: Sequence[Sequence[tuple[float, float]]]) -> dict[str, Any]:
    """Pooled nearest-rank percentiles over every run's rounds, and the spread of the per-run p50s."""
    ms = [s * 1000 for run in runs for s, _ in run]
    per_run = [percentile([s * 1000 for s, _ in run], 50) or 0.0 for run in runs]
    no_gc = [s * 1000 for run in runs for s, gc_s in run if gc_s == 0]
    return {"rounds": len(ms), "p50_ms": _r(percentile(ms, 50)), "p99_ms": _r(percentile(ms, 99)),
            "max_ms": _r(max(ms)), "run_p50_min_ms": _r(min(per_run)), "run_p50_max_ms": _r(max(per_run)),
            "rounds_with_full_gc": sum(1 for run in runs for _, gc_s in run if gc_s > 0),
            "p99_without_full_gc_ms": _r(percentile(no_gc, 99))}  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def compile_layer(sizes: Sequence[int], rounds: int, runs: int, seed: int, check_every: int) -> list[dict[str, Any]]:
    """Per size: a warm-up run (not kept), then ``runs`` runs with different seeds; both paths and their ratios."""
    rows = []
    for names in sizes:
        compile_paths(names, min(rounds, 10), seed=seed - 1, check_every=check_every)
        done = [compile_paths(names, rounds, seed=seed + r, check_every=check_every) for r in range(runs)]
        full = _path_summary([d["raw"]["full"] for d in done])
        inc = _path_summary([d["raw"]["incremental"] for d in done])
        run_ratios = [(percentile([s for s, _ in d["raw"]["full"]], 50) or 0.0)
                      / (percentile([s for s, _ in d["raw"]["incremental"]], 50) or 1e-12) for d in done]  # fmt: skip
        rows.append({
            "names": names, "runs": runs, "profile_flows": done[0]["profile_flows"],
            "profile_flows_peak": max(d["profile_flows_peak"] for d in done), "full": full, "incremental": inc,
            "p50_ratio_full_over_incremental": _ratio(full["p50_ms"], inc["p50_ms"]),
            "p99_ratio_full_over_incremental": _ratio(full["p99_ms"], inc["p99_ms"]),
            "run_p50_ratio_min": round(min(run_ratios), 2), "run_p50_ratio_max": round(max(run_ratios), 2),
            "checked": sum(d["checked"] for d in done), "mismatches": [m for d in done for m in d["mismatches"]],
        })  # fmt: skip
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def compile_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'NAMES':>5} {'FLOWS':>11} {'PATH':<11} {'N':>5} {'P50 ms':>8} {'P99 ms':>8} {'MAX ms':>8} "
             f"{'RUN P50 min/max':>17} {'GC RNDS':>7} {'P99 noGC':>8}"]  # fmt: skip
    for row in rows:
        for path in ("full", "incremental"):
            s = row[path]
            flows = f"{row['profile_flows']}->{row['profile_flows_peak']}" if path == "full" else ""
            spread = f"{s['run_p50_min_ms']:.3f}/{s['run_p50_max_ms']:.3f}"
            lines.append(f"{row['names']:>5} {flows:>11} {path:<11} {s['rounds']:>5} {s['p50_ms']:>8.3f} "
                         f"{s['p99_ms']:>8.3f} {s['max_ms']:>8.3f} {spread:>17} {s['rounds_with_full_gc']:>7} "
                         f"{s['p99_without_full_gc_ms'] or 0:>8.3f}")  # fmt: skip
        lines.append(f"{'':>5} full/incremental: p50 {row['p50_ratio_full_over_incremental']}x (per run "
                     f"{row['run_p50_ratio_min']}..{row['run_p50_ratio_max']}x), p99 "
                     f"{row['p99_ratio_full_over_incremental']}x; {row['checked']} rounds compared, "
                     f"{len(row['mismatches'])} mismatches")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="full compile vs recompile_sets for one DNS name's change")
    parser.add_argument("--quick", action="store_true", help="100 names, 20 rounds, 2 runs")
    parser.add_argument("--rounds", type=int, default=None, help="answer (and expiry) rounds per run (default 150)")
    parser.add_argument("--runs", type=int, default=None, help="runs per size after a warm-up (default 5)")
    parser.add_argument("--check-every", type=int, default=10, help="compare the two results every N rounds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=COMPILE_RESULTS, help=f"JSON results (default {COMPILE_RESULTS})")
    args = parser.parse_args(argv)
    rounds = args.rounds or (20 if args.quick else 150)
    runs = args.runs or (2 if args.quick else 5)
    if not 1 <= rounds <= 5000 or not 1 <= runs <= 50 or args.check_every < 1:
        parser.error("--rounds must be 1..5000, --runs 1..50, --check-every >= 1")
    sizes = COMPILE_QUICK_SIZES if args.quick else COMPILE_SIZES
    rows = compile_layer(sizes, rounds, runs, args.seed, args.check_every)
    result = {
        "benchmark": "dns_update_compile", "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "method": "perf_counter around compile_profile(mud, ctx) and recompile_sets(previous, mud, ctx, {dns:<name>}) "
                  "on the same context, alternating which runs first; one address added to (then removed from) one "
                  "name per round; the context is built outside the timer; GC enabled; pooled nearest-rank "
                  "percentiles over the runs after one warm-up run",
        "sizes": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(compile_table(rows))
    print(f"results: {args.out}")
    return 1 if any(row["mismatches"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
