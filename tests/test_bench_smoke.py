"""The socket load benchmarks run: ``benchmarks/packet_in.py --smoke`` and ``benchmarks/mass_join.py --smoke``
start ``ryu-manager`` (mud_ryu.app and simple_switch_13) on loopback, drive it from the fake switch and write sane
JSON. Timings are the benchmarks' business; these tests assert only that every run finished with counts > 0.

The fake switch's bytes are checked against the other side's reading of them, since the generator shares no code
with the controller: its frames scan as intended (an announcement, a malformed one, one without a URL), Ryu parses
its PACKET_IN and multipart replies, and its FLOW_MOD decoder reads mud_ryu's own flows back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.compat import ofproto
from mud_ryu.compiler.context import DeviceSpec
from mud_ryu.compiler.devflows import device_rules
from mud_ryu.compiler.edgeflows import LEARN_COOKIE, PUNT_COOKIE, learned_host_rules, punt_rules, switch_rules
from mud_ryu.discovery.scan import Announcement, Malformed, NoUrl, scan_frame
from mud_ryu.openflow.wire import FlowModEncoder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import fake_switch_wire as w  # noqa: E402

RYU_MANAGER = Path(sys.executable).with_name("ryu-manager")
URL = "https://mud.bench:8443/shared.json"


def test_frames_scan_as_the_paths_need() -> None:
    src = w.mac(1, 2)
    announced = scan_frame(w.dhcp_discover(src, URL))
    assert isinstance(announced, Announcement) and announced.url == URL and announced.src_mac == w.format_mac(src)
    malformed = scan_frame(w.dhcp_discover(src, URL, chaddr=w.mac(1, 3)))
    assert isinstance(malformed, Malformed) and malformed.reason == "chaddr-mismatch"
    assert isinstance(scan_frame(w.dhcp_discover(src, None)), NoUrl)


def test_ryu_parses_what_the_switch_sends() -> None:
    from ryu.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser

    class Datapath:
        ofproto = ofproto_v1_3
        ofproto_parser = ofproto_v1_3_parser

    def parse(data: bytes) -> Any:
        return ofproto_parser.msg(Datapath(), *ofproto_parser.header(data), data)

    frame = w.dhcp_discover(w.mac(1, 2), URL)
    packet_in = parse(w.packet_in(PUNT_COOKIE, 0, 7, frame))
    assert (packet_in.cookie, packet_in.match.get("in_port"), bytes(packet_in.data)) == (PUNT_COOKIE, 7, frame)
    replies = [parse(r) for r in w.port_desc_replies(1, 1, list(range(1, 1201)))]
    assert [len(r.body) for r in replies] == [500, 500, 200]
    assert [r.flags & ofproto.OFPMPF_REPLY_MORE for r in replies] == [1, 1, 0]
    (meters,) = parse(w.meter_features_reply(3)).body
    assert meters.max_meter >= 2 and meters.band_types & (1 << ofproto.OFPMBT_DROP)


def test_flow_mod_decoder_reads_mud_ryus_flows() -> None:
    encoder = FlowModEncoder()
    (learn,) = [w.parse_flow_mod(encoder.body(r)) for r in switch_rules(metered=True)]
    assert (learn.cookie, learn.table, learn.fields, learn.to_controller) == (LEARN_COOKIE, 0, {}, True)
    dhcp = w.parse_flow_mod(encoder.body(punt_rules(9, metered=True)[0]))
    assert dhcp.cookie == PUNT_COOKIE and dhcp.to_controller
    assert (dhcp.fields[w.OXM_UDP_SRC], dhcp.fields[w.OXM_UDP_DST], dhcp.fields[w.OXM_IN_PORT]) == (
        b"\x00\x44", b"\x00\x43", (9).to_bytes(4, "big"))  # fmt: skip
    mac = "02:01:00:00:00:05"
    host = [w.parse_flow_mod(encoder.body(r)) for r in learned_host_rules(mac, 3)]
    assert [f.fields.get(w.OXM_ETH_SRC) or f.fields.get(w.OXM_ETH_DST) for f in host] == [
        bytes.fromhex("020100000005")
    ] * 2
    classify = w.parse_flow_mod(encoder.body(device_rules(DeviceSpec(mac, device_port=3, uplink_port=1), 7, 2)[0]))
    assert classify.metadata is not None and classify.metadata & (1 << 56) and classify.metadata & 0xFFFF == 7


def _run(script: str, out: Path) -> dict[str, Any]:
    if not RYU_MANAGER.exists():
        pytest.skip("ryu-manager is not installed next to this interpreter")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--out", str(out)], cwd=ROOT,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_packet_in_smoke(tmp_path: Path) -> None:
    result = _run("packet_in.py", tmp_path / "packet_in.json")
    assert result["benchmark"] == "packet_in" and result["smoke"] is True
    assert [p["path"] for p in result["paths"]] == ["learning", "discovery", "drop"]
    for path in result["paths"]:
        assert set(path["apps"]) == {"mud_ryu", "simple_switch_13"}
        for app in path["apps"].values():
            assert app["complete_runs"] == len(app["runs"]) == 1 and app["connected_to_the_end"] is True
            assert app["per_s_median"] > 0
            assert app["runs"][0]["handled"] == path["count"] > 0
        assert path["ratio_mud_over_simple"]["median"] > 0
    discovery = next(p for p in result["paths"] if p["path"] == "discovery")
    assert discovery["apps"]["mud_ryu"]["runs"][0]["enforced"] == discovery["count"]


def test_mass_join_smoke(tmp_path: Path) -> None:
    result = _run("mass_join.py", tmp_path / "mass_join.json")
    assert result["benchmark"] == "mass_join" and result["smoke"] is True
    assert [r["case"] for r in result["rows"]] == ["cached", "failing"]
    for row in result["rows"]:
        assert row["complete"] is True and row["done"] == row["devices"] > 0, row.get("timed_out")
        assert row["seconds_all"] > 0 and row["controller_alive"] is True
        assert row["rss_before"]["controller_kb"] > 0 and row["rss_after"]["controller_kb"] > 0
        assert row["log"]["tracebacks"] == 0 and sum(row["log"]["resolutions"].values()) > 0
