"""Discovery scan time per frame (THREATS.md R6: < 50 us for a 1,500-octet frame), against the
framework's packet library parsing the same frames in the same run.

Frames (1,500 octets each unless the case is about size): a DHCPv4 DISCOVER with the MUD URL and
filler options, the worst DHCPv4 the scanner still accepts (its full option budget of tiny options
plus PAD runs), a DHCPv6 Solicit, the same wrapped in 8 Relay-Forwards, an LLDPDU with filler TLVs,
an LLDPDU of the maximum TLV count, and a TCP frame (the non-discovery path).

For each frame: ``--runs`` timed batches (after a warm-up) of ``--calls`` scans; the per-call mean
of each batch gives median/min/max over runs, and one pass of individually timed calls gives p99.
The framework parse (``Packet(frame)``, loaded through mud_ryu.compat's framework choice) is timed
the same way, and the table reports framework time / scan time.

Usage: python benchmarks/discovery.py [--runs 7] [--calls 2000] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mud_ryu import compat
from mud_ryu.discovery.scan import scan_frame

ROOT = Path(__file__).resolve().parent.parent
# the frame builders live with the tests; a site-packages "tests" package must not shadow them
sys.path.insert(0, str(ROOT))
sys.modules.pop("tests", None)
from tests import discovery_frames as df  # noqa: E402
from tests.discovery_frames import describe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "discovery.json"
FRAME_SIZE = 1500
TARGET_US = 50.0


def _fill_v4(head: bytes, size: int) -> bytes:
    """DHCPv4 options ``head`` + option-43 fillers + END, so the whole frame is ``size`` octets."""
    room = size - len(df.dhcpv4_frame(head + b"\xff"))
    fill = b""
    while room > 2:
        chunk = min(room - 2, 255)
        fill += df.dhcp_option(43, b"v" * chunk)
        room -= chunk + 2
    return head + fill + b"\0" * room + b"\xff"


def _fill_v6(options: bytes, wrap: int, size: int) -> bytes:
    """A Solicit with ``options`` + a filler option in ``wrap`` Relay-Forwards: a frame of ``size`` octets."""

    def build(fill: int) -> bytes:
        msg = df.dhcpv6(1, options + df.dhcpv6_option(16, b"v" * fill))
        for hop in range(wrap):
            msg = df.relay_forward(msg, hop)
        return df.dhcpv6_frame(msg, sport=547 if wrap else 546)

    return build(size - len(build(0)))


def frames() -> dict[str, bytes]:
    url = df.URL.encode()
    v4_head = df.dhcp_option(53, b"\x01") + df.dhcp_option(55, bytes(range(1, 20))) + df.dhcp_option(161, url)
    worst_head = df.dhcp_option(53, b"\x01") + df.dhcp_option(161, url) + b"\x0c\x00\x00" * 60
    v6_opts = df.dhcpv6_option(1, df.DUID_LL) + df.dhcpv6_option(112, url)
    lldp_room = FRAME_SIZE - len(df.lldp_frame())
    org = [df.tlv(127, b"\x00\x12\x0f\x09" + b"x" * 496)] * (lldp_room // 502)
    lldp = df.lldp_frame(df.lldpdu([*org, df.tlv(8, b"y" * (lldp_room - 502 * len(org) - 2))]))
    small = [df.tlv(8, b"")] * 121  # + chassis, port, TTL, MUD and 3 fillers: the 128-TLV cap
    room = FRAME_SIZE - len(df.lldp_frame(df.lldpdu(small))) - 3 * 2
    fillers = [df.tlv(8, b"z" * (room // 3 + (i < room % 3))) for i in range(3)]
    lldp_many = df.lldp_frame(df.lldpdu([*small, *fillers]))
    tcp_header = struct.pack("!HHIIHHHH", 443, 50000, 1, 1, 0x5010, 1024, 0, 0)
    tcp = df.ethernet(df.ipv4(tcp_header + b"d" * (FRAME_SIZE - 14 - 20 - 20), proto=6), 0x0800)
    return {
        "dhcpv4": df.dhcpv4_frame(_fill_v4(v4_head, FRAME_SIZE)),
        "dhcpv4-worst": df.dhcpv4_frame(_fill_v4(worst_head, FRAME_SIZE)),
        "dhcpv6": _fill_v6(v6_opts, 0, FRAME_SIZE),
        "dhcpv6-worst": _fill_v6(v6_opts + df.dhcpv6_option(20, b"") * 125, 0, FRAME_SIZE),
        "dhcpv6-relay8": _fill_v6(v6_opts, 8, FRAME_SIZE),
        "lldp": lldp,
        "lldp-128-tlvs": lldp_many,
        "tcp (not discovery)": tcp,
    }


def _framework_parse() -> Callable[[bytes], object]:
    """The framework's full packet parse, via mud_ryu.compat's choice of Ryu or os-ken."""
    packet = importlib.import_module(f"{compat.FRAMEWORK}.lib.packet.packet")

    def parse(frame: bytes) -> object:
        try:
            return packet.Packet(frame)
        except Exception as exc:  # the library's defects are part of what is measured, not a benchmark failure
            return exc

    return parse


def measure(fn: Callable[[bytes], object], frame: bytes, runs: int, calls: int) -> dict[str, float]:
    """Per-call seconds: median/min/max over ``runs`` batch means, p99 of individually timed calls."""
    for _ in range(min(calls, 200)):  # warm-up
        fn(frame)
    means = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(frame)
        means.append((time.perf_counter() - t0) / calls)
    single = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn(frame)
        single.append(time.perf_counter_ns() - t0)
    single.sort()
    return {
        "median_us": statistics.median(means) * 1e6,
        "min_us": min(means) * 1e6,
        "max_us": max(means) * 1e6,
        "p99_us": single[min(len(single) - 1, int(0.99 * len(single)))] / 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000, help="scans per timed batch")
    ap.add_argument("--quick", action="store_true", help="2 runs of 200 calls")
    args = ap.parse_args(argv)
    runs, calls = (2, 200) if args.quick else (max(args.runs, 1), max(args.calls, 10))
    ryu_calls = max(calls // 5, 10)  # the framework parse is slower: fewer calls keep the run short
    parse = _framework_parse()
    report: dict[str, Any] = {"runs": runs, "calls": calls, "framework": compat.FRAMEWORK, "frames": {}}
    print(
        f"{'frame':<22}{'octets':>7}{'scan p50':>10}{'p99':>8}{'min':>7}{'max':>7}{'fw p50':>9}{'fw/scan':>9}  result"
    )
    for name, frame in frames().items():
        scan = measure(scan_frame, frame, runs, calls)
        fw = measure(parse, frame, runs, ryu_calls)
        outcome = describe(scan_frame(frame)).replace("\t", " ")
        fw_out = parse(frame)
        row = {
            "octets": len(frame),
            "scan": scan,
            "framework": fw,
            "framework_over_scan": fw["median_us"] / scan["median_us"],
            "within_target": scan["p99_us"] < TARGET_US,
            "result": outcome,
            "framework_raised": type(fw_out).__name__ if isinstance(fw_out, Exception) else None,
        }
        report["frames"][name] = row
        print(
            f"{name:<22}{len(frame):>7}{scan['median_us']:>8.2f}us{scan['p99_us']:>8.2f}{scan['min_us']:>7.2f}"
            f"{scan['max_us']:>7.2f}{fw['median_us']:>7.1f}us{row['framework_over_scan']:>8.1f}x  {outcome[:40]}"
        )
    worst = max(r["scan"]["p99_us"] for r in report["frames"].values())
    report["worst_p99_us"] = worst
    report["target_us"] = TARGET_US
    print(f"worst scan p99 {worst:.2f} us (target < {TARGET_US:.0f} us); times are per frame, same run for both")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
