"""Where a process spends its time, from py-spy samples: for ``benchmarks/mass_join.py --py-spy BIN``.

py-spy (``pip install py-spy``; not a dependency of the project) samples the controller from outside with
``--nonblocking`` (the process is never paused, so the measurement is not disturbed beyond the sampling cost) and
writes collapsed stacks (``--format raw``: ``frame;frame;... count``). The summary names functions by
``name (file)`` without line numbers and gives, per function, the share of samples it was on the stack
(inclusive) and at the top of it (self).
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")
TOP = 15


def start(binary: str, pid: int, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    argv = [binary, "record", "--nonblocking", "--format", "raw", "--rate", str(rate), "-o", str(out), "--pid",
            str(pid)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    """SIGINT to our py-spy by its PID (it writes its file then), then the summary of what it wrote."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    try:
        return summarise(out.read_text(errors="replace"))
    except OSError as error:
        return {"samples": 0, "error": str(error), "lines": [f"py-spy wrote nothing: {error}"]}


def summarise(collapsed: str) -> dict[str, Any]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    share = (lambda c: round(c / total, 4)) if total else (lambda c: 0.0)
    top_inc = [(name, share(c)) for name, c in inclusive.most_common(TOP * 3) if "<module>" not in name][:TOP]
    top_self = [(name, share(c)) for name, c in own.most_common(TOP)]
    lines = [f"py-spy: {total} samples; inclusive share (on the stack):"]
    lines += [f"  {s:6.1%}  {n}" for n, s in top_inc]
    lines += ["self share (at the top):"] + [f"  {s:6.1%}  {n}" for n, s in top_self]
    return {"samples": total, "inclusive": top_inc, "self": top_self, "lines": lines}


def _name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (to/file.py)``: the last two path parts, no line."""
    frame = _LINE.sub(")", frame.strip())
    if "(" in frame:
        func, _, where = frame.partition(" (")
        parts = where.rstrip(")").split("/")
        return f"{func} ({'/'.join(parts[-2:])})"
    return frame
