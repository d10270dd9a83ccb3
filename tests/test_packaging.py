"""The eventlet-shim .pth ships with both kinds of install (editable: this venv; regular: a wheel)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PTH = "mud_ryu_eventlet_shim.pth"


def test_editable_install_put_the_pth_in_site_packages() -> None:
    pth = Path(sysconfig.get_paths()["purelib"]) / PTH
    assert pth.read_text().strip() == "import mud_ryu._eventlet_shim"


def test_regular_wheel_carries_the_pth_to_site_packages(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("mud_ryu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(f".data/data/lib/python3.11/site-packages/{PTH}") for n in names), names
    assert any(n.startswith("mud_ryu/") for n in names)
    assert len([n for n in names if n.startswith("mud_ryu/mudfile/yang/") and n.endswith(".yang")]) >= 8  # data


def test_shim_is_armed_at_start_and_fires_once_on_ryu_wsgi() -> None:
    code = (
        "import sys, mud_ryu._eventlet_shim as s\n"
        "assert s._FINDER in sys.meta_path  # installed by the .pth at interpreter start\n"
        "import ryu.app.wsgi\n"
        "import eventlet.wsgi as w\n"
        "assert w.ALREADY_HANDLED == []\n"
        "assert s._FINDER not in sys.meta_path  # one-shot\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=60)
