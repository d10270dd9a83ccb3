"""``benchmarks/join_core.py --quick`` runs and counts what the code does (never its times): a smoke run so the
benchmark cannot rot, in ``make test``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_join_benchmark_joins_everyone_and_reconciles_without_deleting(tmp_path: Path) -> None:
    out = tmp_path / "join_core.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "join_core.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(out.read_text())
    rows = {(r["case"], r["size"]): r for r in report["after"]}
    assert set(rows) == {(case, size) for case in ("cached", "failing") for size in (50, 100)}
    for (case, size), row in rows.items():
        assert not row["cut_off"] and row["done"] == size
        assert row["states"] == {"enforced" if case == "cached" else "quarantined": size}
        assert row["resolutions"] == 1  # one resolution for the URL, whatever the number of devices
        assert row["rows_written"] <= 3 * size
    reconciled = rows[("cached", 100)]["reconcile"]
    assert reconciled["flows_held"] > 100 and reconciled["added"] == 0 and reconciled["deleted"] == 0
