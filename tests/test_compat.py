"""The framework fallback: the core and the app import under Ryu and under os-ken 3.1.x."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# Imports the app and builds + serialises a flow-mod through compat.parser, then reports
# which framework every piece came from.
PROBE = """
import json, sys
import mud_ryu.compat as compat
import mud_ryu.app as app
from mud_ryu.compiler import flowrule
from mud_ryu.mudfile import model
from mud_ryu.compiler import pipeline
mod = compat.parser.OFPFlowMod(None, table_id=pipeline.table_id("forward"), priority=1,
    match=compat.parser.OFPMatch(eth_dst="00:11:22:33:44:55"))
mod.set_xid(7)
mod.datapath = type("DP", (), {"ofproto": compat.ofproto, "ofproto_parser": compat.parser})()
mod.serialize()
print(json.dumps({"framework": compat.FRAMEWORK, "app_base": app.MudApp.__mro__[1].__module__,
                  "parser": compat.parser.__name__, "hex": bytes(mod.buf).hex()}))
"""


def _probe(env_framework: str | None, block: str | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "MUD_RYU_FRAMEWORK"}
    if env_framework:
        env["MUD_RYU_FRAMEWORK"] = env_framework
    code = PROBE if block is None else f"import sys; sys.modules[{block!r}] = None\n" + PROBE
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize("framework", ["ryu", "os_ken"])
def test_core_and_app_import_under_each_framework(framework: str) -> None:
    if not _installed(framework):
        pytest.skip(f"{framework} not installed (os-ken is optional)")
    got = _probe(framework)
    assert got["framework"] == framework
    assert str(got["app_base"]).startswith(f"{framework}.base")
    assert str(got["parser"]).startswith(f"{framework}.ofproto")
    # header + flow-mod body (48) + ofp_match with one eth_dst OXM padded to 8 (16)
    assert len(bytes.fromhex(str(got["hex"]))) == 64
    if framework != "ryu" and _installed("ryu"):
        assert got["hex"] == _probe("ryu")["hex"], "both frameworks must put the same bytes on the wire"


def test_falls_back_to_os_ken_when_ryu_is_missing() -> None:
    if not _installed("os_ken"):
        pytest.skip("os-ken not installed")
    assert _probe(None, block="ryu")["framework"] == "os_ken"


def test_prefers_ryu_by_default() -> None:
    assert _probe(None)["framework"] == "ryu"


def test_unknown_forced_framework_is_a_clear_error() -> None:
    env = dict(os.environ, MUD_RYU_FRAMEWORK="pox")
    out = subprocess.run([sys.executable, "-c", "import mud_ryu.compat"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "MUD_RYU_FRAMEWORK='pox'" in out.stderr
