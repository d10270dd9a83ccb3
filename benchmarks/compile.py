"""Compile throughput (BENCHMARKS.md item 1): parse+validate, compile, serialise, timed apart.

Inputs: every MUD file of tests/fixtures/corpus that validates (falls back to
/work/shared/mud-corpus when the fixtures are missing) and synthetic files of 10/100/1,000
ACEs (half of them with DNS names). Every DNS name and controller class is resolved to one
IPv4 and one IPv6 address, so ACEs produce their flows rather than warnings.

Serialisation is measured twice: the direct encoder (``mud_ryu.openflow.wire``, a fresh encoder per
file so caches only help within a file) and Ryu objects (``ofmsg.flow_mod`` + serialise).
The reference is OVS itself: each group's flows (de-duplicated) are installed with
``ovs-ofctl --bundle add-flows`` into an empty userspace bridge in a private sandbox, in the same
run, and the table reports ofwire flow-mods/s as a ratio of that rate (target >= 1.0x). Also
timed: rejecting a file over the ACE cap (target < 50 ms).

Usage: python benchmarks/compile.py [--runs 5] [--quick] [--no-ovs]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mud_ryu.compiler.compile import build_switch
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, DeviceSpec, NetworkContext
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile.model import MudFile
from mud_ryu.openflow import ofctl_text
from mud_ryu.openflow import ryu_msgs as ofmsg
from mud_ryu.openflow import wire as ofwire

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
FALLBACK_CORPUS = Path("/work/shared/mud-corpus")
RESULTS = ROOT / "benchmarks" / "results" / "compile.json"
REFERENCE_FLOWS = 20_000
DEV = DeviceSpec("00:00:5e:00:53:01", device_port=1, uplink_port=2)


@dataclass
class Case:
    name: str
    data: bytes
    aces: int = 0


def synthetic(n_aces: int, dns_fraction: float = 0.5) -> bytes:
    """A valid MUD file with ``n_aces`` ACEs split over both directions."""

    def ace(i: int, out: bool) -> dict[str, Any]:
        ipv4: dict[str, Any] = {"protocol": 6}
        key = "ietf-acldns:dst-dnsname" if out else "ietf-acldns:src-dnsname"
        if i % int(1 / dns_fraction if dns_fraction else 1 << 30) == 0:
            ipv4[key] = f"h{i}.example.com"
        else:
            ipv4["destination-ipv4-network" if out else "source-ipv4-network"] = f"10.{i // 256 % 256}.{i % 256}.0/24"
        port = {"operator": "eq", "port": 1024 + i}
        tcp = {"destination-port" if out else "source-port": port}
        return {"name": f"a{i}", "matches": {"ipv4": ipv4, "tcp": tcp}, "actions": {"forwarding": "accept"}}

    half = n_aces // 2
    acls = [
        {"name": "out", "type": "ipv4-acl-type", "aces": {"ace": [ace(i, True) for i in range(n_aces - half)]}},
        {"name": "in", "type": "ipv4-acl-type", "aces": {"ace": [ace(i, False) for i in range(half)]}},
    ]
    doc = {
        "ietf-mud:mud": {
            "mud-version": 1,
            "mud-url": f"https://bench.example.com/synthetic{n_aces}",
            "last-update": "2024-01-01T00:00:00+00:00",
            "cache-validity": 48,
            "is-supported": True,
            "systeminfo": "synthetic",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "out"}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": "in"}]}},
        },
        "ietf-access-control-list:acls": {"acl": acls},
    }
    return json.dumps(doc).encode()


def context_for(mud: MudFile) -> NetworkContext:
    """Resolve every name and controller the file mentions (synthetic documentation addresses)."""
    dns: dict[str, tuple[str, ...]] = {}
    controllers: dict[str, tuple[str, ...]] = {
        DNS_CONTROLLER_URN: ("192.0.2.53", "2001:db8::53"),
        NTP_CONTROLLER_URN: ("192.0.2.123",),
    }
    n = 0
    for acl in (*mud.from_device, *mud.to_device):
        for ace in acl.aces:
            ip, m = ace.matches.ip, ace.matches.mud
            for name in (ip.src_dnsname, ip.dst_dnsname) if ip else ():
                if name and name not in dns:
                    n += 1
                    dns[name] = (f"198.51.{n // 250 % 250}.{n % 250 + 1}", f"2001:db8:1::{n:x}")
            if m and m.controller and m.controller not in controllers:
                controllers[m.controller] = ("203.0.113.9", "2001:db8:2::9")
    return NetworkContext(
        dns=dns,
        controllers=controllers,
        my_controller={mud.mud_url: ("203.0.113.10",)},
        local_networks=("10.0.0.0/8", "fd00::/8"),
    )


def timed(fn: Callable[[], object]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ryu_serialise(rules: tuple[FlowRule, ...]) -> int:
    return sum(len(ofmsg.serialize(ofmsg.flow_mod(r), xid=i)) for i, r in enumerate(rules))


def measure(case: Case, runs: int) -> dict[str, Any] | None:
    try:
        parsed = mudfile.parse(case.data)
    except mudfile.MudFileError:
        return None  # rejected files are the validator's benchmark, not this one
    mud = parsed.mud
    ctx = context_for(mud)
    rules = build_switch(mud, DEV, ctx).rules
    samples: dict[str, list[float]] = {"parse": [], "compile": [], "ofwire": [], "ryu": []}
    for i in range(runs + 1):  # the first round is warm-up
        t_parse, _ = timed(lambda: mudfile.parse(case.data))
        t_comp, _ = timed(lambda: build_switch(mud, DEV, ctx))
        t_wire, _ = timed(lambda: ofwire.FlowModEncoder().flow_mods(rules))
        t_ryu, _ = timed(lambda: ryu_serialise(rules))
        if i:
            for key, value in zip(samples, (t_parse, t_comp, t_wire, t_ryu), strict=True):
                samples[key].append(value)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "name": case.name,
        "aces": mud.ace_count,
        "flows": len(rules),
        "bytes": len(case.data),
        "parse_s": med["parse"],
        "compile_s": med["compile"],
        "ofwire_s": med["ofwire"],
        "ryu_s": med["ryu"],
        "min_max": {k: [min(v), max(v)] for k, v in samples.items()},
    }


def group_rules(cases: list[Case], first_id: int = 0) -> list[FlowRule]:
    """Every flow of the files as installed, each file under its own profile and device id
    (from ``first_id`` on) so their rules do not overwrite each other in OVS."""
    out: list[FlowRule] = []
    for i, case in enumerate(cases, start=first_id):
        try:
            mud = mudfile.parse(case.data).mud
        except mudfile.MudFileError:
            continue
        ctx = context_for(mud)
        ctx = replace(ctx, profile_ids={**ctx.profile_ids, mud.mud_url: 2 + i})
        dev = replace(DEV, device_id=1 + i, mac=f"02:00:00:00:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}")
        out.extend(build_switch(mud, dev, ctx).rules)
    return out


def corpus_cases() -> list[Case]:
    root = CORPUS if CORPUS.is_dir() else FALLBACK_CORPUS
    return [Case(str(p.relative_to(root)), p.read_bytes()) for p in sorted(root.rglob("*.json")) if p.is_file()]


def ovs_bundle_rate(rules: list[FlowRule]) -> float | None:
    """OVS's bundle install rate (flows/s, best of 3) for these flows, or None without a sandbox."""
    from mud_ryu.lab import ovs, sandbox

    if sandbox.unavailable_reason() is not None:
        return None
    unique = list({(r.table, r.priority, r.match): r for r in rules}.values())
    return ovs.measure_bundle_install_rate(ofctl_text.render_flows(unique), ports=(1, 2), repeat=3).flows_per_second


def reference(cases: list[Case], runs: int, *, with_ovs: bool) -> dict[str, Any]:
    """The headline ratio, on one large flow set: every file's flows, compiled again under fresh
    profile and device ids until there are >= REFERENCE_FLOWS flows, so OVS's rate is not
    dominated by ovs-ofctl's start-up. The same flows are serialised by ofwire and by Ryu."""
    unique: dict[tuple[str, int, object], FlowRule] = {}
    copy = 0
    while len(unique) < REFERENCE_FLOWS and copy < 64:
        for r in group_rules(cases, first_id=copy * len(cases)):
            unique.setdefault((r.table, r.priority, r.match), r)
        copy += 1
    t = tuple(unique.values())
    repeat = max(runs, 3)
    wire = min(timed(lambda: ofwire.FlowModEncoder().flow_mods(t))[0] for _ in range(repeat))
    ryu = min(timed(lambda: ryu_serialise(t))[0] for _ in range(repeat))
    ovs_rate = ovs_bundle_rate(list(t)) if with_ovs else None
    out = {
        "flows": len(t),
        "ofwire_flow_mods_per_s": len(t) / wire,
        "ryu_flow_mods_per_s": len(t) / ryu,
        "ovs_bundle_flows_per_s": ovs_rate,
        "ofwire_vs_ovs_bundle": (len(t) / wire) / ovs_rate if ovs_rate else None,
        "ryu_vs_ovs_bundle": (len(t) / ryu) / ovs_rate if ovs_rate else None,
    }
    print(f"\nreference: {out['flows']} distinct flows from every group, best of {repeat} (OVS: best of 3)")
    print(f"{'':<16}{'flow-mods/s':>12}{'vs OVS bundle':>15}")
    print(f"{'ofwire':<16}{out['ofwire_flow_mods_per_s']:>12.0f}{_ratio(out['ofwire_vs_ovs_bundle']):>15}")
    print(f"{'Ryu objects':<16}{out['ryu_flow_mods_per_s']:>12.0f}{_ratio(out['ryu_vs_ovs_bundle']):>15}")
    print(f"{'OVS --bundle':<16}{ovs_rate or float('nan'):>12.0f}{'1.00x' if ovs_rate else 'n/a':>15}")
    return out


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "n/a"


def over_cap_rejection_ms(runs: int) -> float:
    """Median time to reject a file one ACE over the cap (counted before any schema work)."""
    data = synthetic(mudfile.MAX_ACES + 1)
    samples = []
    for _ in range(max(runs, 3)):
        t0 = time.perf_counter()
        try:
            mudfile.parse(data)
        except mudfile.MudFileError as exc:
            assert exc.finding.reason == "too-many-aces", exc.finding
        else:
            raise AssertionError("a file over the ACE cap was accepted")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total = {k: sum(r[k] for r in rows) for k in ("aces", "flows", "parse_s", "compile_s", "ofwire_s", "ryu_s")}
    per_file_parse = sorted(r["parse_s"] for r in rows)
    return {
        "files": len(rows),
        "files_per_s": len(rows) / (total["parse_s"] + total["compile_s"] + total["ofwire_s"]),
        "aces_per_s_compile": total["aces"] / total["compile_s"] if total["compile_s"] else None,
        "flow_mods": total["flows"],
        "ofwire_flow_mods_per_s": total["flows"] / total["ofwire_s"],
        "ryu_flow_mods_per_s": total["flows"] / total["ryu_s"],
        "compile_flows_per_s": total["flows"] / total["compile_s"],
        "parse_median_ms": statistics.median(per_file_parse) * 1e3,
        "parse_p99_ms": per_file_parse[min(len(per_file_parse) - 1, int(0.99 * len(per_file_parse)))] * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1 run, synthetic sizes only up to 100")
    ap.add_argument("--no-ovs", action="store_true", help="skip OVS's bundle install rate (needs root + unshare)")
    args = ap.parse_args(argv)
    runs = 1 if args.quick else args.runs
    groups: dict[str, list[Case]] = {"corpus": corpus_cases()}
    for n in (10, 100) if args.quick else (10, 100, 1000):
        groups[f"synthetic-{n}"] = [Case(f"synthetic-{n}", synthetic(n))]
    report: dict[str, Any] = {"runs": runs, "groups": {}}
    print(
        f"{'group':<16}{'files':>6}{'flows':>8}{'files/s':>9}{'ACEs/s':>10}{'parse p50':>11}"
        f"{'ofwire fm/s':>13}{'ryu fm/s':>10}"
    )
    all_cases: list[Case] = []
    for group, cases in groups.items():
        rows = [r for r in (measure(c, runs) for c in cases) if r is not None]
        if not rows:
            continue
        all_cases.extend(cases)
        s = summarise(rows)
        report["groups"][group] = {"summary": s, "files": rows}
        print(
            f"{group:<16}{s['files']:>6}{s['flow_mods']:>8}{s['files_per_s']:>9.1f}"
            f"{s['aces_per_s_compile'] or 0:>10.0f}{s['parse_median_ms']:>9.2f}ms"
            f"{s['ofwire_flow_mods_per_s']:>13.0f}{s['ryu_flow_mods_per_s']:>10.0f}"
        )
    report["reference"] = reference(all_cases, runs, with_ovs=not args.no_ovs)
    report["over_cap_rejection_ms"] = over_cap_rejection_ms(runs)
    report["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"over-cap file ({mudfile.MAX_ACES + 1} ACEs) rejected in {report['over_cap_rejection_ms']:.1f} ms; "
        f"peak RSS {report['peak_rss_kib'] / 1024:.1f} MiB"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
