"""Proactive resolution through the configured resolver, against the lab DNS server on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mud_ryu.dns.resolver import resolve_names

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mud_ryu.lab.dnsserver", "--name", "api.vendor.example", "--address", "198.51.100.7",
         "--ttl", "120", "--rotate-s", "60", "--log", str(tmp_path / "log"), "--ready", str(ready),
         "--bind", "127.0.0.1", "--port", "0", "--lifetime-s", "60"], cwd=REPO,
    )  # fmt: skip
    try:
        end = time.monotonic() + 15
        while not (ready.exists() and ready.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.02)
        yield int(ready.read_text())
    finally:
        proc.terminate()
        proc.wait(10)


def test_names_resolve_through_the_configured_server(server: int) -> None:
    got = resolve_names(["api.vendor.example", "nowhere.vendor.example"], ["127.0.0.1"], port=server, timeout_s=2)
    assert got == {"api.vendor.example": (("198.51.100.7",), 120.0)}  # NXDOMAIN is simply absent


def test_no_configured_resolver_resolves_nothing() -> None:
    assert resolve_names(["api.vendor.example"], []) == {}
