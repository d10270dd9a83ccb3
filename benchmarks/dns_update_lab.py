"""The sandboxed half of ``benchmarks/dns_update.py``: DNS answer on the wire -> the new address's flows in OVS.

Runs as ``sandbox.run_callable("dns_update_lab:job", payload)`` (fresh net/pid/mount namespaces), on the pieces of
the enforcement latency lab (``benchmarks/latency_lab.py``): the bench PKIs and HTTPS MUD server, a userspace OVS
bridge with port 1 = namespace ``devices`` and port 2 = namespace ``peer``, and ``ryu-manager mud_ryu.app`` with
signatures required and ``dns_servers = RESOLVER``. The resolver is not a real server: its answers are raw frames
sent from the ``peer`` namespace (behind port 2) with the peer's MAC, the device's queries raw frames from
``devices``.

One device is enforced under the signed ``names``-name profile. Each round: the device's query for one name, a
short pause (the query must reach the controller first: the two frames enter on different ports), then the
resolver's answer with a new address. The app does not log a monotonic stamp for DNS updates (its ``confirmed ...
monotonic=`` lines are only for device confirmations, and a DNS update confirms no device), so the round is
measured by polling the switch (OpenFlow flow-stats requests on the bridge's management socket, back to back,
bounded: :mod:`dns_update_ofstats`) until the address's flows are there: the first one, and all ``expect_flows``
of them (what the in-process layer saw one update add); ``ovs-ofctl dump-flows`` counts them once more afterwards
as a cross-check. The app's DEBUG line
``dpid=... +N -M flows`` (logged as it hands the update to the switch) gives the answer -> flows-sent stage. A
sample of rounds is probed on the data plane: a SYN to the new address reaches the peer, one to an address never
answered does not.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dns_update_core as core
import latency_lab as lab
import latency_net as net
from dns_update_ofstats import FlowStats

from mud_ryu.lab import labctl, labpki, netns, ovs
from tests import discovery_frames as df
from tests import dns_frames as dns

RESOLVER = "10.0.0.53"
DEVICE_MAC, DEVICE_IP = net.bench_mac(0xD0, 1), "10.0.0.50"
NEVER_ANSWERED = "198.19.255.254"
QUERY_TO_ANSWER_S = 0.03
ROUND_TIMEOUT_S = 5.0
MAX_POLLS = 5000  # per round, on top of the deadline
ENFORCE_TIMEOUT_S = 60.0
_SENT = re.compile(r"^(?P<wall>[0-9]+\.[0-9]+) mud_ryu\.app dpid=\S+ \+(?P<adds>\d+) -(?P<dels>\d+) flows")

# latency_lab's stamped log format, with the app's logger at DEBUG for its per-update "+N -M flows" line.
LOG_CONFIG = lab.LOG_CONFIG.replace("keys=root\n", "keys=root,app\n", 1) + (
    "[logger_app]\nlevel=DEBUG\nhandlers=\nqualname=mud_ryu.app\npropagate=1\n"
)


def _bench_name(names: int) -> str:
    return f"dns{names}"


def _write_mud(directory: Path, names: int, signer: labpki.Issued) -> str:
    """The signed ``names``-name profile at ``https://mud.bench/dns<names>.json``; returns its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = _bench_name(names)
    url = lab.url_of(stem)
    body = json.dumps(json.loads(core.dns_mud_file(names, url, f"https://{lab.HOST}/{stem}.p7s")), indent=2).encode()
    (directory / f"{stem}.json").write_bytes(body)
    (directory / f"{stem}.p7s").write_bytes(labpki.sign_detached(body, signer))
    return url


def _controller(workdir: Path, settings: Mapping[str, Any]) -> labctl.ControllerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    conf, log_conf = workdir / "mud.conf", workdir / "logging.conf"
    conf.write_text(labctl.render_conf(settings))
    log_conf.write_text(LOG_CONFIG)
    argv = labctl.ryu_manager_argv(conf, ofp_port=lab.OFP_PORT, app=labctl.DEFAULT_APP)
    argv[-1:-1] = ["--log-config-file", str(log_conf)]
    return labctl.ControllerProcess(argv, workdir / "ryu-manager.log", port=lab.OFP_PORT)


def query_frame(name: str, txid: int) -> bytes:
    packet, ethertype = dns.ip_udp(dns.query(name, txid=txid), DEVICE_IP, RESOLVER, dns.CLIENT_PORT, 53)
    return df.ethernet(packet, ethertype, src=DEVICE_MAC, dst=lab.PEER_MAC)


def answer_frame(name: str, address: str, txid: int) -> bytes:
    body = dns.response(name, [dns.a(name, address, core.TTL_S)], txid=txid)
    packet, ethertype = dns.ip_udp(body, RESOLVER, DEVICE_IP, 53, dns.CLIENT_PORT)
    return df.ethernet(packet, ethertype, src=lab.PEER_MAC, dst=DEVICE_MAC)


def flows_with(bridge: str, address: str) -> int:
    """How many of the bridge's flows match ``address`` as IPv4 source or destination."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", bridge], capture_output=True,
                         text=True, check=True, timeout=10).stdout  # fmt: skip
    pattern = re.compile(rf"nw_(?:src|dst)={re.escape(address)}(?![0-9])")
    return sum(1 for line in out.splitlines() if pattern.search(line))


class SentTail:
    """The app's ``+N -M flows`` DEBUG lines, in order, as (wall stamp, adds, deletes)."""

    def __init__(self, path: Path) -> None:
        self._path, self._offset, self._partial = path, 0, b""
        self.lines: list[tuple[float, int, int]] = []

    def poll(self) -> None:
        with contextlib.suppress(FileNotFoundError), self._path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(8 << 20)
            self._offset += len(chunk)
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            for raw in lines:
                if m := _SENT.match(raw.decode("utf-8", "replace")):
                    self.lines.append((float(m["wall"]), int(m["adds"]), int(m["dels"])))


def _read_syns(sock: Any, seen: set[str], deadline: float, stop_at: str | None = None) -> None:
    """Add the destination of each SYN from the device arriving on ``sock`` to ``seen`` until ``deadline`` (or
    ``stop_at`` is seen), at most MAX_CAPTURED frames."""
    for _ in range(net.MAX_CAPTURED):
        left = deadline - time.monotonic()
        if left <= 0 or stop_at in seen or not select.select([sock], [], [], left)[0]:
            return
        data, addr = sock.recvfrom(65535)
        if addr[2] != net.PACKET_OUTGOING and net.syn_key(data) == (DEVICE_MAC, lab.ALLOWED_PORT):
            seen.add(socket.inet_ntoa(data[30:34]))


def _probe(dev_sock: Any, peer_pid: int, address: str) -> dict[str, Any]:
    """A SYN to an address no answer bound, then one to ``address``: which destinations reached the peer's wire."""
    sock = net.packet_socket_in(peer_pid, "eth0")
    seen: set[str] = set()
    try:
        dev_sock.send(net.tcp_syn(DEVICE_MAC, lab.PEER_MAC, DEVICE_IP, NEVER_ANSWERED, 40000, lab.ALLOWED_PORT))
        dev_sock.send(net.tcp_syn(DEVICE_MAC, lab.PEER_MAC, DEVICE_IP, address, 40001, lab.ALLOWED_PORT))
        _read_syns(sock, seen, time.monotonic() + lab.PROBE_WAIT, stop_at=address)
        _read_syns(sock, seen, time.monotonic() + 0.3)  # the unanswered SYN, sent first, has had its chance too
        return {"address": address, "allowed_arrived": address in seen, "unanswered_arrived": NEVER_ANSWERED in seen}
    finally:
        sock.close()


def _round(
    k: int, name: str, address: str, socks: tuple[Any, Any], expect: int, sent: SentTail, stats: FlowStats
) -> dict[str, Any]:
    """One query + answer; polls flow stats until the answer's ``expect`` flows are in the switch (bounded)."""
    dev_sock, peer_sock = socks
    txid = k & 0xFFFF
    sent.poll()
    before = len(sent.lines)
    dev_sock.send(query_frame(name, txid))
    time.sleep(QUERY_TO_ANSWER_S)
    t_send = time.monotonic()
    peer_sock.send(answer_frame(name, address, txid))
    first = last = None
    polls = 0
    deadline = t_send + ROUND_TIMEOUT_S
    while polls < MAX_POLLS and time.monotonic() < deadline:
        count = stats.with_address(address)
        polls += 1
        stamp = time.monotonic()
        if count and first is None:
            first = stamp
        if count >= expect:
            last = stamp
            break
    span = time.monotonic() - t_send
    sent.poll()
    update = sent.lines[before] if len(sent.lines) > before else None
    return {"k": k, "name": name, "address": address, "sent_monotonic": t_send, "first_visible": first,
            "all_visible": last, "polls": polls, "poll_span_s": span, "ofctl_count": flows_with("br0", address),
            "app_update": list(update) if update else None,
            "app_updates_in_round": len(sent.lines) - before}  # fmt: skip


def job(payload: Mapping[str, Any]) -> dict[str, Any]:
    names, rounds = int(payload["names"]), int(payload["rounds"])
    expect, probe_every = int(payload["expect_flows"]), int(payload["probe_every"])
    workdir = Path("/tmp/bench")
    workdir.mkdir(parents=True, exist_ok=True)
    pki = labpki.create(workdir / "pki", lab.HOST, datetime.now(UTC))
    url = _write_mud(workdir / "mud", names, pki.signer)
    settings = {
        "state_dir": str(workdir / "state"), "signature_policy": "required",
        "trust_anchors": [str(pki.signing_ca)], "tls_ca_bundle": str(pki.tls_ca),
        "static_hosts": [f"{lab.HOST}=127.0.0.1"], "allowed_networks": ["127.0.0.1/32"], "dns_servers": [RESOLVER],
    }  # fmt: skip
    picks = core.plan_rounds(names, rounds, 16, int(payload.get("seed", 3)))
    with contextlib.ExitStack() as stack:
        stack.enter_context(lab._mud_server(workdir, pki, workdir / "mud"))
        sw = stack.enter_context(ovs.running_ovs())
        sw.add_bridge("br0", [1, 2], kind="veth")
        hosts = stack.enter_context(netns.Hosts())
        devices = hosts.create("devices", netns.Iface("p1-h", lab.DEVICES_MAC, ()))
        peer = hosts.create("peer", netns.Iface("p2-h", lab.PEER_MAC, (f"{lab.PEER_IP}/24",)))
        for ns in (devices, peer):
            ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ctl = stack.enter_context(_controller(workdir / "ctl", settings))
        sw.vsctl("set-controller", "br0", f"tcp:127.0.0.1:{lab.OFP_PORT}")
        tail, sent = lab.LogTail(ctl.log_path), SentTail(ctl.log_path)
        dev_sock = net.packet_socket_in(devices.pid, "eth0")
        stack.callback(dev_sock.close)
        peer_sock = net.packet_socket_in(peer.pid, "eth0")
        stack.callback(peer_sock.close)
        start = time.monotonic()
        announce = net.announce_frame(DEVICE_MAC, url)
        while not tail.enforced(DEVICE_MAC) and time.monotonic() < start + ENFORCE_TIMEOUT_S:
            dev_sock.send(announce)
            tail.wait(lambda: tail.enforced(DEVICE_MAC), min(start + ENFORCE_TIMEOUT_S, time.monotonic() + 1.0))
        if not tail.enforced(DEVICE_MAC):
            raise RuntimeError(f"bench device not enforced in {ENFORCE_TIMEOUT_S}s; log errors: {tail.errors[-5:]}")
        enforce_s = time.monotonic() - start
        # warm-up: the resolver's MAC is learned and the DNS path exercised before timing starts
        stats = FlowStats(f"{sw.dirs.run}/br0.mgmt")
        stack.callback(stats.close)
        socks = (dev_sock, peer_sock)
        warm = _round(0xFFFF, core.dns_name(0), core.bench_address(0xFFFF), socks, expect, sent, stats)
        results, probes = [], []
        for k, i in enumerate(picks):
            result = _round(k + 1, core.dns_name(i), core.bench_address(k), socks, expect, sent, stats)
            results.append(result)
            if k % probe_every == 0 and result["all_visible"] is not None:
                probes.append(_probe(dev_sock, peer.pid, result["address"]))
        alive = ctl.proc.poll() is None
    return {
        "names": names, "url": url, "enforce_s": enforce_s, "warmup": warm, "rounds": results,
        "probes": probes, "monotonic_minus_wall": time.monotonic() - time.time(),
        "controller_alive": alive, "alerts": tail.alerts[-20:], "errors": tail.errors[-20:], "settings": settings,
    }  # fmt: skip
