"""The sandbox and the OVS helpers (everything OVS runs inside one sandbox for this module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.lab import ovs, sandbox

REPO = str(Path(__file__).resolve().parent.parent)
ENV = {"PYTHONPATH": REPO}

pytestmark = pytest.mark.skipif(sandbox.unavailable_reason() is not None,
                                reason=sandbox.unavailable_reason() or "")

FLOWS = """\
table=0,priority=100,tcp,tcp_flags=+syn-ack,actions=output:2,CONTROLLER:65535
table=0,priority=50,ip,actions=goto_table:1
table=0,priority=40,arp,actions=FLOOD
table=1,priority=6,udp,actions=in_port
table=1,priority=5,actions=output:2
"""


def lab_checks(_: Any) -> dict[str, Any]:
    """Runs inside the sandbox: exercise the OVS helpers and report what was observed."""
    out: dict[str, Any] = {}
    with ovs.running_ovs() as sw:
        br = sw.add_bridge("br0", [1, 2, 7])
        out["dp_ports"] = sorted(br.dp_to_of().values())
        br.add_flows(FLOWS)
        out["dump"] = br.dump_flows()
        flows = ["in_port=1,tcp,tcp_flags=0x002", "in_port=1,tcp,tcp_flags=0x012", "in_port=7,udp",
                 "in_port=1,arp", "in_port=1,dl_type=0x88cc", "in_port=2,ipv6"]
        out["traces"] = [v.to_json() for v in br.trace_many(flows)]
        for name, bad in (("syntax", "in_port=1,tcp,tcp_dst=foo"), ("field", "in_port=1,nosuchfield=1")):
            try:
                br.trace(bad)
                out[name] = "no error"
            except ovs.OvsError as exc:
                out[name] = exc.reason
        try:  # one bad line: with --bundle nothing of the batch is installed
            br.add_flows("table=0,priority=1,actions=output:1\ntable=0,priority=2,nosuchfield=80,actions=drop\n")
            out["bad_bundle"] = "accepted"
        except ovs.OvsError as exc:
            out["bad_bundle"] = exc.reason
        out["dump_after_bad_bundle"] = br.dump_flows()
        br.del_flows()
        out["dump_after_del"] = br.dump_flows()
        sw.del_bridge("br0")
        veth = sw.add_bridge("br1", [4], kind="veth")
        out["veth_ports"] = sorted(veth.dp_to_of().values())
        out["vswitchd_pid"] = sw._pids["ovs-vswitchd"]
    out["vswitchd_alive_after_stop"] = os.path.exists(f"/proc/{out['vswitchd_pid']}")
    out["env"] = {n: os.environ[n] for n in sandbox.OVS_DIR_ENV}
    return out


@pytest.fixture(scope="module")
def lab() -> dict[str, Any]:
    result = sandbox.run_callable("tests.test_lab_ovs:lab_checks", None, env=ENV, timeout=120)
    assert isinstance(result, dict)
    return result


def test_bridge_has_requested_openflow_ports(lab: dict[str, Any]) -> None:
    assert lab["dp_ports"] == [1, 2, 7, ovs.OFPP_LOCAL]
    assert lab["veth_ports"] == [4, ovs.OFPP_LOCAL]


def test_flows_loaded_and_dumped_without_counters(lab: dict[str, Any]) -> None:
    assert len(lab["dump"]) == 5
    assert all("n_packets" not in ln and "duration" not in ln for ln in lab["dump"])
    assert any("tcp_flags=+syn-ack" in ln for ln in lab["dump"])
    assert lab["dump_after_del"] == []


def test_trace_verdicts_map_datapath_ports_back(lab: dict[str, Any]) -> None:
    syn, synack, udp_back, arp_flood, lldp, v6 = (ovs.TraceVerdict.from_json(v) for v in lab["traces"])
    assert syn.outputs == {2} and syn.to_controller
    assert synack.outputs == {2} and not synack.to_controller  # via goto_table:1
    assert udp_back.outputs == {7}  # in_port action
    assert arp_flood.outputs == {2, 7, ovs.OFPP_LOCAL}  # FLOOD includes the bridge port, not in_port
    assert lldp.dropped and v6.dropped


def test_trace_errors_are_errors_not_drops(lab: dict[str, Any]) -> None:
    assert lab["syntax"] == "trace_error"
    assert lab["field"] == "trace_error"


def test_bundle_is_all_or_nothing(lab: dict[str, Any]) -> None:
    assert lab["bad_bundle"] == "add_flows_failed"
    assert len(lab["dump_after_bad_bundle"]) == 5  # the batch's valid first line was not installed


def test_ovs_stopped_and_used_private_dirs(lab: dict[str, Any]) -> None:
    assert not lab["vswitchd_alive_after_stop"]
    assert all(path.startswith(sandbox.OVS_ROOT) for path in lab["env"].values())


def test_sandbox_is_isolated_from_the_host() -> None:
    marker = "mud-ryu-sandbox-marker"
    script = (
        f"ip -o link show; echo PID=$$; echo x > /tmp/{marker}; ls -a /tmp; sleep 300 & echo BG=$!;"
        "cat /proc/self/mountinfo | grep ' /tmp ' "
    )
    res = sandbox.run_command(["sh", "-c", script], timeout=60)
    assert res.returncode == 0, res.stderr
    links = [ln for ln in res.stdout.splitlines() if ": " in ln and "link/" in ln]
    assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0]
    assert "tmpfs" in res.stdout
    assert not os.path.exists(f"/tmp/{marker}")  # the sandbox's /tmp is its own
    ls_lines = res.stdout.split("PID=")[1].splitlines()[1:]
    assert marker in ls_lines and "ovs" in ls_lines


def test_sandbox_processes_die_with_it() -> None:
    res = sandbox.run_command(["sh", "-c", "sleep 1000 & echo $!; cat /proc/$!/stat"], timeout=60)
    assert res.returncode == 0
    # pid namespaces: the host cannot name that pid; check no host 'sleep 1000' child of ours survives
    survivors = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd == b"sleep\x001000\x00":
                survivors.append(pid)
    assert survivors == []


def test_callable_errors_come_back_with_reason() -> None:
    with pytest.raises(sandbox.SandboxError) as err:
        sandbox.run_callable("mud_ryu.lab.ovs:trace_job", {"cases": "not a list"}, timeout=60)
    assert err.value.reason == "failed" and "Traceback" in str(err.value)


def test_ovs_refuses_to_start_outside_a_sandbox() -> None:
    with pytest.raises(ovs.OvsError) as err:
        ovs.OvsDirs.from_env()
    assert err.value.reason == "not_sandboxed"


def test_parse_trace_handles_nested_actions_and_unknown_ports() -> None:
    text = "Flow: x\nDatapath actions: 3\nmore\nDatapath actions: 2,userspace(pid=0,controller(reason=1)),set(eth(a))"
    v = ovs.parse_trace(text, {2: 5, 3: 6})
    assert v.outputs == {5} and v.to_controller and v.other == ("set(eth(a))",) and not v.dropped
    assert ovs.parse_trace("Datapath actions: drop", {}).dropped
    with pytest.raises(ovs.OvsError, match="unknown_port"):
        ovs.parse_trace("Datapath actions: 9", {2: 5})
    with pytest.raises(ovs.OvsError, match="trace_error"):
        ovs.parse_trace("Bad openflow flow syntax", {})


def test_bundle_install_rate_counts_the_flows() -> None:
    text = "".join(f"table=0,priority=10,ip,nw_dst=10.0.{i >> 8}.{i & 255},actions=output:2\n" for i in range(3000))
    rate = ovs.measure_bundle_install_rate(text, repeat=2, timeout=120)
    assert rate.flows == 3000 and rate.best_seconds > 0 and rate.flows_per_second > 0


def test_project_under_tmp_stays_visible_inside() -> None:
    """CI may clone the project under /tmp: the sandbox's private tmpfs must not hide it."""
    import subprocess
    import sys
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="mud-ryu-sandbox-", dir="/tmp"))
    try:
        (work / "marker").write_text("still here\n")
        code = (
            "from mud_ryu.lab import sandbox; import sys\n"
            f"r = sandbox.run_command(['sh', '-c', 'cat {work}/marker; ls /tmp'])\n"
            "sys.stdout.write(r.stdout)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60,
                             check=True).stdout.split()
        assert out[:2] == ["still", "here"]
        # still a private /tmp: only the held-back directories (this one, the project's if it lives
        # under /tmp) and the sandbox's own OVS dirs
        project = Path(sandbox.__file__).resolve().parents[2].parts
        allowed = {work.name, "ovs"} | ({project[2]} if project[1:2] == ("tmp",) else set())
        assert set(out[2:]) <= allowed, out
    finally:
        (work / "marker").unlink()
        work.rmdir()
