"""The home lab: Mininet hosts on userspace OVS, real MUD clients, a DHCP server, an HTTPS MUD server.

Runs INSIDE a :mod:`mud_ryu.lab.sandbox` only (it refuses otherwise): Mininet and OVS then see a
private network, process table, ``/tmp`` and (mounted here) ``/run``, so nothing reaches the host,
and Mininet's own clean-up is never needed. Typical use from a sandboxed job::

    with HomeLab.start(Path("/tmp/lab"), controller_port=6653) as lab:
        lab.announce("bulb"); lab.wait_lease("bulb")
        lab.probe("bulb", lab.ip("internet"), "tcp", 443)   # "allowed" | "blocked" | "refused"

``controller_port=None`` runs without a controller: every switch gets one ``actions=NORMAL`` flow.
With a port, the controller must already listen on 127.0.0.1:<port> (see :mod:`mud_ryu.lab.labctl`).
Switches: ``fail-mode=secure``, OpenFlow 1.3, datapath ``netdev``. Readiness is polled (sockets,
files, flow dumps), never slept for. The ``mgmt`` host is the controller's management port: an
interface in the sandbox's root namespace, 10.0.0.254/24, through which ``https://mud.lab/``
(10.0.0.2 via a static map) is reached over the switch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController

from mud_ryu.lab import clients, labcapture, labhosts, labmud, labpki, netns, ovs, sandbox
from mud_ryu.lab.labtopo import TOPOS

VERDICTS = ("allowed", "blocked", "refused")


class LabError(RuntimeError):
    """``reason``: ``not_sandboxed``, ``not_ready``, ``command_failed``, ``bad_request``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def poll(ready: Callable[[], bool], what: str, timeout: float, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise LabError("not_ready", f"{what} not ready after {timeout}s")
        time.sleep(interval)


class _LabNet(Mininet):  # type: ignore[misc]  # Mininet has no type information
    @classmethod
    def init(cls) -> None:
        """Skip Mininet's fixLimits(): it raises host-wide sysctls (kernel.pty.max, fs.file-max) that no
        namespace contains. A dozen hosts need none of it."""


class SocketRemoteController(RemoteController):  # type: ignore[misc]
    """A remote controller whose reachability check is a plain TCP connect (Mininet's telnet probe dies
    on Ryu's binary HELLO now and then)."""

    def checkListening(self) -> None:
        from mud_ryu.lab.labctl import wait_listening

        wait_listening(int(self.port), 10.0)


def _run(argv: list[str], timeout: float = 30.0) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise LabError("command_failed", f"{' '.join(argv[:6])}: {proc.stderr.strip()[:1000]}")
    return proc.stdout


def _private_run() -> None:
    """A tmpfs over /run in the sandbox's mount namespace: lldpd's privilege-separation chroot
    (/run/lldpd) and any default pid file land there, not on the host."""
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    if not any(line.split(" ")[1:3] == ["/run", "tmpfs"] and "mud-ryu-run" in line for line in mounts):
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "mud-ryu-run", "/run"])


class HomeLab:
    """A running lab. Create with :meth:`start`; everything it started is stopped (by PID) on exit."""

    def __init__(self, workdir: Path, topo: str, net: Any, pki: labpki.LabPki, mud_dir: Path) -> None:
        self.workdir = workdir
        self.topo = topo
        self.net = net
        self.pki = pki
        self.mud_dir = mud_dir
        self.placement = dict(labhosts.placement(topo))
        self._clients: dict[str, subprocess.Popen[bytes]] = {}
        self._servers: dict[str, subprocess.Popen[bytes]] = {}
        self.timings: dict[str, float] = {}

    # --- life cycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        workdir: Path,
        *,
        controller_port: int | None = None,
        topo: str = "home",
        mud_server: bool = True,
        pki: labpki.LabPki | None = None,
    ) -> Iterator[HomeLab]:
        """``pki``: made beforehand with :func:`labpki.create` when a controller must be configured with its
        trust anchors before the lab starts (the controller has to listen before the switches come up)."""
        if not sandbox.in_sandbox():
            raise LabError("not_sandboxed", "the home lab only runs inside a mud_ryu.lab sandbox")
        if topo not in TOPOS:
            raise LabError("bad_request", f"unknown topology {topo!r}")
        t0 = time.monotonic()
        _private_run()
        now = datetime.now(UTC)
        pki = pki or labpki.create(workdir / "pki", labhosts.MUD_HOST, now)
        mud_dir = workdir / "mud"
        labmud.write_files(mud_dir, pki.signer, now)
        with contextlib.ExitStack() as stack:
            stack.enter_context(ovs.running_ovs())
            if controller_port is not None:
                from mud_ryu.lab.labctl import wait_listening

                wait_listening(controller_port, 30.0)
            controller = (
                partial(SocketRemoteController, ip="127.0.0.1", port=controller_port) if controller_port else None
            )
            switch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13", failMode="secure")
            net = _LabNet(topo=TOPOS[topo](), switch=switch, controller=controller, autoSetMacs=False,
                          waitConnected=False, build=False)  # fmt: skip
            net.build()
            stack.callback(net.stop)
            net.start()
            lab = cls(workdir, topo, net, pki, mud_dir)
            stack.callback(lab._stop_processes)
            lab._configure(controller_port is None)
            lab._start_servers(stack, mud_server)
            lab.timings["start_s"] = time.monotonic() - t0
            yield lab

    def _configure(self, normal: bool) -> None:
        for h in labhosts.hosts(self.topo):
            node = self.net.get(h.name)
            intf = f"{h.name}-eth0"
            node.cmd(f"ethtool -K {intf} tx off")  # netdev + veth: bad TCP/UDP checksums otherwise
            if not h.root_ns:
                node.cmd("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0")
                node.cmd(f"sysctl -qw net.ipv6.conf.{intf}.accept_dad=0")
            if h.ip6 and h.client is labhosts.Client.NONE:
                node.cmd(f"ip -6 addr add {h.ip6}/64 dev {intf} nodad")
        for sw in labhosts.switches(self.topo):
            if normal:
                _run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", sw, "priority=0,actions=NORMAL"])

    def _start_servers(self, stack: contextlib.ExitStack, mud_server: bool) -> None:
        dhcp = self.net.get("dhcp")
        self._servers["dnsmasq"] = dhcp.popen(clients.dnsmasq_argv("dhcp-eth0", self.workdir),
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        log = self.workdir / "dnsmasq.log"
        poll(lambda: log.exists() and "DHCP, IP range" in log.read_text(), "dnsmasq", 10.0)
        if mud_server:
            self.mud_server_up()
        inet = netns.Netns("internet", self.net.get("internet").pid)
        tcp = [("0.0.0.0", p) for p in labmud.INTERNET_TCP]
        udp = [("0.0.0.0", p) for p in labmud.INTERNET_UDP]
        stack.enter_context(netns.serving(inet, tcp, udp, lifetime=3600))
        for name in (h.name for h in labhosts.HOSTS if labmud.profile_of(h.name)):
            ns = netns.Netns(name, self.net.get(name).pid)
            stack.enter_context(netns.serving(ns, [("0.0.0.0", labmud.DEVICE_LISTEN_PORT)], [], lifetime=3600))

    def _stop_processes(self) -> None:
        for proc in [*self._clients.values(), *self._servers.values()]:
            _terminate(proc)
        self._clients.clear()
        self._servers.clear()

    # --- the MUD server -------------------------------------------------------------------------

    def mud_server_up(self) -> None:
        """Start the HTTPS MUD server in ``mudsrv`` on 443; returns once it listens."""
        if "mudserver" in self._servers:
            return
        ready = self.workdir / "mudserver.ready"
        ready.unlink(missing_ok=True)
        pki = self.pki
        argv = [sys.executable, "-m", "mud_ryu.lab.mudserver", "--root", str(self.mud_dir),
                "--cert", str(pki.server_cert), "--key", str(pki.server_key), "--ready", str(ready)]  # fmt: skip
        with (self.workdir / "mudserver.log").open("ab") as log:
            self._servers["mudserver"] = self.net.get("mudsrv").popen(argv, stdout=log, stderr=log)
        poll(ready.exists, "MUD server", 15.0)

    def mud_server_down(self) -> None:
        proc = self._servers.pop("mudserver", None)
        if proc is not None:
            _terminate(proc)

    # --- hosts ------------------------------------------------------------------------------------

    def host(self, name: str) -> Any:
        """The Mininet host object (``cmd``, ``popen``, ``pid``, ...)."""
        labhosts.host(name)
        return self.net.get(name)

    def mac(self, name: str) -> str:
        return labhosts.host(name).mac

    def ip(self, name: str) -> str:
        return labhosts.host(name).ip

    def ifname(self, name: str) -> str:
        return f"{labhosts.host(name).name}-eth0"

    def switch_port(self, name: str) -> tuple[str, int]:
        return self.placement[name]

    def switch_ifname(self, name: str) -> str:
        sw, port = self.placement[name]
        return f"{sw}-eth{port}"

    def capture(self, name: str) -> labcapture.PortCapture:
        """Frames ``name`` sends toward its switch (open it before :meth:`announce`)."""
        return labcapture.PortCapture(self.switch_ifname(name))

    # --- clients ----------------------------------------------------------------------------------

    def announce(self, name: str, url: str | None = None) -> int:
        """Start ``name``'s real client (which announces its MUD URL, if it has one); returns its PID once
        the process runs. A client already running is stopped first (a re-announcement). ``url`` replaces the
        host's own MUD URL (a firmware update, or a device turned hostile)."""
        h = labhosts.host(name) if url is None else dataclasses.replace(labhosts.host(name), mud_url=url)
        if h.client is labhosts.Client.NONE:
            raise LabError("bad_request", f"{name} runs no client")
        self.stop_client(name)
        files = clients.ClientFiles.for_host(self.workdir, name)
        files.dir.mkdir(parents=True, exist_ok=True)
        files.lease.write_text("")
        script, config = clients.script_for(h, files), clients.config_for(h)
        if script is not None:
            files.script.write_text(script)
            files.script.chmod(0o755)
        if config is not None:
            files.config.write_text(config)
        files.socket.unlink(missing_ok=True)
        if h.client is labhosts.Client.DHCLIENT6:
            self._wait_link_local(name)
        with files.log.open("ab") as log:
            proc = self.net.get(name).popen(clients.client_argv(h, files, self.ifname(name)), stdout=log, stderr=log)
        self._clients[name] = proc
        poll(lambda: Path(f"/proc/{proc.pid}").exists(), f"{name} client", 5.0)
        if proc.poll() is not None:
            raise LabError("command_failed", f"{name} client exited at once ({proc.returncode}); see {files.log}")
        return int(proc.pid)

    def _wait_link_local(self, name: str) -> None:
        """dhclient -6 binds to the link-local address and exits if it is still tentative (DAD)."""
        node, cmd = self.net.get(name), f"ip -6 -o addr show dev {self.ifname(name)} scope link"

        def ready() -> bool:
            out = node.cmd(cmd)
            return "fe80" in out and "tentative" not in out

        poll(ready, f"{name} IPv6 link-local address", 10.0, 0.05)

    def lease(self, name: str) -> str:
        """The address the client's script recorded ("" when none)."""
        path = clients.ClientFiles.for_host(self.workdir, name).lease
        return path.read_text().strip() if path.exists() else ""

    def wait_lease(self, name: str, timeout: float = 15.0) -> str:
        poll(lambda: bool(self.lease(name)), f"{name} lease", timeout)
        return self.lease(name)

    def release(self, name: str) -> None:
        """A DHCP release by the running client (udhcpc: SIGUSR2; dhclient: ``dhclient -r``)."""
        h = labhosts.host(name)
        proc = self._clients.get(name)
        files = clients.ClientFiles.for_host(self.workdir, name)
        if h.client is labhosts.Client.UDHCPC and proc is not None:
            proc.send_signal(signal.SIGUSR2)
            poll(lambda: not self.lease(name), f"{name} release", 10.0)
            return
        argv = clients.release_argv(h, files, self.ifname(name))
        if argv is None:
            raise LabError("bad_request", f"{name} has no lease to release")
        out = self.net.get(name).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out.communicate(timeout=15)
        if proc is not None:
            _terminate(proc)
            self._clients.pop(name, None)

    def stop_client(self, name: str) -> None:
        proc = self._clients.pop(name, None)
        if proc is not None:
            _terminate(proc)

    # --- traffic ----------------------------------------------------------------------------------

    def probe(self, src: str, dst_ip: str, proto: str, port: int = 0) -> str:
        """One probe from ``src``: ``allowed`` | ``blocked`` | ``refused`` (see :mod:`mud_ryu.lab.netns`)."""
        return self.probe_many([(src, dst_ip, proto, port)])[0]

    def probe_many(self, probes: list[tuple[str, str, str, int]] | list[tuple[str, str, str, int, int]]) -> list[str]:
        """Probes run concurrently per source host; verdicts in input order. ``error`` raises. A fifth element
        is the source port (e.g. 443, to try to pass as the answer of a device-initiated connection)."""
        by_src: dict[str, list[dict[str, Any]]] = {}
        for i, probe in enumerate(probes):
            src, dst, proto, port = str(probe[0]), str(probe[1]), str(probe[2]), int(probe[3])
            rest = probe[4:]
            if proto not in ("tcp", "udp", "ping"):
                raise LabError("bad_request", f"protocol {proto!r}")
            spec: dict[str, Any] = {"id": str(i), "kind": proto, "dst": dst, "port": port}
            if rest:
                spec["sport"] = rest[0]
            by_src.setdefault(src, []).append(spec)
        verdicts: dict[str, str] = {}
        for src, batch in by_src.items():
            for r in netns.probe(netns.Netns(src, self.net.get(src).pid), batch):
                if r["observed"] not in VERDICTS:
                    raise LabError("command_failed", f"probe from {src}: {r}")
                verdicts[r["id"]] = r["observed"]
        return [verdicts[str(i)] for i in range(len(probes))]

    def dump_flows(self, switch: str, *, stats: bool = False) -> list[str]:
        argv = ["ovs-ofctl", "-O", "OpenFlow13", *([] if stats else ["--no-stats"]), "dump-flows", switch]
        return [ln.strip() for ln in _run(argv).splitlines() if ln.strip() and not ln.startswith("OFPST_FLOW")]

    def wait_flows(self, switch: str, minimum: int = 1, timeout: float = 15.0) -> list[str]:
        """Poll until ``switch`` holds at least ``minimum`` flows (e.g. the controller's bootstrap)."""
        poll(lambda: len(self.dump_flows(switch)) >= minimum, f"{minimum} flows on {switch}", timeout, 0.05)
        return self.dump_flows(switch)

    # --- topology changes ---------------------------------------------------------------------------

    def port_down(self, name: str) -> None:
        """Unplug: the switch side of ``name``'s link goes down (OVS reports a port status)."""
        _run(["ip", "link", "set", self.switch_ifname(name), "down"])

    def port_up(self, name: str) -> None:
        _run(["ip", "link", "set", self.switch_ifname(name), "up"])

    def move(self, name: str, to_switch: str, port: int | None = None, *, reannounce: bool = True) -> tuple[str, int]:
        """Re-plug ``name`` into ``to_switch`` (its home port number unless ``port``), keep its MAC and
        static address, and re-announce if its client was running (``reannounce=False``: the caller
        does it, e.g. after opening a capture on the new port). Returns the new (switch, port)."""
        from mud_ryu.lab.labmove import replug

        new = (to_switch, port if port is not None else labhosts.host(name).home_port)
        if new[0] not in labhosts.switches(self.topo):
            raise LabError("bad_request", f"no switch {new[0]!r} in {self.topo}")
        was_running = name in self._clients
        self.stop_client(name)
        replug(self, name, new)
        self.placement[name] = new
        if reannounce and was_running:
            self.announce(name)
        return new


def _terminate(proc: subprocess.Popen[bytes], wait: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=wait)
