"""The direct FLOW_MOD encoder must produce exactly Ryu's bytes, so the app can send them."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings

from mud_ryu.compiler.compile import compile_switch
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, DeviceSpec, NetworkContext
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.mudfile.model import Direction
from mud_ryu.openflow import ryu_msgs as ofmsg
from mud_ryu.openflow import wire as ofwire
from mud_ryu.openflow.ofctl_text import render_flows
from tests.compiler_helpers import DEV_MAC, acl, eq, mudfile, tcp_ace, udp_ace
from tests.flowrule_strategies import flow_rules


@settings(max_examples=400, deadline=None)
@given(flow_rules())
def test_bytes_equal_ryu_serialisation(rule: FlowRule) -> None:
    enc = ofwire.FlowModEncoder()
    expected = ofmsg.serialize(ofmsg.flow_mod(rule), xid=0x1234)
    assert enc.flow_mod(rule, xid=0x1234) == expected
    assert enc.flow_mod(rule, xid=0x1234) == expected  # again, from the caches


@settings(max_examples=100, deadline=None)
@given(flow_rules())
def test_delete_strict_bytes_equal(rule: FlowRule) -> None:
    enc = ofwire.FlowModEncoder()
    expected = ofmsg.serialize(ofmsg.delete_strict(rule), xid=7)
    assert enc.flow_mod(rule, xid=7, command=ofwire.OFPFC_DELETE_STRICT) == expected


def test_delete_by_cookie_and_barrier_bytes_equal() -> None:
    for table in (None, "to_device"):
        ryu = ofmsg.serialize(ofmsg.delete_by_cookie(0x4D3000, 0xFFFF0000, table), xid=3)
        assert ofwire.delete_by_cookie(0x4D3000, 0xFFFF0000, xid=3, table=table) == ryu
    assert ofwire.barrier_request(9) == ofmsg.serialize(ofmsg.barrier(), xid=9)


def test_flow_mods_are_concatenated_with_consecutive_xids() -> None:
    rules = [FlowRule("forward", p, (), 0) for p in (1, 2, 3)]
    blob = ofwire.FlowModEncoder().flow_mods(rules, first_xid=10)
    xids, offset = [], 0
    while offset < len(blob):
        _, _, length, xid = struct.unpack_from("!BBHI", blob, offset)
        xids.append(xid)
        offset += length
    assert xids == [10, 11, 12] and offset == len(blob)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError):
        ofwire.encode_oxm("mpls_label", 3)


def _sample_rules() -> tuple[FlowRule, ...]:
    mud = mudfile(
        from_device=(acl("o", tcp_ace("a", dst_dnsname="api", dst_port=eq(443)), udp_ace("n", 123)),),
        to_device=(acl("i6", tcp_ace("b", family=6, src_dnsname="api", initiated=Direction.FROM_DEVICE), family=6),),
    )
    ctx = NetworkContext(dns={"api": ("192.0.2.1", "2001:db8::1")}, controllers={DNS_CONTROLLER_URN: ("10.0.0.53",)})
    return compile_switch(mud, DeviceSpec(DEV_MAC, 1, 2), ctx)


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl (offline parsing only)")
def test_ovs_decodes_wire_bytes_like_the_text(tmp_path: Path) -> None:
    """Cross-check of both renderers by OVS itself: its decoding of our FLOW_MOD bytes equals
    its parsing of our ovs-ofctl text (no switch involved: ofp-parse / parse-flows)."""
    rules = _sample_rules()
    (tmp_path / "f.bin").write_bytes(ofwire.FlowModEncoder().flow_mods(rules))
    (tmp_path / "f.txt").write_text(render_flows(rules))

    def decoded(*args: str) -> list[str]:
        proc = subprocess.run(["ovs-ofctl", *args], capture_output=True, text=True, check=True, timeout=30)
        lines = [ln for ln in proc.stdout.splitlines() if "OFPT_FLOW_MOD" in ln]
        return [ln.split("):", 1)[1] for ln in lines]

    from_bytes = decoded("ofp-parse", str(tmp_path / "f.bin"))
    from_text = decoded("-O", "OpenFlow13", "parse-flows", str(tmp_path / "f.txt"))
    assert len(from_bytes) == len(rules)
    assert from_bytes == from_text
