"""One OVS bridge's flows, port map and traces, and the way the lab talks to the OVS tools.

Tools run as subprocesses (:func:`run_tool`: a non-zero exit is an :class:`OvsError`, with stderr).
Many traces go over one unixctl (JSON-RPC) connection to ovs-vswitchd (:class:`Unixctl`) instead of
one ``ovs-appctl`` process each: a cross-check traces thousands of packets. The daemons themselves
are started and stopped by :class:`mud_ryu.lab.ovs.Ovs`, which hands out :class:`Bridge` objects.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Protocol

from mud_ryu.lab.ovs_trace import OFPP_LOCAL, OvsError, TraceVerdict, parse_trace


class Vswitchd(Protocol):
    """What a bridge needs from the switch that owns it: the path of a daemon's control socket."""

    def ctl_path(self, daemon: str) -> str | None: ...


def run_tool(argv: Sequence[str], stdin: str | None = None) -> str:
    """Run an OVS (or ip/ethtool) command; its stdout, or OvsError("command_failed") with its stderr."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise OvsError("command_failed", f"{' '.join(argv[:4])}...: {proc.stderr.strip()[:2000]}")
    return proc.stdout


class Unixctl:
    """A JSON-RPC client for a daemon's unixctl socket (what ``ovs-appctl`` speaks)."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(30)
        self._sock.connect(path)
        self._buf = ""
        self._dec = json.JSONDecoder()
        self._id = 0

    def call(self, method: str, *params: str) -> str:
        self._id += 1
        self._sock.sendall(json.dumps({"method": method, "params": list(params), "id": self._id}).encode())
        while True:
            text = self._buf.lstrip()
            if text:
                try:
                    msg, end = self._dec.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self._buf = text[end:]
                    if msg.get("id") != self._id:
                        continue
                    if msg.get("error") is not None:
                        raise OvsError("command_failed", f"{method}: {str(msg['error']).strip()}")
                    return str(msg.get("result") or "")
            chunk = self._sock.recv(65536)
            if not chunk:
                raise OvsError("command_failed", f"{method}: unixctl connection closed")
            self._buf += chunk.decode()

    def close(self) -> None:
        self._sock.close()


class Bridge:
    """A bridge of a running switch (see ``Ovs.add_bridge``), driven through ovs-ofctl and unixctl."""

    def __init__(self, ovs: Vswitchd, name: str) -> None:
        self.ovs = ovs
        self.name = name

    def add_flows(self, text: str, *, bundle: bool = True) -> None:
        """``ovs-ofctl add-flows`` from text; with ``bundle`` all-or-nothing in one transaction."""
        argv = ["ovs-ofctl", "-O", "OpenFlow13", *(["--bundle"] if bundle else []), "add-flows", self.name, "-"]
        try:
            run_tool(argv, stdin=text)
        except OvsError as exc:
            raise OvsError("add_flows_failed", str(exc)) from exc

    def del_flows(self) -> None:
        run_tool(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", self.name])

    def dump_flows(self) -> list[str]:
        """Flow lines without the volatile counters (duration, n_packets, n_bytes)."""
        out = run_tool(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", self.name])
        return [ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("OFPST_FLOW")]

    def dp_to_of(self) -> dict[int, int]:
        """Datapath port number -> OpenFlow port number, from ``dpif/show``."""
        out = run_tool(["ovs-appctl", "dpif/show"])
        mapping: dict[int, int] = {}
        in_bridge = False
        for line in out.splitlines():
            if re.match(r"^\s{2}\S+:$", line):
                in_bridge = line.strip() == f"{self.name}:"
                continue
            m = re.match(r"^\s{4}\S+ (\d+)/(\d+):", line)
            if in_bridge and m:
                of = int(m.group(1))
                mapping[int(m.group(2))] = OFPP_LOCAL if of == 65534 else of
        return mapping

    def trace(self, flow: str) -> TraceVerdict:
        return self.trace_many([flow])[0]

    def trace_many(self, flows: Sequence[str]) -> list[TraceVerdict]:
        ctl = self.ovs.ctl_path("ovs-vswitchd")
        if ctl is None:
            raise OvsError("trace_error", "ovs-vswitchd is not running")
        dp_map = self.dp_to_of()
        client = Unixctl(ctl)
        try:
            return [parse_trace(self._trace_text(client, flow), dp_map) for flow in flows]
        finally:
            client.close()

    def _trace_text(self, client: Unixctl, flow: str) -> str:
        try:
            return client.call("ofproto/trace", self.name, flow)
        except OvsError as exc:  # a flow OVS cannot parse: an error, never a drop
            raise OvsError("trace_error", f"{flow}: {exc.message}") from exc

    def bundle_install_seconds(self, text: str) -> float:
        """Wall time of one ``--bundle add-flows`` of ``text`` into this (emptied) bridge."""
        self.del_flows()
        start = time.perf_counter()
        self.add_flows(text, bundle=True)
        return time.perf_counter() - start
