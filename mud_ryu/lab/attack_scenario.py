"""A host or device on the LAN tries to get around the policy: crafted frames on real Open vSwitch (sandbox job for
the e2e tests and ``make demo``; README "What a device on the LAN cannot do").

The home lab runs with its port roles (the DHCP/DNS/NTP server, the MUD server and the internet host on server
ports). bulb and bulb2 are enforced, cam runs a profile with a DNS name, broken is quarantined. The attackers --
the unmanaged laptop, bulb, bulb2, cam, broken -- send frames forged with scapy from their own interfaces; catchers
on the targets' own interfaces record which frames arrived. Every attack has a control: the same kind of frame from
where it may come from, which the same catcher must see (so "blocked" is the policy, not a dead path).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mud_ryu.lab import dns_scenario, framebuild, labctl, labhosts, labmud, labpki
from mud_ryu.lab.framecatch import marker
from mud_ryu.lab.homelab import HomeLab, LabError, poll
from mud_ryu.lab.scenarios import OFP_PORT, _alerted, _confirmed, _log, _ready_for_devices, _wait

REST_PORT = 18091
BLOCKED, DELIVERED = "blocked", "delivered"
NEW_MAC = "02:00:00:00:99:01"
LATE_MAC, LATE_PORT = "02:00:00:00:00:30", 30
FORGED_ADDRESS = "10.0.0.13"
CATCHERS = ("bulb", "internet", "dhcp", "broken")
BULB_LL = "fe80::15:1"  # a link-local address bulb advertises (bound first come by the source guard)
LEASED6 = "fd00:10::50"  # the DHCP server's Reply leases it to bulb before bulb ever uses it
FREE6 = "fd00:10::52"  # no one's: bulb2 may claim it, first come
ROUTER = "10.0.0.254"  # a static gateway a DHCP server names in its ACKs (option 3)
FREE4 = "10.0.0.250"  # no one's: bulb may claim it, first come
EXTRA_LEASE = ("02:00:00:00:00:16", "10.0.0.78")  # the ACK naming ROUTER leases bulb2 (on s2) a second address
# Flows each phase's frames make the controller install: the next phase is sent once they are in (phase 0: the
# leases were read; phase 1: bulb2's DAD probe bound the free address -- a neighbour advertisement never claims one).
PHASE_FLOWS = {0: (f"ipv6_src={LEASED6}", f"nw_src={EXTRA_LEASE[1]}"), 1: (f"nd_target={FREE6}",)}
LAST_PHASE = 2


@dataclass(frozen=True, slots=True)
class Attack:
    id: str
    what: str  # one line for the demo table
    sender: str  # lab host whose interface sends the frame
    target: str  # lab host whose catcher must (not) see it
    expected: str
    frame: bytes
    phase: int = LAST_PHASE  # earlier phases are sent (their arrival and PHASE_FLOWS awaited) first: what later rely on


def _frames(now_id: str) -> list[Attack]:
    """The attacks of issue 11 and their controls, as frames (built here, sent from the hosts' namespaces)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dhcp6 import (
        DHCP6_RelayForward,
        DHCP6_Reply,
        DHCP6_Solicit,
        DHCP6OptIA_NA,
        DHCP6OptIAAddress,
        DHCP6OptRelayMsg,
    )
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.packet import Raw

    h = labhosts.host
    laptop, bulb, bulb2, inet, dhcp = h("laptop"), h("bulb"), h("bulb2"), h("internet"), h("dhcp")
    broken = h("broken")
    bcast = "ff:ff:ff:ff:ff:ff"

    def m(attack_id: str) -> Any:
        return Raw(load=marker(f"{now_id}-{attack_id}"))

    def a(attack_id: str, what: str, sender: str, target: str, expected: str, pkt: Any, phase: int = LAST_PHASE
          ) -> Attack:  # fmt: skip
        return Attack(attack_id, what, sender, target, expected, bytes(pkt / m(attack_id)), phase)

    fe80 = "fe80::1a"  # the laptop's forged link-local source
    relay = DHCP6_RelayForward(linkaddr="::", peeraddr=fe80) / DHCP6OptRelayMsg(message=DHCP6_Solicit())
    reply = DHCP6_Reply(trid=1) / DHCP6OptIA_NA(iaid=1, ianaopts=[DHCP6OptIAAddress(addr=LEASED6, validlft=3600)])
    chaddr = bytes.fromhex(EXTRA_LEASE[0].replace(":", ""))
    ack = BOOTP(op=2, yiaddr=EXTRA_LEASE[1], chaddr=chaddr) / DHCP(options=[
        ("message-type", "ack"), ("lease_time", 3600), ("router", ROUTER), "end"])

    def na(sender: Any, address: str) -> Any:
        return (Ether(src=sender.mac, dst="33:33:00:00:00:01") / IPv6(src=address, dst="ff02::1")
                / ICMPv6ND_NA(tgt=address, R=0, S=0, O=1))

    def dad(sender: Any, address: str) -> Any:
        low = ipaddress.IPv6Address(address).packed[-3:]  # to its solicited-node group (RFC 4291 s2.7.1)
        group = ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 8 + b"\0\x01\xff" + low)
        mac = "33:33:ff:" + ":".join(f"{b:02x}" for b in low)
        return Ether(src=sender.mac, dst=mac) / IPv6(src="::", dst=str(group)) / ICMPv6ND_NS(tgt=address)

    def arp_claim(sender: Any, address: str) -> Any:
        return Ether(src=sender.mac, dst=bcast) / ARP(op=2, hwsrc=sender.mac, psrc=address, pdst=inet.ip)

    return [
        # 1. broadcast / multicast framing of unicast IP traffic to a device
        a("bcast-ip", "broadcast frame, IP destination bulb, UDP 9999", "laptop", "bulb", BLOCKED,
          Ether(src=laptop.mac, dst=bcast) / IP(src=laptop.ip, dst=bulb.ip) / UDP(sport=40000, dport=9999)),
        a("mcast-ip", "multicast frame (01:00:5e), IP destination bulb", "laptop", "bulb", BLOCKED,
          Ether(src=laptop.mac, dst="01:00:5e:00:00:01") / IP(src=laptop.ip, dst=bulb.ip) / UDP(dport=9999)),
        a("bcast-arp", "control: broadcast ARP who-has bulb", "laptop", "bulb", DELIVERED,
          Ether(src=laptop.mac, dst=bcast) / ARP(hwsrc=laptop.mac, psrc=laptop.ip, pdst=bulb.ip)),
        # 2. spoofed server addresses
        a("spoof-ntp", "laptop claims the NTP server's address, UDP 123 -> bulb:9999", "laptop", "bulb", BLOCKED,
          Ether(src=laptop.mac, dst=bulb.mac) / IP(src=dhcp.ip, dst=bulb.ip) / UDP(sport=123, dport=9999)),
        a("real-ntp", "control: the NTP server itself, UDP 123 -> bulb:9999", "dhcp", "bulb", DELIVERED,
          Ether(src=dhcp.mac, dst=bulb.mac) / IP(src=dhcp.ip, dst=bulb.ip) / UDP(sport=123, dport=9999)),
        a("arp-server-claim", "laptop claims the DNS/NTP server's address in ARP", "laptop", "bulb", BLOCKED,
          Ether(src=laptop.mac, dst=bcast) / ARP(op=2, hwsrc=laptop.mac, psrc=dhcp.ip, pdst=bulb.ip)),
        # 2b. a managed device sources only its own addresses (IP source guard), also in ARP and ND
        a("own-na", "control: bulb's neighbour advertisement for its own address", "bulb", "internet", DELIVERED,
          Ether(src=bulb.mac, dst="33:33:00:00:00:01") / IPv6(src=BULB_LL, dst="ff02::1")
          / ICMPv6ND_NA(tgt=BULB_LL, R=0, S=0, O=1)),
        a("na-poison", "bulb advertises the DHCP server's IPv6 address as its own", "bulb", "internet", BLOCKED,
          Ether(src=bulb.mac, dst="33:33:00:00:00:01") / IPv6(src=BULB_LL, dst="ff02::1")
          / ICMPv6ND_NA(tgt="fe80::1", R=0, S=0, O=1)),
        a("arp-other-sha", "bulb's ARP naming the DHCP server's MAC as sender", "bulb", "internet", BLOCKED,
          Ether(src=bulb.mac, dst=bcast) / ARP(op=2, hwsrc=dhcp.mac, psrc=bulb.ip, pdst=inet.ip)),
        a("own-arp", "control: bulb's ARP with its own MAC and address", "bulb", "internet", DELIVERED,
          Ether(src=bulb.mac, dst=bcast) / ARP(op=2, hwsrc=bulb.mac, psrc=bulb.ip, pdst=inet.ip)),
        a("own-address", "control: bulb2 from its own address, TCP 443 to internet", "bulb2", "internet",
          DELIVERED, Ether(src=bulb2.mac, dst=inet.mac) / IP(src=bulb2.ip, dst=inet.ip)
          / TCP(sport=40002, dport=443, flags="S"), phase=0),
        a("stolen-address", "bulb sends from bulb2's address, TCP 443 to internet", "bulb", "internet", BLOCKED,
          Ether(src=bulb.mac, dst=inet.mac) / IP(src=bulb2.ip, dst=inet.ip) / TCP(sport=40003, dport=443, flags="S")),
        # 2c. DHCP snooping: what a server leased (DHCPv6 too) or named as a router is no one else's to claim
        a("reply6", "control: the DHCPv6 server's Reply leasing bulb an address", "dhcp", "bulb", DELIVERED,
          Ether(src=dhcp.mac, dst=bulb.mac) / IPv6(src="fe80::1", dst=BULB_LL) / UDP(sport=547, dport=546) / reply,
          phase=0),
        a("ack-router", "control: the DHCP server's ACK naming a router", "dhcp", "bulb", DELIVERED,
          Ether(src=dhcp.mac, dst=bcast) / IP(src=dhcp.ip, dst="255.255.255.255") / UDP(sport=67, dport=68) / ack,
          phase=0),
        a("dad-lease6", "control: bulb2's DAD probe for the address leased to bulb goes on", "bulb2", "internet",
          DELIVERED, dad(bulb2, LEASED6), phase=1),
        a("dad-free6", "control: bulb2's DAD probe for a free IPv6 address", "bulb2", "internet", DELIVERED,
          dad(bulb2, FREE6), phase=1),
        a("lease6-claim", "bulb2 advertises (ND) the address DHCPv6 leased to bulb", "bulb2", "internet", BLOCKED,
          na(bulb2, LEASED6)),
        a("free6-claim", "control: bulb2 advertises the free address its DAD bound", "bulb2", "internet",
          DELIVERED, na(bulb2, FREE6)),
        a("router-claim", "bulb claims (ARP) the router the DHCP server named", "bulb", "internet", BLOCKED,
          arp_claim(bulb, ROUTER)),
        a("free4-claim", "control: bulb claims (ARP) a free IPv4 address, first come", "bulb", "internet",
          DELIVERED, arp_claim(bulb, FREE4)),
        # 4. rogue DHCP / RA, and quarantine
        a("rogue-offer", "laptop sends bulb a DHCP offer", "laptop", "bulb", BLOCKED,
          Ether(src=laptop.mac, dst=bulb.mac) / IP(src=laptop.ip, dst=bulb.ip) / UDP(sport=67, dport=68)
          / BOOTP(op=2, yiaddr=bulb.ip)),
        a("real-offer", "control: the DHCP server's offer", "dhcp", "bulb", DELIVERED,
          Ether(src=dhcp.mac, dst=bulb.mac) / IP(src=dhcp.ip, dst=bulb.ip) / UDP(sport=67, dport=68)
          / BOOTP(op=2, yiaddr=bulb.ip)),
        a("rogue-ra", "laptop sends a router advertisement", "laptop", "bulb", BLOCKED,
          Ether(src=laptop.mac, dst="33:33:00:00:00:01") / IPv6(src=fe80, dst="ff02::1") / ICMPv6ND_RA()),
        a("real-ra", "control: a router advertisement from the server port", "dhcp", "bulb", DELIVERED,
          Ether(src=dhcp.mac, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_RA()),
        a("quarantine-out", "quarantined broken: UDP 68 -> internet:67", "broken", "internet", BLOCKED,
          Ether(src=broken.mac, dst=inet.mac) / IP(src=broken.ip, dst=inet.ip) / UDP(sport=68, dport=67)),
        a("quarantine-in", "internet: UDP 67 -> quarantined broken:68", "internet", "broken", BLOCKED,
          Ether(src=inet.mac, dst=broken.mac) / IP(src=inet.ip, dst=broken.ip) / UDP(sport=67, dport=68)),
        a("quarantine-dhcp", "control: broken's DHCP broadcast reaches the server", "broken", "dhcp", DELIVERED,
          Ether(src=broken.mac, dst=bcast) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
          / BOOTP(op=1, chaddr=bytes.fromhex(broken.mac.replace(":", ""))) ),
        # 5. a new source MAC on a device's port
        a("new-mac", "bulb sends from a fresh MAC to internet:9999", "bulb", "internet", BLOCKED,
          Ether(src=NEW_MAC, dst=inet.mac) / IP(src=bulb.ip, dst=inet.ip) / UDP(sport=40000, dport=9999)),
        a("own-mac", "control: bulb's own MAC, TCP 443 to internet (its policy)", "bulb", "internet", DELIVERED,
          Ether(src=bulb.mac, dst=inet.mac) / IP(src=bulb.ip, dst=inet.ip) / TCP(sport=40001, dport=443, flags="S")),
        # 8. relayed DHCPv6 from an access port
        a("relay-forward", "laptop sends a DHCPv6 Relay-Forward", "laptop", "dhcp", BLOCKED,
          Ether(src=laptop.mac, dst="33:33:00:01:00:02") / IPv6(src=fe80, dst="ff02::1:2")
          / UDP(sport=547, dport=547) / relay),
        a("solicit", "control: the laptop's DHCPv6 Solicit", "laptop", "dhcp", DELIVERED,
          Ether(src=laptop.mac, dst="33:33:00:01:00:02") / IPv6(src=fe80, dst="ff02::1:2")
          / UDP(sport=546, dport=547) / DHCP6_Solicit()),
    ]  # fmt: skip


def _forged_dns(cam_ip: str, cam_mac: str, sender_mac: str, resolver: str, txid: int, sport: int) -> bytes:
    """An A answer for the cam profile's DNS name pointing at FORGED_ADDRESS, "from" the resolver."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    answer = DNS(id=txid, qr=1, aa=1, rd=1, ra=1, qd=DNSQR(qname=dns_scenario.NAME),
                 an=DNSRR(rrname=dns_scenario.NAME, type="A", ttl=300, rdata=FORGED_ADDRESS))  # fmt: skip
    return bytes(Ether(src=sender_mac, dst=cam_mac) / IP(src=resolver, dst=cam_ip) / UDP(sport=53, dport=sport)
                 / answer)  # fmt: skip


def _dns_query(cam_ip: str, cam_mac: str, resolver_mac: str, resolver: str, txid: int, sport: int) -> bytes:
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src=cam_mac, dst=resolver_mac) / IP(src=cam_ip, dst=resolver) / UDP(sport=sport, dport=53)
                 / DNS(id=txid, rd=1, qd=DNSQR(qname=dns_scenario.NAME)))  # fmt: skip


class _Catchers:
    """One catcher per target host, started before the attacks, stopped after."""

    def __init__(self, lab: HomeLab, workdir: Path) -> None:
        self.lab, self.dir = lab, workdir / "catch"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, hosts: tuple[str, ...]) -> None:
        for name in hosts:
            ready = self.dir / f"{name}.ready"
            ready.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "mud_ryu.lab.framecatch", "catch", "--iface", self.lab.ifname(name),
                    "--out", str(self.dir / f"{name}.json"), "--ready", str(ready), "--seconds", "240"]  # fmt: skip
            self.procs[name] = self.lab.host(name).popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name in hosts:
            poll((self.dir / f"{name}.ready").exists, f"catcher on {name}", 10.0)

    def seen(self, host: str, key: str) -> bool:
        path = self.dir / f"{host}.json"
        try:
            return key in json.loads(path.read_text())
        except (OSError, ValueError):
            return False

    def stop(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, proc in self.procs.items():
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            path = self.dir / f"{name}.json"
            out[name] = json.loads(path.read_text()) if path.exists() else {}
        self.procs = {}
        return out


def _send(lab: HomeLab, sender: str, frames: list[bytes], repeat: int = 3) -> None:
    """The frames, ``repeat`` rounds back to back, from ``sender``'s interface: the first and the later frames of a
    new source take different paths (learning copy or held, then the learned or bound flow); all must give the same
    verdict."""
    _send_argv(lab.host(sender).popen, lab.ifname(sender), [f for _ in range(repeat) for f in frames])


def _send_argv(popen: Any, iface: str, frames: list[bytes], prefix: tuple[str, ...] = ()) -> None:
    """``framecatch send`` run through ``popen`` (a lab host's, or ``subprocess.Popen`` with an ``ip netns exec``
    ``prefix``)."""
    argv = [*prefix, sys.executable, "-m", "mud_ryu.lab.framecatch", "send", "--iface", iface]
    proc = popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(json.dumps([f.hex() for f in frames]).encode(), timeout=20)
    if proc.returncode:
        raise RuntimeError(f"sending from {iface} failed: {err.decode(errors='replace')[-500:]}")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


def _hot_added_port(lab: HomeLab, ctl: labctl.ControllerProcess) -> dict[str, Any]:
    """A port added to s1 after the switch connected: its meter and punts arrive (meter first), and a device on it
    is discovered. Before, the punts went out before the meter, OVS refused them and the device stayed unmanaged."""
    _run("ip", "netns", "add", "late")
    _run("ip", "link", "add", "late-h", "type", "veth", "peer", "name", f"s1-eth{LATE_PORT}")
    _run("ip", "link", "set", "late-h", "netns", "late")
    _run("ip", "netns", "exec", "late", "ip", "link", "set", "late-h", "address", LATE_MAC)
    _run("ip", "netns", "exec", "late", "ip", "link", "set", "late-h", "up")
    _run("ip", "link", "set", f"s1-eth{LATE_PORT}", "up")
    added = _run("ovs-vsctl", "add-port", "s1", f"s1-eth{LATE_PORT}", "--", "set", "interface",
                f"s1-eth{LATE_PORT}", f"ofport_request={LATE_PORT}")  # fmt: skip
    if added.returncode:
        raise RuntimeError(f"ovs-vsctl add-port: {added.stderr}")

    def punts() -> list[str]:
        return [f for f in lab.dump_flows("s1") if "priority=50000" in f and f"in_port={LATE_PORT}" in f]

    _wait(lambda: len(punts()) == 3, "punts on the hot-added port", 20.0, ctl=ctl)
    meters = _run("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", "s1").stdout
    frame = framebuild.dhcp_discover(LATE_MAC, labhosts.mud_url("bulb"))
    _send_argv(subprocess.Popen, "late-h", [frame], prefix=("ip", "netns", "exec", "late"))
    _wait(lambda: _confirmed(ctl, LATE_MAC, "enforced"), "device on the hot-added port enforced", ctl=ctl)
    return {
        "punts": punts(),
        "meter_present": f"meter={16 + LATE_PORT} " in meters,
        "enforced": True,
        "switch_errors": [ln for ln in _log(ctl).splitlines() if "error type=" in ln][-5:],
    }


def _takeover(lab: HomeLab, ctl: labctl.ControllerProcess) -> dict[str, Any]:
    """bulb2 releases its lease (its port stays up); the laptop then announces bulb2's MAC from its own port."""
    bulb2 = labhosts.host("bulb2")
    lab.release("bulb2")
    _wait(lambda: _confirmed(ctl, bulb2.mac, "absent"), "bulb2 released", ctl=ctl)
    frame = framebuild.dhcp_discover(bulb2.mac, labhosts.mud_url("bulb"))
    _send(lab, "laptop", [frame], repeat=1)
    _wait(lambda: _alerted(ctl, "spoofed-announcement", bulb2.mac), "takeover refused as a spoof", ctl=ctl)
    device = labctl.rest(REST_PORT, f"/devices/{bulb2.mac}", "")
    return {"alerted": True, "port_after": device.get("port"), "home_port": bulb2.home_port}


def lan_attacks(payload: Any) -> dict[str, Any]:
    del payload
    workdir = Path("/tmp/mud-attacks")
    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    pki = labpki.create(workdir / "pki", labhosts.MUD_HOST, now)
    settings = labctl.lab_settings(trust_anchor=pki.signing_ca, tls_ca=pki.tls_ca, state_dir=workdir / "state")
    ctl = labctl.start_controller(workdir / "ctl", settings, ofp_port=OFP_PORT, wsapi_port=REST_PORT)
    out: dict[str, Any] = {}
    try:
        with HomeLab.start(workdir, controller_port=OFP_PORT, pki=pki) as lab:
            labmud.write_signed(lab.mud_dir, "cloudy", dns_scenario.cloudy_file(now), pki.signer)
            _ready_for_devices(lab, ctl, ("s1",))
            for name in ("bulb", "bulb2", "broken", "laptop"):
                lab.announce(name)
            lab.announce("cam", dns_scenario.URL)
            for name in ("bulb", "bulb2", "cam"):
                mac = labhosts.host(name).mac
                _wait(lambda mac=mac: _confirmed(ctl, mac, "enforced"), f"{name} enforced", ctl=ctl)  # type: ignore[misc]
            broken = labhosts.host("broken")
            _wait(lambda: _alerted(ctl, "quarantined", broken.mac), "broken quarantined", ctl=ctl)
            for name in ("bulb", "bulb2", "cam", "broken"):
                lab.wait_lease(name)
            _bind_link_local(lab, ctl)
            out["attacks"] = _run_attacks(lab, workdir)
            out["dns"] = _forged_dns_answer(lab, ctl)
            out["new_mac_alerted"] = _alerted(ctl, "new-mac-on-device-port", NEW_MAC)
            out["hot_added_port"] = _hot_added_port(lab, ctl)
            out["takeover"] = _takeover(lab, ctl)
    finally:
        ctl.stop()
        out["controller_log_tail"] = _log(ctl)[-3000:] if ctl.log_path.exists() else ""
    return out


def _bind_link_local(lab: HomeLab, ctl: labctl.ControllerProcess) -> None:
    """bulb probes BULB_LL for duplicates (DAD), as a stack does before it uses an address: the source guard binds it
    (its neighbour advertisements for it then pass)."""
    from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import Ether

    bulb = labhosts.host("bulb")
    dad = Ether(src=bulb.mac, dst="33:33:ff:15:00:01") / IPv6(src="::", dst="ff02::1:ff15:1") / ICMPv6ND_NS(tgt=BULB_LL)
    _send(lab, "bulb", [bytes(dad)], repeat=1)
    _wait(lambda: any(f"nd_target={BULB_LL}" in f for f in lab.dump_flows("s1")), "bulb's DAD bound", 10.0, ctl=ctl)


def _run_attacks(lab: HomeLab, workdir: Path) -> list[dict[str, str]]:
    run_id = f"r{int(time.time()) % 100000}"
    attacks = _frames(run_id)
    catchers = _Catchers(lab, workdir)
    catchers.start(CATCHERS)
    try:
        for phase in range(LAST_PHASE):
            for a in (a for a in attacks if a.phase == phase):
                _send(lab, a.sender, [a.frame])
            with contextlib.suppress(LabError):  # a missing one shows as its own failure below
                poll(lambda phase=phase: all(catchers.seen(a.target, f"{run_id}-{a.id}") for a in attacks  # type: ignore[misc]
                                             if a.phase == phase and a.expected == DELIVERED), f"phase {phase}", 10.0)
                poll(lambda phase=phase: all(any(b in f for sw in ("s1", "s2") for f in lab.dump_flows(sw))  # type: ignore[misc]
                                             for b in PHASE_FLOWS[phase]), f"phase {phase} flows", 10.0)
        rest = [a for a in attacks if a.phase == LAST_PHASE]
        for sender in sorted({a.sender for a in rest}):
            _send(lab, sender, [a.frame for a in rest if a.sender == sender])
        controls = [a for a in attacks if a.expected == DELIVERED]
        # Each sender sent its attacks and controls in one go: once every control has arrived, what did not arrive
        # was stopped (bounded: a missing control shows as its own failure).
        with contextlib.suppress(LabError):  # the table below reports which control did not arrive
            poll(lambda: all(catchers.seen(a.target, f"{run_id}-{a.id}") for a in controls), "controls", 10.0)
    finally:
        caught = catchers.stop()
    rows = []
    for attack in attacks:
        seen = caught.get(attack.target, {}).get(f"{run_id}-{attack.id}", 0)
        rows.append({"id": attack.id, "what": attack.what, "from": attack.sender, "to": attack.target,
                     "expected": attack.expected, "observed": DELIVERED if seen else BLOCKED})  # fmt: skip
    return rows


def _forged_dns_answer(lab: HomeLab, ctl: labctl.ControllerProcess) -> dict[str, Any]:
    """cam asks the resolver for its profile's name; then the resolver's answer is forged to it, once by cam itself
    from its own port (the IP source guard holds it: the resolver's address is not cam's) and once by the laptop
    (a held DNS answer that did not come in on a trusted port: ``wrong-port``). Control: the same answer from the
    resolver's port binds."""
    cam, dhcp, laptop = labhosts.host("cam"), labhosts.host("dhcp"), labhosts.host("laptop")
    txid, sport = 0x4D55, 40053
    _send(lab, "cam", [_dns_query(cam.ip, cam.mac, dhcp.mac, dhcp.ip, txid, sport)], repeat=1)

    def view() -> dict[str, Any]:
        return labctl.rest(REST_PORT, "/dns", "")

    def bound() -> bool:
        return FORGED_ADDRESS in json.dumps(view().get("names", []))

    _send(lab, "cam", [_forged_dns(cam.ip, cam.mac, cam.mac, dhcp.ip, txid, sport)], repeat=1)
    _wait(lambda: _alerted(ctl, "address-refused", cam.mac), "cam's forgery held by the source guard", 10.0, ctl=ctl)
    by_device = bound()
    _send(lab, "laptop", [_forged_dns(cam.ip, cam.mac, laptop.mac, dhcp.ip, txid, sport)], repeat=1)
    _wait(lambda: view().get("counters", {}).get("wrong-port", 0) >= 1, "forged answer counted", 10.0, ctl=ctl)
    by_host = bound()
    _send(lab, "dhcp", [_forged_dns(cam.ip, cam.mac, dhcp.mac, dhcp.ip, txid, sport)], repeat=1)
    _wait(bound, "the resolver's answer bound", 10.0, ctl=ctl)
    return {"wrong_port": view()["counters"]["wrong-port"], "forged_bound": by_device or by_host,
            "control_bound": True}  # fmt: skip
