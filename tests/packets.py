"""A packet header value type for the flow-table simulator and ``ofproto/trace``, plus generators.

A :class:`Packet` is what a switch sees of a frame: the ingress port and the header fields an
OpenFlow 1.3 match can read. It renders itself two ways from the same values, so the simulator
and Open vSwitch are always asked about the same packet:

* :meth:`Packet.oxm_fields` -- OXM field name -> int, holding only the fields whose
  prerequisites the packet meets (a UDP packet has no ``tcp_dst``);
* :meth:`Packet.ovs_flow` -- the flow string ``ovs-appctl ofproto/trace`` parses.

The generators build candidate packets from a MUD file's own ACEs (their ports, protocols and
literal networks, plus near misses on either side of every boundary) and random ones, so a
cross-check exercises both what the policy allows and what it must drop.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mud_ryu.mudfile.model import MudFile, PortMatch

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
OFPVID_PRESENT = 0x1000

# TCP flag bits as OpenFlow's tcp_flags field counts them.
FIN, SYN, RST, PSH, ACK = 0x001, 0x002, 0x004, 0x008, 0x010
SYN_ACK = SYN | ACK


def mac_to_int(mac: str) -> int:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"bad MAC {mac!r}")
    return int("".join(parts), 16)


def int_to_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True, slots=True)
class Packet:
    """Header fields of one frame. ``src_port``/``dst_port`` are the L4 ports of TCP or UDP
    (whichever ``ip_proto`` says); ``icmp_type``/``icmp_code`` are ICMPv4 or ICMPv6 by
    ``eth_type``; ``vlan`` is the VLAN id or ``None`` for an untagged frame."""

    in_port: int
    eth_src: str
    eth_dst: str
    eth_type: int
    vlan: int | None = None
    ip_src: str | None = None
    ip_dst: str | None = None
    ip_proto: int | None = None
    ip_dscp: int = 0
    ip_ecn: int = 0
    ipv6_flabel: int = 0
    src_port: int | None = None
    dst_port: int | None = None
    tcp_flags: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None
    arp_op: int | None = None
    arp_sha: str | None = None  # ARP sender hardware address (None: the Ethernet source)
    nd_target: str | None = None  # ICMPv6 neighbour solicitation/advertisement target (None: ::)

    # --- constructors -------------------------------------------------------------------
    @staticmethod
    def _ip_eth_type(ip: str) -> int:
        return ETH_IPV6 if ":" in ip else ETH_IPV4

    @classmethod
    def tcp(
        cls, in_port: int, eth_src: str, eth_dst: str, ip_src: str, ip_dst: str,
        src_port: int, dst_port: int, flags: int = SYN,
    ) -> Packet:
        return cls(
            in_port, eth_src, eth_dst, cls._ip_eth_type(ip_src), ip_src=ip_src, ip_dst=ip_dst,
            ip_proto=PROTO_TCP, src_port=src_port, dst_port=dst_port, tcp_flags=flags,
        )

    @classmethod
    def udp(
        cls, in_port: int, eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, src_port: int, dst_port: int
    ) -> Packet:
        return cls(
            in_port, eth_src, eth_dst, cls._ip_eth_type(ip_src), ip_src=ip_src, ip_dst=ip_dst,
            ip_proto=PROTO_UDP, src_port=src_port, dst_port=dst_port,
        )

    @classmethod
    def icmp(
        cls, in_port: int, eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, type_: int | None = None,
        code: int = 0,
    ) -> Packet:
        """ICMP (IPv4) or ICMPv6 by address family; the default type is an echo request."""
        eth_type = cls._ip_eth_type(ip_src)
        v6 = eth_type == ETH_IPV6
        if type_ is None:
            type_ = 128 if v6 else 8
        return cls(
            in_port, eth_src, eth_dst, eth_type, ip_src=ip_src, ip_dst=ip_dst,
            ip_proto=PROTO_ICMPV6 if v6 else PROTO_ICMP, icmp_type=type_, icmp_code=code,
        )

    @classmethod
    def ip(cls, in_port: int, eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, proto: int) -> Packet:
        """An IP packet of a protocol with no L4 fields OpenFlow can match (GRE, ESP, ...)."""
        return cls(in_port, eth_src, eth_dst, cls._ip_eth_type(ip_src), ip_src=ip_src, ip_dst=ip_dst,
                   ip_proto=proto)

    @classmethod
    def arp(cls, in_port: int, eth_src: str, eth_dst: str, spa: str, tpa: str, op: int = 1) -> Packet:
        return cls(in_port, eth_src, eth_dst, ETH_ARP, ip_src=spa, ip_dst=tpa, arp_op=op)

    # --- views --------------------------------------------------------------------------
    @property
    def is_ip(self) -> bool:
        return self.eth_type in (ETH_IPV4, ETH_IPV6)

    def oxm_fields(self) -> dict[str, int]:
        """OXM field name -> value, only for fields whose OpenFlow prerequisites hold."""
        f: dict[str, int] = {
            "in_port": self.in_port,
            "eth_src": mac_to_int(self.eth_src),
            "eth_dst": mac_to_int(self.eth_dst),
            "eth_type": self.eth_type,
            "vlan_vid": 0 if self.vlan is None else OFPVID_PRESENT | self.vlan,
        }
        if self.eth_type == ETH_ARP:
            assert self.ip_src is not None and self.ip_dst is not None
            f["arp_op"] = self.arp_op or 0
            f["arp_spa"] = int(ipaddress.IPv4Address(self.ip_src))
            f["arp_tpa"] = int(ipaddress.IPv4Address(self.ip_dst))
            f["arp_sha"] = mac_to_int(self.arp_sha or self.eth_src)
            return f
        if not self.is_ip:
            return f
        assert self.ip_src is not None and self.ip_dst is not None and self.ip_proto is not None
        v6 = self.eth_type == ETH_IPV6
        prefix = "ipv6" if v6 else "ipv4"
        f[f"{prefix}_src"] = int(ipaddress.ip_address(self.ip_src))
        f[f"{prefix}_dst"] = int(ipaddress.ip_address(self.ip_dst))
        f["ip_proto"] = self.ip_proto
        f["ip_dscp"] = self.ip_dscp
        f["ip_ecn"] = self.ip_ecn
        if v6:
            f["ipv6_flabel"] = self.ipv6_flabel
        if self.ip_proto in (PROTO_TCP, PROTO_UDP):
            l4 = "tcp" if self.ip_proto == PROTO_TCP else "udp"
            f[f"{l4}_src"] = self.src_port or 0
            f[f"{l4}_dst"] = self.dst_port or 0
            if self.ip_proto == PROTO_TCP:
                f["tcp_flags"] = self.tcp_flags
        elif (self.ip_proto, v6) in ((PROTO_ICMP, False), (PROTO_ICMPV6, True)):
            icmp = "icmpv6" if v6 else "icmpv4"
            f[f"{icmp}_type"] = self.icmp_type or 0
            f[f"{icmp}_code"] = self.icmp_code or 0
            if v6 and self.icmp_type in (135, 136):
                f["ipv6_nd_target"] = int(ipaddress.IPv6Address(self.nd_target or "::"))
        return f

    def ovs_flow(self) -> str:
        """The same packet in the flow syntax of ``ovs-appctl ofproto/trace``."""
        parts = [f"in_port={self.in_port}", f"dl_src={self.eth_src}", f"dl_dst={self.eth_dst}"]
        if self.vlan is not None:
            parts.append(f"dl_vlan={self.vlan}")
        if self.eth_type == ETH_ARP:
            parts += ["arp", f"arp_op={self.arp_op or 0}", f"arp_spa={self.ip_src}", f"arp_tpa={self.ip_dst}",
                      f"arp_sha={self.arp_sha or self.eth_src}"]
            return ",".join(parts)
        if not self.is_ip:
            parts.append(f"dl_type=0x{self.eth_type:04x}")
            return ",".join(parts)
        v6 = self.eth_type == ETH_IPV6
        names = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMPV6 if v6 else PROTO_ICMP: "icmp"}
        kw = names.get(self.ip_proto or 0)
        if kw is None:
            parts += ["ipv6" if v6 else "ip", f"nw_proto={self.ip_proto}"]
        else:
            parts.append(kw + ("6" if v6 else ""))
        src, dst = ("ipv6_src", "ipv6_dst") if v6 else ("nw_src", "nw_dst")
        parts += [f"{src}={self.ip_src}", f"{dst}={self.ip_dst}"]
        parts += [f"nw_tos={self.ip_dscp << 2}", f"nw_ecn={self.ip_ecn}"]
        if v6 and self.ipv6_flabel:
            parts.append(f"ipv6_label={self.ipv6_flabel}")
        if kw in ("tcp", "udp"):
            parts += [f"{kw}_src={self.src_port or 0}", f"{kw}_dst={self.dst_port or 0}"]
            if kw == "tcp":
                parts.append(f"tcp_flags=0x{self.tcp_flags:03x}")
        elif kw == "icmp":
            icmp = "icmpv6" if v6 else "icmp"
            parts += [f"{icmp}_type={self.icmp_type or 0}", f"{icmp}_code={self.icmp_code or 0}"]
            if v6 and self.icmp_type in (135, 136):
                parts.append(f"nd_target={self.nd_target or '::'}")
        return ",".join(parts)


# --- generators ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Host:
    """An endpoint on the switch: where it is plugged in and its addresses."""

    mac: str
    port: int
    ipv4: str
    ipv6: str


def _port_boundaries(pm: PortMatch | None) -> set[int]:
    """Ports on and just outside every edge of a port match (near misses included)."""
    out: set[int] = set()
    if pm is None:
        return out
    for lo, hi in pm.ranges():
        out.update({lo, hi, (lo + hi) // 2})
        if lo > 0:
            out.add(lo - 1)
        if hi < 65535:
            out.add(hi + 1)
    return out


def ace_ports(mud: MudFile) -> set[int]:
    """Every L4 port an ACE names, with near misses around each range edge."""
    ports: set[int] = set()
    for acl in (*mud.from_device, *mud.to_device):
        for ace in acl.aces:
            m = ace.matches
            for l4 in (m.tcp, m.udp):
                if l4 is not None:
                    ports |= _port_boundaries(l4.src_port) | _port_boundaries(l4.dst_port)
    return ports


def ace_protocols(mud: MudFile) -> set[int]:
    protos = {PROTO_TCP, PROTO_UDP, PROTO_ICMP}
    for acl in (*mud.from_device, *mud.to_device):
        for ace in acl.aces:
            ip = ace.matches.ip
            if ip is not None and ip.protocol is not None:
                protos.add(ip.protocol)
    return protos


def network_addresses(mud: MudFile) -> list[str]:
    """Addresses inside each literal network of the ACEs, and just outside it."""
    out: list[str] = []
    for acl in (*mud.from_device, *mud.to_device):
        for ace in acl.aces:
            ip = ace.matches.ip
            if ip is None:
                continue
            for net_text in (ip.src_network, ip.dst_network):
                if net_text is None:
                    continue
                net = ipaddress.ip_network(net_text, strict=False)
                first, last = int(net.network_address), int(net.broadcast_address)
                top = (1 << net.max_prefixlen) - 1
                for value in (first, last, first - 1, last + 1):
                    if 0 <= value <= top:
                        out.append(str(ipaddress.ip_address(value)))
    return out


def _flows_between(a: Host, b: Host, a_ip: str, b_ip: str, ports: Sequence[int], protos: Iterable[int],
                   rng: random.Random) -> list[Packet]:
    """Packets a -> b: per L4 port as destination and as source, all TCP flag mixes."""
    pkts: list[Packet] = []
    eph = rng.randint(32768, 60999)
    for port in ports:
        for flags in (SYN, SYN_ACK, ACK):
            pkts.append(Packet.tcp(a.port, a.mac, b.mac, a_ip, b_ip, eph, port, flags))
            pkts.append(Packet.tcp(a.port, a.mac, b.mac, a_ip, b_ip, port, eph, flags))
        pkts.append(Packet.udp(a.port, a.mac, b.mac, a_ip, b_ip, eph, port))
        pkts.append(Packet.udp(a.port, a.mac, b.mac, a_ip, b_ip, port, eph))
    for proto in protos:
        if proto in (PROTO_TCP, PROTO_UDP):
            continue
        if proto in (PROTO_ICMP, PROTO_ICMPV6):
            pkts.append(Packet.icmp(a.port, a.mac, b.mac, a_ip, b_ip))
        else:
            pkts.append(Packet.ip(a.port, a.mac, b.mac, a_ip, b_ip, proto))
    return pkts


def candidates(
    device: Host, peers: Sequence[Host], mud: MudFile, rng: random.Random, *,
    extra_addresses: Sequence[str] = (), n_random: int = 40,
) -> list[Packet]:
    """Candidate packets both ways between ``device`` and every peer, derived from the ACEs.

    ``extra_addresses`` (e.g. the literal networks of the ACEs with near misses) are used as
    the remote address of packets that travel through the first peer (the uplink side).
    """
    ports = sorted(ace_ports(mud) | {53, 80, 123, 443, 8080})
    protos = ace_protocols(mud)
    pkts: list[Packet] = []
    for peer in peers:
        for v6 in (False, True):
            d_ip, p_ip = (device.ipv6, peer.ipv6) if v6 else (device.ipv4, peer.ipv4)
            pkts += _flows_between(device, peer, d_ip, p_ip, ports, protos, rng)
            pkts += _flows_between(peer, device, p_ip, d_ip, ports, protos, rng)
    if peers:
        up = peers[0]
        for addr in extra_addresses:
            d_ip = device.ipv6 if ":" in addr else device.ipv4
            pkts += _flows_between(device, up, d_ip, addr, ports[:6], (), rng)
            pkts += _flows_between(up, device, addr, d_ip, ports[:6], (), rng)
        pkts.append(Packet.arp(device.port, device.mac, "ff:ff:ff:ff:ff:ff", device.ipv4, up.ipv4))
        pkts.append(Packet.arp(up.port, up.mac, device.mac, up.ipv4, device.ipv4, op=2))
        pkts.append(Packet(device.port, device.mac, "01:80:c2:00:00:0e", 0x88CC))
        for i in range(n_random):
            pkts.append(random_packet(rng, device, peers[i % len(peers)], ports))
    return pkts


def random_packet(rng: random.Random, device: Host, peer: Host, ports: Sequence[int]) -> Packet:
    """A random packet between the two hosts (either way), random addresses now and then."""
    a, b = (device, peer) if rng.random() < 0.5 else (peer, device)
    v6 = rng.random() < 0.4
    a_ip, b_ip = (a.ipv6, b.ipv6) if v6 else (a.ipv4, b.ipv4)
    if rng.random() < 0.3:
        b_ip = (str(ipaddress.IPv6Address(rng.getrandbits(128))) if v6
                else str(ipaddress.IPv4Address(rng.getrandbits(32))))
    port = rng.choice(ports) if rng.random() < 0.6 else rng.randint(1, 65535)
    kind = rng.choice(("tcp", "udp", "icmp"))
    if kind == "tcp":
        flags = rng.choice((SYN, SYN_ACK, ACK, ACK | PSH, FIN | ACK, RST))
        return Packet.tcp(a.port, a.mac, b.mac, a_ip, b_ip, rng.randint(1024, 65535), port, flags)
    if kind == "udp":
        return Packet.udp(a.port, a.mac, b.mac, a_ip, b_ip, rng.randint(1024, 65535), port)
    return Packet.icmp(a.port, a.mac, b.mac, a_ip, b_ip, rng.choice((0, 8, 128, 129, 135, 136)))


def with_flags(pkt: Packet, flags: int) -> Packet:
    return replace(pkt, tcp_flags=flags)
