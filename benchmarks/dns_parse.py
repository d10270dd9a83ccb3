"""DNS scan and bind time per frame: what copying a device's DNS traffic to the controller costs.

Frames: a query, a typical answer (two CNAMEs, four A and two AAAA), the largest answer the scanner
accepts (64 compressed A records), the same with a name at the 255-octet limit, and a TCP frame (the
non-DNS path). For each: ``--runs`` batches of ``--calls`` scans; median/min/max of the per-call mean.
Then ``DnsBindings.query_seen`` + ``answer_seen`` of the typical answer, the path a solicited answer takes.

Usage: python benchmarks/dns_parse.py [--runs 7] [--calls 2000] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mud_ryu.dns.bind import DnsBindings, DnsBindSettings
from mud_ryu.dns.frame import DnsAnswer, DnsQuery, scan_dns

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the frame builders live with the tests
sys.modules.pop("tests", None)
from tests import discovery_frames as df  # noqa: E402
from tests import dns_frames as f  # noqa: E402

NAME = "cloud.example.com"
LONG = ".".join(["a" * 62] * 4)[:253]


def frames() -> dict[str, bytes]:
    typical = f.response(
        NAME,
        [
            f.cname(f.pointer(12), "edge.cdn.example.net", 300),
            f.cname("edge.cdn.example.net", "e1.cdn.example.net", 60),
            *[f.a("e1.cdn.example.net", f"203.0.113.{i}") for i in range(4)],
            *[f.aaaa("e1.cdn.example.net", f"2001:db8::{i}") for i in range(2)],
        ],
    )
    widest = f.response(NAME, [f.a(f.pointer(12), f"10.0.0.{i}") for i in range(64)])
    longest = f.response(LONG, [f.a(f.pointer(12), f"10.0.0.{i}") for i in range(64)])
    tcp = df.ethernet(df.ipv4(b"\0" * 40, proto=6, src=f.DEVICE_IP, dst=f.RESOLVER_IP), 0x0800)
    return {
        "query": f.query_frame(),
        "answer-typical": f.answer_frame(typical),
        "answer-64-records": f.answer_frame(widest),
        "answer-64-long-name": f.answer_frame(longest),
        "not-dns-tcp": tcp,
    }


def timed(fn: Callable[[], object], runs: int, calls: int) -> tuple[float, float, float]:
    for _ in range(min(calls, 200)):
        fn()
    means = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(means), min(means), max(means)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="3 runs of 200 calls")
    args = parser.parse_args()
    runs, calls = (3, 200) if args.quick else (args.runs, args.calls)
    print(f"{'frame':<22}{'octets':>8}{'median us':>11}{'min':>8}{'max':>8}  result")
    all_frames = frames()
    for label, frame in all_frames.items():
        med, lo, hi = timed(lambda frame=frame: scan_dns(frame), runs, calls)  # type: ignore[misc]
        kind = type(scan_dns(frame)).__name__
        print(f"{label:<22}{len(frame):>8}{med:>11.2f}{lo:>8.2f}{hi:>8.2f}  {kind}")

    query, answer = scan_dns(all_frames["query"]), scan_dns(all_frames["answer-typical"])
    assert isinstance(query, DnsQuery) and isinstance(answer, DnsAnswer)
    table = DnsBindings(DnsBindSettings(resolvers=frozenset({f.RESOLVER_IP})))
    table.watch("bench", [NAME])
    clock = [1_700_000_000.0]

    def bind() -> None:
        clock[0] += 0.001
        table.query_seen(query, clock[0])
        table.answer_seen(answer, clock[0])

    med, lo, hi = timed(bind, runs, calls)
    merged = table.counters()["answers-merged"]
    print(f"{'bind query+answer':<22}{'':>8}{med:>11.2f}{lo:>8.2f}{hi:>8.2f}  {merged} merged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
