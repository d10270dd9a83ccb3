"""Why a test that needs the sandboxed switch lab cannot run here (None: it can)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mud_ryu.lab import sandbox


def switch_lab_skip_reason(*tools: str) -> str | None:
    """The sandbox must be usable, ``tools`` on PATH, and ``ryu-manager`` next to this interpreter."""
    reason = sandbox.unavailable_reason()
    if reason is not None:
        return reason
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not (Path(sys.executable).parent / "ryu-manager").exists():
        return "ryu-manager not installed next to the interpreter"
    return None
