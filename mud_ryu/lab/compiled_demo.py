"""The compiler alone on real traffic (``python -m mud_ryu.lab.compiled_demo``): a compiled MUD policy in a sandboxed
Open vSwitch, no controller.

No controller: the bridge is in ``fail-mode=secure`` and holds exactly what ``mud-ryu compile``
prints for the NIST test sensor, loaded with ``ovs-ofctl add-flows``. Two network namespaces are
attached by veth: ``thing`` (the MUD device, OpenFlow port 1) and ``internet`` (port 2), which
holds every peer address, allowed and forbidden. Real TCP/UDP/DNS/ICMP probes run in both
directions; each has an expected verdict derived from the MUD file (:data:`PROBES`). Every
destination has a listener, so a probe that gets nothing back was dropped by the switch.

Everything runs inside one :mod:`mud_ryu.lab.sandbox` (fresh net/pid/mount namespaces); the
host only prints the report. Exit status 0 iff every observed verdict is the expected one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mud_ryu.lab import netns, ovs, sandbox

REPO = Path(__file__).resolve().parent.parent.parent
MUD_FILE = "tests/fixtures/corpus/usnistgov+nist-mud/test__system-test__mudfile-server__mudfile-sensor.json"

THING_MAC, INET_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
THING_PORT, INET_PORT = 1, 2
THING = "10.0.0.2"
WWW, WWW_ALT = "192.0.2.10", "192.0.2.11"  # both resolve www.nist.local
CONTROLLER = "192.0.2.20"  # member of the controller class https://controller.nist.local
MY_CONTROLLER = "192.0.2.30"  # the device's my-controller
DNS_NTP = "192.0.2.53"  # RFC 8520 default DNS and NTP server
FORBIDDEN = "192.0.2.66"  # named by nothing in the MUD file
LOCAL_PEER = "10.0.0.50"  # on the local network 10.0.0.0/24
INET_ADDRESSES = (WWW, WWW_ALT, CONTROLLER, MY_CONTROLLER, DNS_NTP, FORBIDDEN)

ALLOWED, BLOCKED = "allowed", "blocked"


@dataclass(frozen=True, slots=True)
class Probe:
    id: str
    src_host: str  # "thing" or "internet"
    kind: str  # tcp | udp | dns | ping
    dst: str
    port: int
    expected: str
    reason: str
    src: str = ""  # source address to bind (internet side holds several)
    sport: int = 0


# The expected verdicts, each with the MUD clause (ACE name) or rule that decides it.
PROBES: tuple[Probe, ...] = (
    Probe("www-443", "thing", "tcp", WWW, 443, ALLOWED, "cl0-frdev: tcp/443 to www.nist.local, device-initiated"),
    Probe("www-80", "thing", "tcp", WWW, 80, BLOCKED, "www.nist.local is allowed on 443 only"),
    Probe("other-443", "thing", "tcp", FORBIDDEN, 443, BLOCKED, "192.0.2.66 is not www.nist.local: default deny"),
    Probe("ctl-8080", "thing", "tcp", CONTROLLER, 8080, ALLOWED, "ent0-frdev: controller class, tcp/8080"),
    Probe("other-8080", "thing", "tcp", FORBIDDEN, 8080, BLOCKED, "not a member of the controller class"),
    Probe("myctl-4000", "thing", "udp", MY_CONTROLLER, 4000, ALLOWED, "myctl0-frdev: my-controller udp/4000"),
    Probe("other-4000", "thing", "udp", FORBIDDEN, 4000, BLOCKED, "not the device's my-controller"),
    Probe("dns", "thing", "dns", DNS_NTP, 53, ALLOWED, "RFC 8520 default: UDP 53 to the local DNS server"),
    Probe("other-dns", "thing", "dns", FORBIDDEN, 53, BLOCKED, "DNS only to the configured server"),
    Probe("ntp", "thing", "udp", DNS_NTP, 123, ALLOWED, "RFC 8520 default: UDP 123 to the local NTP server"),
    Probe("local-888", "thing", "tcp", LOCAL_PEER, 888, ALLOWED, "loc1-frdev: local-networks tcp/888"),
    Probe("local-81", "thing", "tcp", LOCAL_PEER, 81, BLOCKED, "local-networks only on 80 (inbound) and 888"),
    Probe("sameman-8888", "thing", "tcp", FORBIDDEN, 8888, BLOCKED, "myman0: peer is not a same-manufacturer device"),
    Probe("ping-www", "thing", "ping", WWW, 0, BLOCKED, "no ACE allows ICMP"),
    Probe(
        "local-in-80",
        "internet",
        "tcp",
        THING,
        80,
        ALLOWED,
        "loc0-todev: local networks may initiate to tcp/80",
        src=LOCAL_PEER,
    ),
    Probe("other-in-80", "internet", "tcp", THING, 80, BLOCKED, "192.0.2.66 is not on a local network", src=FORBIDDEN),
    Probe(
        "www-in-from-443",
        "internet",
        "tcp",
        THING,
        5000,
        BLOCKED,
        "cl0-todev matches (src www.nist.local:443) but is device-initiated: SYN guard",
        src=WWW_ALT,
        sport=443,
    ),
)


def mud_context() -> Any:
    """The lab's expansion of the sensor's abstractions (names, controllers, local networks)."""
    from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, NetworkContext

    return NetworkContext(
        dns={"www.nist.local": (WWW, WWW_ALT)},
        controllers={
            "https://controller.nist.local": (CONTROLLER,),
            DNS_CONTROLLER_URN: (DNS_NTP,),
            NTP_CONTROLLER_URN: (DNS_NTP,),
        },
        my_controller={"https://sensor.nist.local/nistmud1": (MY_CONTROLLER,)},
        local_networks=("10.0.0.0/24",),
    )


def _listeners(host: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Every probe destination gets a listener, so "nothing came back" means the switch dropped it."""
    tcp = sorted({(p.dst, p.port) for p in PROBES if p.kind == "tcp" and _owner(p.dst) == host})
    udp = sorted({(p.dst, p.port) for p in PROBES if p.kind in ("udp", "dns") and _owner(p.dst) == host})
    return tcp, udp


def _owner(addr: str) -> str:
    return "thing" if addr == THING else "internet"


_STATS_RE = re.compile(r"cookie=(0x[0-9a-f]+).*?table=(\d+).*?n_packets=(\d+).*?priority=(\d+)")


def _flow_stats(bridge: str) -> list[dict[str, int]]:
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    stats = []
    for line in out.splitlines():
        m = _STATS_RE.search(line)
        if m:
            stats.append(
                {
                    "cookie": int(m.group(1), 16),
                    "table": int(m.group(2)),
                    "n_packets": int(m.group(3)),
                    "priority": int(m.group(4)),
                }
            )
    return stats


def _ace_hits(switch: Any, stats: Sequence[Mapping[str, int]]) -> list[dict[str, Any]]:
    """Packet counts per ACE: ACE n of a direction owns the slot ``ACE_TOP - n*ACE_STEP`` (its
    SYN guard at the top, its flows one below), in the order the compiler reports ACEs."""
    from mud_ryu.compiler.compile import ACL_TABLE
    from mud_ryu.compiler.pipeline import ACE_STEP, Band, table_id

    hits: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for ace in switch.profile.ace_flows:
        n = index.get(ace.direction.value, 0)
        index[ace.direction.value] = n + 1
        table, top = table_id(ACL_TABLE[ace.direction][0]), int(Band.ACE_TOP) - n * ACE_STEP
        in_slot = [s for s in stats if s["table"] == table and s["priority"] in (top, top - 1)]
        hits.append(
            {
                "ace": f"{ace.direction.value}/{ace.ace}",
                "flows": len(in_slot),
                "packets": sum(s["n_packets"] for s in in_slot if s["priority"] == top - 1),
                "guard_drops": sum(s["n_packets"] for s in in_slot if s["priority"] == top),
            }
        )
    for direction in ("from_device", "to_device"):
        dflt = [s for s in stats if s["table"] == table_id(direction) and s["priority"] == int(Band.DEFAULTS)]
        hits.append(
            {
                "ace": f"{direction}/rfc8520-defaults(dns,ntp)",
                "flows": len(dflt),
                "packets": sum(s["n_packets"] for s in dflt),
                "guard_drops": 0,
            }
        )
    return hits


def _run_probes(ns: Mapping[str, netns.Netns]) -> dict[str, dict[str, Any]]:
    observed: dict[str, dict[str, Any]] = {}
    for host in ("thing", "internet"):
        batch = [asdict(p) for p in PROBES if p.src_host == host]
        observed.update({r["id"]: r for r in netns.probe(ns[host], batch)})
    return observed


def demo_job(_: Any) -> dict[str, Any]:
    """Runs inside the sandbox: build the lab, install the compiled flows, send real traffic."""
    from mud_ryu.compiler.compile import build_switch
    from mud_ryu.compiler.context import DeviceSpec
    from mud_ryu.mudfile.reader import load
    from mud_ryu.openflow.ofctl_text import render_flows

    parsed = load(REPO / MUD_FILE)
    switch = build_switch(parsed.mud, DeviceSpec(THING_MAC, THING_PORT, INET_PORT), mud_context())
    with ovs.running_ovs() as sw, netns.Hosts() as hosts:
        bridge = sw.add_bridge("br0", [THING_PORT, INET_PORT], kind="veth")
        bridge.add_flows(render_flows(switch.rules))
        ns = {
            "thing": hosts.create(
                "thing", netns.Iface(f"p{THING_PORT}-h", THING_MAC, (f"{THING}/24",), default_route=True)
            ),
            "internet": hosts.create(
                "internet",
                netns.Iface(f"p{INET_PORT}-h", INET_MAC, (*(f"{a}/32" for a in INET_ADDRESSES), f"{LOCAL_PEER}/24")),
            ),
        }
        start = time.monotonic()
        with netns.serving(ns["thing"], *_listeners("thing")), netns.serving(ns["internet"], *_listeners("internet")):
            observed = _run_probes(ns)
            probe_seconds = time.monotonic() - start
            stats = _flow_stats("br0")
            # Control: the same probes through a plain learning switch must all get through, so a
            # "blocked" above is the compiled policy's doing, not a broken lab.
            bridge.del_flows()
            bridge.add_flows("priority=0,actions=NORMAL\n")
            control = _run_probes(ns)
    return {
        "mud_file": MUD_FILE,
        "mud_url": parsed.mud.mud_url,
        "systeminfo": parsed.mud.systeminfo,
        "flows_installed": len(switch.rules),
        "flows_in_switch": len(stats),
        "warnings": [str(w) for w in (*parsed.warnings, *switch.warnings)],
        "probes": [
            {**asdict(p), "observed": observed[p.id]["observed"], "detail": observed[p.id]["detail"]} for p in PROBES
        ],
        "ace_hits": _ace_hits(switch, stats),
        "probe_seconds": probe_seconds,
        "control": {k: v["observed"] for k, v in control.items()},
    }


def run_demo(timeout: float = 120.0) -> dict[str, Any]:
    """Host side: run :func:`demo_job` in a fresh sandbox and return its result."""
    result = sandbox.run_callable(
        "mud_ryu.lab.compiled_demo:demo_job", None, timeout=timeout, env={"PYTHONPATH": str(REPO)}
    )
    assert isinstance(result, dict)
    return result


def all_match(result: Mapping[str, Any]) -> bool:
    """Every verdict as expected, and the control run shows every probe can get through."""
    return all(p["observed"] == p["expected"] for p in result["probes"]) and all(
        v == ALLOWED for v in result["control"].values()
    )


def report(result: Mapping[str, Any]) -> str:
    lines = [
        f"MUD file:        {result['mud_file']}",
        f"mud-url:         {result['mud_url']}",
        f"systeminfo:      {result['systeminfo']}",
        f"flows installed: {result['flows_installed']} (br0: netdev, OpenFlow13, fail-mode=secure, no controller)",
        f"lab:             thing {THING} ({THING_MAC}) on port {THING_PORT}; internet on port {INET_PORT}: "
        f"www.nist.local={WWW},{WWW_ALT} controller={CONTROLLER} my-controller={MY_CONTROLLER} "
        f"dns/ntp={DNS_NTP} local={LOCAL_PEER} forbidden={FORBIDDEN}",
        "",
        f"{'PROBE':<16} {'FROM -> TO':<38} {'EXPECTED':<8} {'OBSERVED':<8} {'':<8} REASON",
    ]
    for p in result["probes"]:
        src = p["src"] or (THING if p["src_host"] == "thing" else "internet")
        dst = f"{p['kind']} {p['dst']}" + (f":{p['port']}" if p["port"] else "")
        src_text = f"{src}:{p['sport']}" if p["sport"] else src
        verdict = "OK" if p["observed"] == p["expected"] else "MISMATCH"
        lines.append(
            f"{p['id']:<16} {src_text + ' -> ' + dst:<38} {p['expected']:<8} {p['observed']:<8} "
            f"{verdict:<8} {p['reason']}"
        )
        if verdict != "OK":
            lines.append(f"{'':<16} detail: {p['detail']}")
    lines += ["", f"{'ACE (cookie-tagged flows)':<44} {'FLOWS':>5} {'PACKETS':>8} {'SYN-GUARD DROPS':>16}"]
    for h in result["ace_hits"]:
        lines.append(f"{h['ace']:<44} {h['flows']:>5} {h['packets']:>8} {h['guard_drops']:>16}")
    ok = sum(p["observed"] == p["expected"] for p in result["probes"])
    reach = sum(v == ALLOWED for v in result["control"].values())
    lines += ["", f"control (flows replaced by one NORMAL flow): {reach}/{len(result['control'])} probes get through"]
    lines += ["", f"{ok}/{len(result['probes'])} probes as expected (traffic phase {result['probe_seconds']:.1f}s)"]
    return "\n".join(lines)


def main() -> int:
    from mud_ryu.lab.demo import run_and_report

    return run_and_report(run_demo, report, all_match)


if __name__ == "__main__":
    sys.exit(main())
