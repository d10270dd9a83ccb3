"""The simulator and real Open vSwitch agree on compiled corpus policies, packet by packet.

For each corpus file: compile the complete flow set for a device on port 1 (uplink port 2)
with every abstraction resolved, add two more managed devices (same profile on port 3;
another manufacturer / the referenced model on port 4) so metadata-based ACEs are reachable,
render the flows as ``ovs-ofctl`` text, load them into a userspace OVS bridge in a sandbox and
``ofproto/trace`` a few hundred packets derived from the ACEs. OVS's verdict must equal the
simulator's for every packet. One sandbox serves the whole module.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import pytest

from mud_ryu.compiler.compile import compile_profile, compile_switch, device_rules, static_forward_rules
from mud_ryu.compiler.context import DeviceSpec, NetworkContext, url_authority
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.lab import ovs, sandbox
from mud_ryu.mudfile.model import MudFile
from mud_ryu.openflow.ofctl_text import render_flows
from tests.conftest import load_corpus, resolving_context
from tests.ofsim import OFPP_LOCAL, FlowTableSim, Verdict
from tests.packets import Host, Packet, candidates, network_addresses

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None,
                                reason=sandbox.unavailable_reason() or "")

FILES = (
    "hslatman+mud.yang.go/examples__lightbulb2000.json",  # RFC 8520 example: DNS names, IPv6, direction
    "usnistgov+nist-mud/test__system-test__mudfile-server__mudfile-sensor.json",  # every NIST abstraction
    "usnistgov+nist-mud/test__unittest__mud-model-test__mudfile-model-test.json",  # model
    "usnistgov+nist-mud/test__unittest__mud-tcp-direction-test__mudfile-tcp-direction-test.json",
    "iot-onboarding+mudfiles/devices__printers__brother__DCP-L2540DW__L2540DW.json",  # v4+v6, my-controller
    "iot-onboarding+mudfiles/unsw__samsungsmartcamMud.json",  # port ranges, eth ACLs, IPv6 (draft dialect)
)
MAX_PACKETS = 8000
PORTS = (1, 2, 3, 4)
DEV = Host("02:00:00:00:01:01", 1, "10.0.0.11", "fd00:1::11")
SAME = Host("02:00:00:00:01:03", 3, "10.0.0.13", "fd00:1::13")
OTHER = Host("02:00:00:00:01:04", 4, "10.0.0.14", "fd00:1::14")


@dataclass(frozen=True)
class Case:
    name: str
    rules: tuple[FlowRule, ...]
    packets: tuple[Packet, ...]


def _other_device_profile(mud: MudFile, ctx: NetworkContext) -> tuple[int, int]:
    """Profile and manufacturer ids of the port-4 device: the first model / manufacturer the
    file names (so model/manufacturer ACEs can match), else a fresh one."""
    models = [m.model for a in (*mud.from_device, *mud.to_device) for e in a.aces
              if (m := e.matches.mud) is not None and m.model and m.model != mud.mud_url]
    mfgs = [m.manufacturer for a in (*mud.from_device, *mud.to_device) for e in a.aces
            if (m := e.matches.mud) is not None and m.manufacturer]
    pid = ctx.profile_id(models[0]) if models else None
    mid = ctx.manufacturer_id(mfgs[0]) if mfgs else None
    if mid is None and models:
        mid = ctx.manufacturer_id(url_authority(models[0]))
    return (pid or max(ctx.profile_ids.values()) + 1, mid or max(ctx.manufacturer_ids.values()) + 1)


def build_case(rel: str) -> Case:
    mud = load_corpus(rel)
    ctx = resolving_context([mud])
    own_pid = ctx.profile_id(mud.mud_url)
    own_mid = ctx.manufacturer_id(url_authority(mud.mud_url))
    assert own_pid is not None and own_mid is not None
    rules = list(compile_switch(mud, DeviceSpec(DEV.mac, DEV.port, 2, device_id=1), ctx))
    other_pid, other_mid = _other_device_profile(mud, ctx)
    for host, dev_id, pid, mid in ((SAME, 3, own_pid, own_mid), (OTHER, 4, other_pid, other_mid)):
        spec = DeviceSpec(host.mac, host.port, 2, device_id=dev_id)
        rules += device_rules(spec, pid, mid)
        rules.append(static_forward_rules(spec)[0])  # frames to its MAC go to its port
    # the port-4 device runs the same policy under its own profile id, so its ACL tables hold rules too
    rules += compile_profile(mud, ctx, other_pid).rules if other_pid != own_pid else ()

    rng = random.Random(rel)
    remotes: list[Host] = []
    addr_lists = [*ctx.dns.values(), *ctx.controllers.values(), *ctx.my_controller.values()]
    addr_lists += [("10.0.5.5", "fd00:1::55"), ("8.8.8.8", "2001:4860::8888")]
    for i, addrs in enumerate(addr_lists):
        v4 = next(a for a in addrs if ":" not in a)
        v6 = next(a for a in addrs if ":" in a)
        remotes.append(Host(f"02:00:00:00:02:{i:02x}", 2, v4, v6))
    pkts = candidates(DEV, [*remotes, SAME, OTHER], mud, rng, extra_addresses=network_addresses(mud))
    pkts += candidates(SAME, [OTHER], mud, rng, n_random=10)
    unique = list(dict.fromkeys(pkts))
    if len(unique) > MAX_PACKETS:
        unique = rng.sample(unique, MAX_PACKETS)
    return Case(rel, tuple(rules), tuple(unique))


CASES = [build_case(rel) for rel in FILES]


@pytest.fixture(scope="module")
def ovs_verdicts() -> dict[str, list[ovs.TraceVerdict]]:
    jobs = [ovs.TraceCase(PORTS, render_flows(c.rules), tuple(p.ovs_flow() for p in c.packets)) for c in CASES]
    results = ovs.trace_in_sandbox(jobs, timeout=600)
    return {c.name: r for c, r in zip(CASES, results, strict=True)}


def _sim(case: Case) -> FlowTableSim:
    sim = FlowTableSim(ports=frozenset({*PORTS, OFPP_LOCAL}))
    sim.add_all(case.rules)
    return sim


def _differs(sim_v: Verdict, ovs_v: ovs.TraceVerdict) -> bool:
    return sim_v.outputs != ovs_v.outputs or sim_v.to_controller != ovs_v.to_controller or bool(ovs_v.other)


@pytest.mark.parametrize("case", CASES, ids=[c.name.split("/")[-1] for c in CASES])
def test_ovs_agrees_with_simulator(case: Case, ovs_verdicts: dict[str, list[ovs.TraceVerdict]]) -> None:
    sim = _sim(case)
    traced = ovs_verdicts[case.name]
    assert len(traced) == len(case.packets) >= 200
    mismatches = []
    allowed = denied = 0
    for pkt, ovs_v in zip(case.packets, traced, strict=True):
        sim_v = sim.process(pkt)
        assert not sim_v.ties, f"ambiguous equal-priority overlap for {pkt.ovs_flow()}: {sim_v.ties}"
        if _differs(sim_v, ovs_v):
            mismatches.append(f"{pkt.ovs_flow()}: sim={sorted(sim_v.outputs)} ovs={ovs_v.datapath_actions}")
        allowed += sim_v.forwarded
        denied += sim_v.dropped
    assert not mismatches, f"{len(mismatches)} mismatches, e.g.\n" + "\n".join(mismatches[:10])
    assert allowed >= 10 and denied >= 10, (allowed, denied)


@pytest.mark.parametrize("case", CASES, ids=[c.name.split("/")[-1] for c in CASES])
def test_packets_cover_both_directions_and_tcp_flag_mixes(case: Case) -> None:
    from_dev = [p for p in case.packets if p.in_port == DEV.port]
    to_dev = [p for p in case.packets if p.eth_dst == DEV.mac]
    flags = {p.tcp_flags for p in case.packets if p.ip_proto == 6}
    assert len(from_dev) >= 50 and len(to_dev) >= 50
    assert {0x002, 0x012, 0x010} <= flags
    assert any(p.ip_src and ipaddress.ip_address(p.ip_src).version == 6 for p in case.packets)
