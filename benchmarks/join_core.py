"""What a mass join costs the enforcer core, and what reconciling its flows after a restart costs (issue 14).

N devices over 100 access ports announce one MUD URL through the real :class:`~mud_ryu.enforcer.core.Enforcer`
with real SQLite stores (WAL, ``synchronous=FULL``) in a temporary directory. Every resolution the enforcer asks for
is answered at once, as the worker does from its cache -- the worst case for the old quadratic path, where each
answer concerned every device on the URL and each newcomer's request brought another. Two cases: a file that
verifies (``cached``: every device ends enforced) and a URL that fails (``failing``: every device ends quarantined,
the failure standing until its retry_at). Flow updates are confirmed as the app does after their barrier.

Then ``reconcile``: a controller restart facing a switch that holds every flow of the ``cached`` join -- a new
Enforcer on the same stores, and the time of ``reconcile`` with what the switch holds (THREATS.md R11: nothing
valid deleted, target <= 10 s for 10,000 devices).

``--rev REV`` runs the same join, in the same invocation, against the code of git revision REV (a temporary
worktree, through a child process): before/after as ratios measured in one run. Each join is cut off after
``--max-s`` seconds (the row then says how far it got); larger sizes of a mode that was cut off are skipped.

Usage: python benchmarks/join_core.py [--sizes 250,500,1000,2000,10000] [--rev e584e3e] [--max-s 120] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE = os.environ.get("JOIN_CORE_CODE")  # the child process of --rev: import mud_ryu from that worktree
if CODE:
    # The venv's editable install maps mud_ryu to this tree with a meta-path finder, and its eventlet-shim .pth has
    # imported the package already at start-up: both go, so the worktree's code is what gets imported.
    sys.meta_path = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    for name in [n for n in sys.modules if n == "mud_ryu" or n.startswith("mud_ryu.")]:
        del sys.modules[name]
sys.path.insert(0, CODE or str(ROOT))
sys.path.insert(1, str(ROOT))  # the MUD file builder lives with the tests (this tree's)
sys.modules.pop("tests", None)

from mud_ryu.discovery.scan import Announcement  # noqa: E402
from mud_ryu.enforcer.core import Effect, Enforcer, FlowUpdate, ResolveRequest  # noqa: E402
from mud_ryu.enforcer.devicestore import DeviceStore  # noqa: E402
from mud_ryu.fetch.refresh import Outcome  # noqa: E402
from mud_ryu.fetch.wire import WireResult  # noqa: E402
from mud_ryu.openflow.flowkey import rule_key  # noqa: E402
from mud_ryu.policy.gate import TrustGate  # noqa: E402
from mud_ryu.policy.store import TrustStore  # noqa: E402
from mud_ryu.policy.table import UpdatePolicy  # noqa: E402
from mud_ryu.settings import MudSettings  # noqa: E402
from tests.mudfiles import ip_mud_file  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "join_core.json"
DPID, PORTS = 1, 100
UPLINK = PORTS + 1
URL = "https://mud.bench/bulb.json"
DEAD = "https://dead.bench/bulb.json"
NOW = 1_767_225_600.0


class Join:
    """One enforcer on fresh stores, a switch with 100 access ports, and the count of device-row writes."""

    def __init__(self, state: Path) -> None:
        self.settings = MudSettings(state_dir=str(state), uplink_ports=frozenset({(DPID, UPLINK)}),
                                    min_url_change_interval=0, min_pending_interval=0)  # fmt: skip
        self.store = DeviceStore.open(self.settings.device_db_path)
        self.trust_store = TrustStore.open(self.settings.state_dir)
        self.rows = 0
        save = self.store.save_device

        def counted(*args: Any, **kwargs: Any) -> None:
            self.rows += 1
            save(*args, **kwargs)

        self.store.save_device = counted  # type: ignore[method-assign]
        self.enforcer = self.start()
        self.resolutions = 0

    def start(self) -> Enforcer:
        trust = TrustGate(UpdatePolicy(self.settings.policy_settings()), self.trust_store)
        enforcer = Enforcer(self.settings, self.store, trust, NOW)
        enforcer.switch_up(DPID, range(1, UPLINK + 1), metered=True)
        return enforcer

    def run(self, effects: list[Effect], answer: WireResult) -> None:
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, FlowUpdate):
                self.enforcer.confirmed(effect.confirms)
            elif isinstance(effect, ResolveRequest):
                self.resolutions += 1
                pending += self.enforcer.resolved(answer, NOW)

    def close(self) -> None:
        self.store.close()
        self.trust_store.close()


def _answer(case: str) -> WireResult:
    if case == "failing":
        return WireResult(1, DEAD, Outcome.BACKOFF, "fetch:connect", "refused", NOW + 300, None, None, None, b"")
    body = ip_mud_file(URL, port=443)
    return WireResult(1, URL, Outcome.CACHED, "", "cached", None, None, hashlib.sha256(body).hexdigest(), None, body)


def join(size: int, case: str, max_s: float, with_reconcile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="join-core-") as tmp:
        lab = Join(Path(tmp) / "state")
        try:
            lab.run(lab.enforcer.reconcile(DPID, [], NOW), _answer(case))
            answer, url = _answer(case), DEAD if case == "failing" else URL
            done, start = 0, time.perf_counter()
            for i in range(size):
                mac = f"02:00:{i >> 24 & 0xFF:02x}:{i >> 16 & 0xFF:02x}:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"
                ann = Announcement("dhcpv4", mac, None, url, msg_type=1, chaddr=mac)
                lab.run(lab.enforcer.discovered(DPID, 1 + i % PORTS, ann, NOW), answer)
                done += 1
                if time.perf_counter() - start > max_s:
                    break
            elapsed = time.perf_counter() - start
            if hasattr(lab.store, "flush"):  # rows written behind (the code before had none)
                lab.store.flush()
            states: dict[str, int] = {}
            for device in lab.enforcer.devices.values():
                states[device.state] = states.get(device.state, 0) + 1
            row: dict[str, Any] = {
                "size": size, "case": case, "done": done, "cut_off": done < size, "seconds": elapsed,
                "us_per_device": elapsed / max(done, 1) * 1e6, "resolutions": lab.resolutions,
                "rows_written": lab.rows, "states": states,
            }  # fmt: skip
            if with_reconcile and case == "cached" and done == size:
                row["reconcile"] = _reconcile(lab)
            return row
        finally:
            lab.close()


def _reconcile(lab: Join) -> dict[str, Any]:
    """A restart: a new enforcer on the same stores facing a switch that holds every flow the join installed."""
    held = [(rule_key(r), (r.table, r.priority, r.match)) for flows in lab.enforcer.switches[DPID].owners.values()
            for r in flows]  # fmt: skip
    unique = {key: ref for key, ref in held}
    start = time.perf_counter()
    restarted = lab.start()
    built = time.perf_counter()
    update = next(e for e in restarted.reconcile(DPID, list(unique.items()), NOW) if isinstance(e, FlowUpdate))
    end = time.perf_counter()
    return {"flows_held": len(unique), "start_s": built - start, "reconcile_s": end - built,
            "added": len(update.adds), "deleted": len(update.stale)}  # fmt: skip


def measure(sizes: list[int], max_s: float, with_reconcile: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for case in ("cached", "failing"):
        for size in sizes:
            row = join(size, case, max_s, with_reconcile)
            rows.append(row)
            print(f"  {case:8} {size:>6}: {row['seconds']:8.2f} s  {row['us_per_device']:9.0f} us/device"
                  f"{'  CUT OFF at ' + str(row['done']) if row['cut_off'] else ''}", file=sys.stderr, flush=True)
            if row["cut_off"]:
                break  # larger sizes would only be cut off later
    return rows


def _before(rev: str, sizes: list[int], max_s: float) -> list[dict[str, Any]]:
    """The same joins against the code of ``rev``, in a child process on a temporary worktree of it."""
    with tempfile.TemporaryDirectory(prefix="join-core-rev-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True)  # fmt: skip
        try:
            env = {**os.environ, "JOIN_CORE_CODE": str(tree)}
            args = [sys.executable, __file__, "--child", "--sizes", ",".join(map(str, sizes)), "--max-s", str(max_s)]
            out = subprocess.run(args, env=env, check=True, capture_output=True, text=True, timeout=4 * 3600)
            return list(json.loads(out.stdout))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False,
                           capture_output=True)  # fmt: skip


def _table(after: list[dict[str, Any]], before: list[dict[str, Any]]) -> None:
    old = {(r["case"], r["size"]): r for r in before}
    print(f"{'case':8} {'devices':>7} {'after s':>9} {'us/dev':>8} {'resol.':>6} {'rows':>7}"
          f" {'before s':>10} {'before/after':>12}")  # fmt: skip
    for row in after:
        was = old.get((row["case"], row["size"]))
        then = "-" if was is None else (f"cut {was['done']}" if was["cut_off"] else f"{was['seconds']:.2f}")
        ratio = "-" if was is None or was["cut_off"] else f"{was['seconds'] / max(row['seconds'], 1e-9):.1f}x"
        if was is not None and was["cut_off"]:  # compare per device: what it managed against all of ours
            ratio = f">{was['us_per_device'] / max(row['us_per_device'], 1e-9):.0f}x/dev"
        print(f"{row['case']:8} {row['size']:>7} {row['seconds']:>9.2f} {row['us_per_device']:>8.0f}"
              f" {row['resolutions']:>6} {row['rows_written']:>7} {then:>10} {ratio:>12}")  # fmt: skip
    for row in after:
        if "reconcile" in row:
            r = row["reconcile"]
            print(f"reconcile after restart, {row['size']} devices: {r['flows_held']} flows held, start "
                  f"{r['start_s']:.2f} s, reconcile {r['reconcile_s']:.2f} s, {r['added']} added, "
                  f"{r['deleted']} deleted")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="250,500,1000,2000,10000")
    ap.add_argument("--rev", default="", help="also run against this git revision (before/after in one run)")
    ap.add_argument("--max-s", type=float, default=120.0)
    ap.add_argument("--quick", action="store_true", help="sizes 50,100: a smoke run")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    sizes = [50, 100] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.child:
        import mud_ryu.enforcer.core as measured

        if CODE and not measured.__file__.startswith(CODE):
            raise SystemExit(f"--rev measured {measured.__file__}, not the worktree {CODE}")
        print(json.dumps(measure(sizes, args.max_s, with_reconcile=False)))
        return
    after = measure(sizes, args.max_s, with_reconcile=True)
    before = _before(args.rev, [s for s in sizes if s <= 2000], args.max_s) if args.rev else []
    _table(after, before)
    result = {"benchmark": "join_core", "machine": platform.node(), "cpus": os.cpu_count(), "rev_before": args.rev,
              "after": after, "before": before}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
