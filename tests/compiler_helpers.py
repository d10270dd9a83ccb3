"""Builders for MUD model objects used by the compiler tests (no JSON parsing involved)."""

from __future__ import annotations

from mud_ryu.mudfile.model import (
    Ace,
    Acl,
    Direction,
    Forwarding,
    IpMatch,
    Matches,
    MudFile,
    MudMatch,
    PortMatch,
    TcpMatch,
    UdpMatch,
)

MUD_URL = "https://things.example.com/sensor/v1"
DEV_MAC = "00:00:5e:00:53:01"


def mudfile(from_device: tuple[Acl, ...] = (), to_device: tuple[Acl, ...] = (), url: str = MUD_URL) -> MudFile:
    return MudFile(
        mud_version=1,
        mud_url=url,
        last_update="2024-01-01T00:00:00Z",
        cache_validity=48,
        is_supported=True,
        from_device=from_device,
        to_device=to_device,
    )


def acl(name: str, *aces: Ace, family: int = 4) -> Acl:
    return Acl(name, f"ipv{family}-acl-type", aces)


def tcp_ace(
    name: str,
    *,
    family: int = 4,
    dst_dnsname: str | None = None,
    src_dnsname: str | None = None,
    dst_port: PortMatch | None = None,
    src_port: PortMatch | None = None,
    initiated: Direction | None = None,
    forwarding: Forwarding = Forwarding.ACCEPT,
    mud: MudMatch | None = None,
) -> Ace:
    ip = IpMatch(family, protocol=6, dst_dnsname=dst_dnsname, src_dnsname=src_dnsname)
    tcp = TcpMatch(src_port=src_port, dst_port=dst_port, direction_initiated=initiated)
    m = Matches(ipv4=ip, tcp=tcp, mud=mud) if family == 4 else Matches(ipv6=ip, tcp=tcp, mud=mud)
    return Ace(name, m, forwarding)


def udp_ace(
    name: str,
    port: int,
    *,
    to_device: bool = False,
    mud: MudMatch | None = None,
    forwarding: Forwarding = Forwarding.ACCEPT,
) -> Ace:
    pm = PortMatch("eq", port=port)
    udp = UdpMatch(src_port=pm) if to_device else UdpMatch(dst_port=pm)
    return Ace(name, Matches(ipv4=IpMatch(4, protocol=17), udp=udp, mud=mud), forwarding)


def eq(port: int) -> PortMatch:
    return PortMatch("eq", port=port)
