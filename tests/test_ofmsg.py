"""Ryu message objects built from FlowRule records (datapath=None until the app sends)."""

from __future__ import annotations

from mud_ryu.compat import ofproto, parser
from mud_ryu.compiler.flowrule import FlowRule, Output, make_match
from mud_ryu.compiler.pipeline import table_id
from mud_ryu.openflow import ryu_msgs as ofmsg


def test_flow_mod_carries_every_part_of_the_rule() -> None:
    rule = FlowRule(
        table="from_device",
        priority=123,
        cookie=0x4D30000100000000,
        match=make_match(eth_type=0x0800, ip_proto=6, tcp_dst=(0x1000, 0xF000), metadata=(2, 0xFFFF)),
        actions=(Output(5), Output("CONTROLLER", 128)),
        goto="to_device",
        write_metadata=(1 << 16, 0xFFFF0000),
        meter=4,
        idle_timeout=10,
    )
    msg = ofmsg.flow_mod(rule)
    assert msg.datapath is None and msg.command == ofproto.OFPFC_ADD
    assert (msg.table_id, msg.priority, msg.cookie, msg.idle_timeout) == (table_id("from_device"), 123, rule.cookie, 10)
    assert dict(msg.match.items()) == {
        "eth_type": 0x0800,
        "ip_proto": 6,
        "tcp_dst": (0x1000, 0xF000),
        "metadata": (2, 0xFFFF),
    }
    meter, apply, write, goto = msg.instructions
    assert isinstance(meter, parser.OFPInstructionMeter) and meter.meter_id == 4
    assert [(a.port, a.max_len) for a in apply.actions] == [(5, 0xFFFF), (ofproto.OFPP_CONTROLLER, 128)]
    assert (write.metadata, write.metadata_mask) == (1 << 16, 0xFFFF0000)
    assert goto.table_id == table_id("to_device")


def test_drop_rule_has_no_instructions() -> None:
    assert ofmsg.flow_mod(FlowRule("classify_src", 1, make_match(eth_src="00:00:5e:00:53:01"), 0)).instructions == []


def test_delete_by_cookie_and_barrier() -> None:
    msg = ofmsg.delete_by_cookie(0x4D30000700000000, 0xFFFFFFFF00000000)
    assert msg.command == ofproto.OFPFC_DELETE and msg.table_id == ofproto.OFPTT_ALL
    assert (msg.cookie, msg.cookie_mask) == (0x4D30000700000000, 0xFFFFFFFF00000000)
    assert msg.out_port == ofproto.OFPP_ANY and msg.out_group == ofproto.OFPG_ANY
    assert ofmsg.delete_by_cookie(1, 1, "forward").table_id == table_id("forward")
    assert isinstance(ofmsg.barrier(), parser.OFPBarrierRequest)
    assert ofmsg.serialize(ofmsg.barrier(), xid=5)[:4] == bytes([4, 20, 0, 8])
