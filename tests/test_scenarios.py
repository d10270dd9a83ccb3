"""What each MUD abstraction means for concrete packets, checked on the simulated switch.

Every scenario compiles real corpus files (the RFC 8520 example and the NIST abstraction
tests) with a context that resolves every name, then asks "does this packet get out of that
port?". The device under test is on port 1, the uplink on port 2. For the two-device
abstractions (manufacturer, same-manufacturer, model) the other devices are managed too:
classified by their own flows and given an *open* profile (accept all IP both ways), so the
verdict is decided by the policy under test, as RFC 8520 requires both ends' policies to agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from mud_ryu.compiler.compile import compile_profile, compile_switch, device_rules, static_forward_rules
from mud_ryu.compiler.context import DeviceSpec, NetworkContext, url_authority
from mud_ryu.mudfile.model import Ace, Acl, Forwarding, IpMatch, Matches, MudFile
from tests.conftest import DNS_SERVER, LOCAL_NETWORKS, MY_CONTROLLER, load_corpus, resolving_context
from tests.ofsim import FlowTableSim
from tests.packets import ACK, SYN, SYN_ACK, Host, Packet

NIST = "usnistgov+nist-mud/test__unittest__"
UPLINK = 2
DEV = Host("02:00:00:00:00:01", 1, "10.0.0.11", "fd00:1::11")
LOCAL_HOST = Host("02:00:00:00:00:f1", UPLINK, "10.0.5.5", "fd00:1::55")
INTERNET = Host("02:00:00:00:00:f2", UPLINK, "8.8.8.8", "2001:4860::8888")
assert LOCAL_NETWORKS[0].startswith("10.0.")


def open_profile(url: str) -> MudFile:
    """A policy that accepts all IPv4/IPv6 both ways (for the other end of a two-device test)."""

    def acl(name: str, v: int) -> Acl:
        ip = IpMatch(version=v)
        matches = Matches(ipv4=ip) if v == 4 else Matches(ipv6=ip)
        return Acl(name, f"ipv{v}-acl-type", (Ace(f"{name}-all", matches, Forwarding.ACCEPT),))

    both = (acl("v4", 4), acl("v6", 6))
    return MudFile(1, url, "2024-01-01T00:00:00Z", 48, True, from_device=both, to_device=both)


@dataclass
class Net:
    """A switch with the device under test (port 1) and more managed devices (ports 3...)."""

    sim: FlowTableSim
    ctx: NetworkContext

    def remote(self, addrs: Sequence[str], mac: str = "02:00:00:00:00:e1") -> Host:
        v4 = next(a for a in addrs if ":" not in a)
        v6 = next((a for a in addrs if ":" in a), "2001:db8:ffff::1")
        return Host(mac, UPLINK, v4, v6)

    def out(self, pkt: Packet, to: Host) -> bool:
        v = self.sim.process(pkt)
        assert not v.ties, v.ties
        return v.outputs == {to.port}


def build(mud: MudFile, others: Sequence[tuple[Host, MudFile, str | None]] = ()) -> Net:
    """``others``: (host, its policy, its manufacturer authority or None for its URL's)."""
    ctx = resolving_context([mud, *(m for _, m, _ in others)])
    sim = FlowTableSim(ports=frozenset({1, 2, *(h.port for h, _, _ in others)}))
    sim.add_all(compile_switch(mud, DeviceSpec(DEV.mac, DEV.port, UPLINK, device_id=1), ctx))
    for i, (host, policy, authority) in enumerate(others, 2):
        pid = ctx.profile_id(policy.mud_url)
        mid = ctx.manufacturer_id(authority or url_authority(policy.mud_url))
        assert pid is not None and mid is not None
        spec = DeviceSpec(host.mac, host.port, UPLINK, device_id=i)
        sim.add_all(device_rules(spec, pid, mid))
        fwd = static_forward_rules(spec)
        sim.add_all((fwd[0], fwd[2]))  # to its MAC -> its port; from its port -> uplink
        if policy.mud_url != mud.mud_url:
            sim.add_all(compile_profile(policy, ctx, pid).rules)
    return Net(sim, ctx)


def tcp(a: Host, b: Host, sport: int, dport: int, flags: int = SYN, v6: bool = False) -> Packet:
    return Packet.tcp(a.port, a.mac, b.mac, a.ipv6 if v6 else a.ipv4, b.ipv6 if v6 else b.ipv4, sport, dport, flags)


def udp(a: Host, b: Host, sport: int, dport: int, v6: bool = False) -> Packet:
    return Packet.udp(a.port, a.mac, b.mac, a.ipv6 if v6 else a.ipv4, b.ipv6 if v6 else b.ipv4, sport, dport)


# --- RFC 8520 appendix example: lightbulb2000 ------------------------------------------------


def test_rfc8520_example_lightbulb() -> None:
    mud = load_corpus("hslatman+mud.yang.go/examples__lightbulb2000.json")
    net = build(mud)
    cloud = net.remote(net.ctx.dns["test.example.com"])
    # the bulb may open HTTPS (IPv6) to test.example.com, and the answers come back
    assert net.out(tcp(DEV, cloud, 40000, 443, SYN, v6=True), cloud)
    assert net.out(tcp(cloud, DEV, 443, 40000, SYN_ACK, v6=True), DEV)
    assert net.out(tcp(cloud, DEV, 443, 40000, ACK, v6=True), DEV)
    # ... but test.example.com may not open a connection to the bulb (direction-initiated)
    assert not net.out(tcp(cloud, DEV, 443, 40000, SYN, v6=True), DEV)
    # other ports, other hosts, and IPv4 (the ACLs are IPv6 only) are dropped
    assert not net.out(tcp(DEV, cloud, 40000, 80, SYN, v6=True), cloud)
    assert not net.out(tcp(DEV, INTERNET, 40000, 443, SYN, v6=True), INTERNET)
    assert not net.out(tcp(DEV, cloud, 40000, 443, SYN), cloud)
    assert not net.out(tcp(INTERNET, DEV, 443, 40000, ACK, v6=True), DEV)
    # RFC 8520 defaults: DNS to the local DNS server over UDP is allowed, elsewhere not
    dns = net.remote(DNS_SERVER, "02:00:00:00:00:53")
    assert net.out(udp(DEV, dns, 5353, 53), dns) and net.out(udp(dns, DEV, 53, 5353), DEV)
    assert not net.out(udp(DEV, INTERNET, 5353, 53), INTERNET)


# --- NIST abstractions ---------------------------------------------------------------------


def test_controller_class() -> None:
    net = build(load_corpus(NIST + "mud-controllerclass-test__mudfile-controllerclass-test.json"))
    ctl = net.remote(net.ctx.controllers["https://controller.nist.local"])
    assert net.out(tcp(DEV, ctl, 40000, 80), ctl)
    assert net.out(tcp(ctl, DEV, 80, 40000, SYN_ACK), DEV)
    assert not net.out(tcp(ctl, DEV, 80, 40000, SYN), DEV)  # initiated from the device only
    assert not net.out(tcp(DEV, LOCAL_HOST, 40000, 80), LOCAL_HOST)  # another host
    assert not net.out(tcp(DEV, ctl, 40000, 81), ctl)


def test_my_controller() -> None:
    net = build(load_corpus(NIST + "mud-mycontrollerclass-test__mudfile-mycontrollerclass-test.json"))
    mine = net.remote(MY_CONTROLLER)
    assert net.out(udp(DEV, mine, 5000, 8002), mine) and net.out(udp(mine, DEV, 8002, 5000), DEV)
    assert not net.out(udp(DEV, INTERNET, 5000, 8002), INTERNET)
    assert not net.out(udp(DEV, mine, 5000, 8003), mine)
    www = net.remote(net.ctx.dns["www.nist.local"])
    assert net.out(tcp(DEV, www, 40000, 80), www)
    assert net.out(udp(DEV, LOCAL_HOST, 5000, 8000), LOCAL_HOST)  # loc0: local networks udp/8000
    assert not net.out(udp(DEV, INTERNET, 5000, 8000), INTERNET)


def test_local_networks() -> None:
    net = build(load_corpus(NIST + "mud-local-networks-test__mudfile-local-networks-test.json"))
    # loc0: local hosts may open tcp/80 on the device (initiated to-device)
    assert net.out(tcp(LOCAL_HOST, DEV, 40000, 80, SYN), DEV)
    assert net.out(tcp(DEV, LOCAL_HOST, 80, 40000, SYN_ACK), LOCAL_HOST)
    assert not net.out(tcp(DEV, LOCAL_HOST, 80, 40000, SYN), LOCAL_HOST)  # the device may not initiate
    assert not net.out(tcp(INTERNET, DEV, 40000, 80, SYN), DEV)  # not a local network
    assert not net.out(tcp(DEV, INTERNET, 80, 40000, SYN_ACK), INTERNET)


def test_tcp_direction_initiated_both_ways() -> None:
    net = build(load_corpus(NIST + "mud-tcp-direction-test__mudfile-tcp-direction-test.json"))
    # loc0: device -> local tcp/800, initiated by the device
    assert net.out(tcp(DEV, LOCAL_HOST, 40000, 800, SYN), LOCAL_HOST)
    assert net.out(tcp(LOCAL_HOST, DEV, 800, 40000, SYN_ACK), DEV)
    assert not net.out(tcp(LOCAL_HOST, DEV, 800, 40000, SYN), DEV)
    # loc1: local -> device tcp/8000, initiated by the local host
    assert net.out(tcp(LOCAL_HOST, DEV, 40000, 8000, SYN), DEV)
    assert net.out(tcp(DEV, LOCAL_HOST, 8000, 40000, SYN_ACK), LOCAL_HOST)
    assert net.out(tcp(DEV, LOCAL_HOST, 8000, 40000, ACK), LOCAL_HOST)
    assert not net.out(tcp(DEV, LOCAL_HOST, 8000, 40000, SYN), LOCAL_HOST)


def test_dns_names() -> None:
    net = build(load_corpus(NIST + "mud-dns-test__mudfile-dns-test.json"))
    www = net.remote(net.ctx.dns["www.nist.local"])
    assert net.out(tcp(DEV, www, 40000, 80), www)
    assert net.out(tcp(www, DEV, 80, 40000, ACK), DEV)
    assert not net.out(tcp(DEV, INTERNET, 40000, 80), INTERNET)
    assert not net.out(tcp(INTERNET, DEV, 80, 40000, ACK), DEV)


TOOTH = Host("02:00:00:00:00:03", 3, "10.0.0.13", "fd00:1::13")
HAIR = Host("02:00:00:00:00:04", 4, "10.0.0.14", "fd00:1::14")
STRANGER = Host("02:00:00:00:00:05", 5, "10.0.0.15", "fd00:1::15")


def test_manufacturer() -> None:
    net = build(
        load_corpus(NIST + "mud-mfg-test__mudfile-mfg-test.json"),
        [
            (TOOTH, open_profile("https://toothbrush.nist.local/t1"), None),
            (HAIR, open_profile("https://hairbrush.nist.local/h1"), None),
            (STRANGER, open_profile("https://other.example.com/x"), None),
        ],
    )
    assert net.out(udp(DEV, TOOTH, 5000, 8008), TOOTH) and net.out(udp(TOOTH, DEV, 8008, 5000), DEV)
    assert not net.out(udp(DEV, HAIR, 5000, 8008), HAIR)  # udp/8008 only to toothbrush makers
    assert net.out(tcp(DEV, HAIR, 40000, 8010), HAIR)
    assert not net.out(tcp(HAIR, DEV, 8010, 40000, SYN), DEV)
    assert not net.out(udp(DEV, STRANGER, 5000, 8008), STRANGER)
    assert not net.out(udp(STRANGER, DEV, 8008, 5000), DEV)
    # an unmanaged host at the same addresses behind the uplink is not a "manufacturer" match
    fake = Host("02:00:00:00:00:e9", UPLINK, TOOTH.ipv4, TOOTH.ipv6)
    assert not net.out(udp(DEV, fake, 5000, 8008), fake)


def test_model() -> None:
    net = build(
        load_corpus(NIST + "mud-model-test__mudfile-model-test.json"),
        [
            (TOOTH, open_profile("https://toothbrush.nist.local/super1"), None),
            (HAIR, open_profile("https://toothbrush.nist.local/other-model"), None),  # same maker
        ],
    )
    assert net.out(udp(DEV, TOOTH, 5000, 8008), TOOTH) and net.out(udp(TOOTH, DEV, 8008, 5000), DEV)
    assert not net.out(udp(DEV, HAIR, 5000, 8008), HAIR)  # same manufacturer, other model
    assert not net.out(udp(HAIR, DEV, 8008, 5000), DEV)


@pytest.mark.parametrize(
    "rel",
    [NIST + "mud-same-manufacturer-test__mudfile-same-manufacturer-test.json",
     NIST + "mud-local-and-same-mfg-test__mudfile-local-and-same-mfg-test.json"],
)
def test_same_manufacturer(rel: str) -> None:
    mud = load_corpus(rel)
    sibling_url = f"https://{url_authority(mud.mud_url)}/another-product"
    twin = Host("02:00:00:00:00:06", 6, "10.0.0.16", "fd00:1::16")
    net = build(
        mud,
        [
            (TOOTH, open_profile(sibling_url), None),  # same manufacturer, different MUD file
            (STRANGER, open_profile("https://other.example.com/x"), None),
            (twin, mud, None),  # a second device with the very same profile
        ],
    )
    for peer in (TOOTH, twin):
        assert net.out(udp(DEV, peer, 5000, 9999), peer) and net.out(tcp(peer, DEV, 40000, 22), DEV)
    assert net.out(udp(twin, DEV, 9999, 5000), DEV)
    assert not net.out(udp(DEV, STRANGER, 5000, 9999), STRANGER)
    assert not net.out(tcp(STRANGER, DEV, 40000, 22), DEV)
    assert not net.out(udp(DEV, INTERNET, 5000, 9999), INTERNET)
