"""Sandbox jobs for tests/test_app_ovs.py: ryu-manager mud_ryu.app against a bare userspace OVS bridge."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mud_ryu.lab import labctl, netns, ovs
from tests.discovery_frames import dhcpv4_frame, v4_options

PORT = 16653


def _send(host: netns.Netns, frame: bytes) -> None:
    code = "import socket,sys;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(('eth0',0));" \
           "s.send(bytes.fromhex(sys.argv[1]))"  # fmt: skip
    host.run(sys.executable, "-c", code, frame.hex())


def _poll(ready: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():
            return True
        time.sleep(0.05)
    return False


def standalone_bridge(payload: Any) -> dict[str, Any]:
    """A bridge left in fail-mode=standalone: the app must say so loudly. Plus what a connect installs
    (meters, per-port punts) and a DHCP announcement whose MUD server does not exist (quarantine)."""
    del payload
    work = Path("/tmp/app-ovs")
    work.mkdir(parents=True, exist_ok=True)
    settings = {"state_dir": str(work / "state"), "signature_policy": "off"}
    out: dict[str, Any] = {}
    with ovs.running_ovs() as switch, netns.Hosts() as hosts:
        bridge = switch.add_bridge("br0", [1, 2], kind="veth")
        switch.vsctl("set-fail-mode", "br0", "standalone")
        dev = hosts.create("dev", netns.Iface("p1-h", "02:00:00:00:00:01", ("10.0.0.2/24",)))
        with labctl.start_controller(work / "ctl", settings, ofp_port=PORT) as ctl:
            switch.vsctl("set-controller", "br0", f"tcp:127.0.0.1:{PORT}")
            out["connected"] = _poll(lambda: any("cookie=0x4d" in f for f in bridge.dump_flows()), 20)

            def log() -> str:
                return ctl.log_path.read_text(errors="replace")

            out["standalone_reported"] = _poll(lambda: "IS IN fail-mode=standalone" in log(), 20)
            out["meters"] = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-meters", "br0"],
                                           capture_output=True, text=True, check=False).stdout  # fmt: skip
            out["punts"] = [f for f in bridge.dump_flows() if "priority=50000" in f]
            _send(dev, dhcpv4_frame(v4_options(url="https://mud.invalid/x.json"), src="02:00:00:00:00:01"))
            out["quarantined"] = _poll(lambda: "ALERT quarantined mac=02:00:00:00:00:01" in log(), 20)
            out["device_flows"] = [f for f in bridge.dump_flows() if "02:00:00:00:00:01" in f]
            out["log"] = log()[-3000:]
    out["env_ovs"] = bool(os.environ.get("OVS_RUNDIR"))
    return out
