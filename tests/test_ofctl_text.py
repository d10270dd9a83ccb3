"""``ovs-ofctl`` text rendering."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mud_ryu.compiler.flowrule import FlowRule, Output, make_match
from mud_ryu.openflow.ofctl_text import render_flow, render_flows


def test_render_full_rule() -> None:
    rule = FlowRule(
        table="from_device",
        priority=59999,
        cookie=0x4D50000700010001,
        match=make_match(
            metadata=(0x100000000000007, 0x10000000000FFFF),
            eth_type=0x0800,
            ip_proto=6,
            ipv4_dst=("10.0.0.0", "255.0.0.0"),
            tcp_dst=(0x1000, 0xF000),
            tcp_flags=(0x002, 0x012),
        ),
        goto="to_device",
        write_metadata=(1, 3),
        actions=(Output(2),),
        meter=1,
    )
    assert render_flow(rule) == (
        "table=3,priority=59999,cookie=0x4d50000700010001,metadata=0x100000000000007/0x10000000000ffff,"
        "eth_type=0x800,ip_proto=6,nw_dst=10.0.0.0/255.0.0.0,tcp_dst=0x1000/0xf000,tcp_flags=+syn-ack,"
        "actions=meter:1,output:2,write_metadata:0x1/0x3,goto_table:4"
    )


def test_render_drop_names_and_reserved_ports() -> None:
    drop = FlowRule("to_device", 5, make_match(eth_type=0x86DD, ip_proto=58, icmpv6_type=134, ipv6_flabel=7), 1)
    assert render_flow(drop).endswith("ipv6_label=0x7,icmpv6_type=134,actions=drop")
    icmp = FlowRule(
        "from_device",
        5,
        make_match(eth_type=0x800, ip_proto=1, icmpv4_type=8),
        1,
        actions=(Output("IN_PORT"), Output("FLOOD"), Output("CONTROLLER", 0xFFFF)),
    )
    assert render_flow(icmp).endswith("icmp_type=8,actions=in_port,flood,CONTROLLER:65535")
    assert render_flows([drop, icmp]).count("\n") == 2


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl (offline parsing only)")
def test_ovs_accepts_rendered_text() -> None:
    rule = FlowRule(
        "forward", 3, make_match(in_port=1, eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00")), 7, actions=(Output(2),)
    )
    proc = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "parse-flow", render_flow(rule)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00" in proc.stdout and "actions=output:2" in proc.stdout
