"""The SSRF deny-list: every address class a device could aim the controller at is refused, by category."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mud_ryu.fetch import netguard, special_purpose


def _inside(block: special_purpose.Block) -> netguard.IPAddress:
    """An address of ``block`` that no more specific entry of the table claims (so ``block`` decides)."""
    net = block.prefix
    for candidate in (net[-1], net[0], net[1] if net.num_addresses > 1 else net[0], net[net.num_addresses // 2]):
        if special_purpose.lookup(candidate) is block:
            return candidate
    raise AssertionError(f"no address of {net} is decided by its own entry")


_DENIED_BLOCKS = [b for b in special_purpose.TABLE if b.denied]


@pytest.mark.parametrize("block", _DENIED_BLOCKS, ids=lambda b: f"{b.prefix}")
def test_every_denied_entry_of_the_table_is_denied_by_name(block: special_purpose.Block) -> None:
    reason = netguard.denied_reason(_inside(block))
    assert reason is not None and reason.startswith(f"{block.name} {block.prefix} ({block.rfc}")


@given(st.sampled_from(_DENIED_BLOCKS), st.integers(min_value=0, max_value=2**128 - 1))
def test_every_address_of_a_denied_entry_is_denied(block: special_purpose.Block, n: int) -> None:
    assert netguard.denied_reason(block.prefix[n % block.prefix.num_addresses]) is not None


def test_the_table_holds_every_registry_entry() -> None:
    # 25 entries each (IPv4: 2025 revision; IPv6: 2025-04, RFC 9780); the IPv4 NAT64/DNS64 Discovery entry
    # lists two addresses and is two rows.
    assert len(special_purpose.IPV4_REGISTRY) == 26 and len(special_purpose.IPV6_REGISTRY) == 25
    prefixes = [b.prefix for b in special_purpose.TABLE]
    assert len(prefixes) == len(set(prefixes))
    assert all(b.rfc.startswith("RFC ") and b.name for b in special_purpose.TABLE)
    # Only the NAT64 well-known prefix is reachable, and then only as far as the IPv4 address inside it is.
    assert [str(b.prefix) for b in special_purpose.TABLE if not b.denied] == ["64:ff9b::/96"]


@pytest.mark.parametrize(
    ("text", "entry", "inner"),
    [
        ("127.0.0.1", "Loopback 127.0.0.0/8", None),
        ("::1", "Loopback Address ::1/128", None),
        ("169.254.169.254", "Link Local 169.254.0.0/16", None),  # cloud metadata service
        ("100.64.0.1", "Shared Address Space 100.64.0.0/10", None),
        ("192.0.0.9", "Port Control Protocol Anycast 192.0.0.9/32", None),  # reachable, refused as anycast
        ("224.0.0.251", "IPv4 Multicast 224.0.0.0/4", None),
        ("ff02::fb", "IPv6 Multicast ff00::/8", None),
        ("fec0::1", "Site-Local Unicast (deprecated) fec0::/10", None),
        ("4000::1", "Reserved by IETF (not global unicast 2000::/3) 4000::/2", None),
        ("::ffff:8.8.8.8", "IPv4-mapped Address ::ffff:0:0/96", None),  # refused whatever it carries
        ("::ffff:127.0.0.1", "IPv4-mapped Address ::ffff:0:0/96", "127.0.0.1, Loopback"),
        ("::ffff:0:808:808", "IPv4-translated Address ::ffff:0:0:0/96", None),
        ("::ffff:0:7f00:1", "IPv4-translated Address ::ffff:0:0:0/96", "127.0.0.1, Loopback"),
        ("::a00:1", "IPv4-Compatible IPv6 Address (deprecated) ::/96", "10.0.0.1, Private-Use"),
        ("64:ff9b::7f00:1", "IPv4-IPv6 Translat. 64:ff9b::/96", "127.0.0.1, Loopback"),
        ("64:ff9b::a9fe:a9fe", "IPv4-IPv6 Translat. 64:ff9b::/96", "169.254.169.254, Link Local"),
        ("64:ff9b::e000:fb", "IPv4-IPv6 Translat. 64:ff9b::/96", "224.0.0.251, IPv4 Multicast"),
        ("64:ff9b:1::7f00:1", "IPv4-IPv6 Translat. 64:ff9b:1::/48", "127.0.0.1, Loopback"),  # a /96 inside it
        ("64:ff9b:1:a00:0:100::", "IPv4-IPv6 Translat. 64:ff9b:1::/48", "10.0.0.1, Private-Use"),  # RFC 6052 /48
        ("2002:0a00:0001::", "6to4 2002::/16", "10.0.0.1, Private-Use"),
        ("2002:7f00:1::1", "6to4 2002::/16", "127.0.0.1, Loopback"),
        ("2002:808:808::1", "6to4 2002::/16", None),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "TEREDO 2001::/32", "10.0.0.1, Private-Use"),  # client inverted
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "TEREDO 2001::/32", None),  # client 8.8.8.8
    ],
)
def test_reason_names_the_entry_and_the_embedded_ipv4_address(text: str, entry: str, inner: str | None) -> None:
    reason = netguard.denied_reason(ipaddress.ip_address(text))
    assert reason is not None and reason.startswith(f"{entry} (")
    if inner is None:
        assert "carrying" not in reason
    else:
        assert f"carrying {inner} " in reason


@pytest.mark.parametrize(
    "text", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450::1", "64:ff9b::808:808"]
)
def test_global_addresses_pass(text: str) -> None:
    assert netguard.denied_reason(ipaddress.ip_address(text)) is None


def test_allow_list_takes_precedence_and_is_exact() -> None:
    allowed = netguard.parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert netguard.denied_reason(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert netguard.denied_reason(ipaddress.ip_address("10.9.9.9"), allowed) is None
    # Only what was listed: the rest of loopback and the mapped form of the allowed address stay denied.
    for other in ("127.0.0.2", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:a00:1::"):
        assert netguard.denied_reason(ipaddress.ip_address(other), allowed) is not None, other
    assert netguard.denied_reason(ipaddress.ip_address("::ffff:0:0:1"), netguard.parse_networks(["::/0"])) is None


def test_parse_address_refuses_zone_ids_and_names() -> None:
    assert netguard.parse_address("fe80::1%eth0") is None
    assert netguard.parse_address("localhost") is None
    assert netguard.parse_address("10.0.0.1") == ipaddress.ip_address("10.0.0.1")


def test_parse_networks_refuses_host_bits() -> None:
    with pytest.raises(ValueError):
        netguard.parse_networks(["10.0.0.1/8"])


_DENIED_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]


@given(st.sampled_from(_DENIED_V4), st.integers(min_value=0, max_value=2**32 - 1))
def test_every_address_of_a_denied_v4_network_is_denied(cidr: str, n: int) -> None:
    net = ipaddress.IPv4Network(cidr)
    address = net[n % net.num_addresses]
    assert netguard.denied_reason(address) is not None
    # ... and its v4-mapped IPv6 spelling as well.
    assert netguard.denied_reason(ipaddress.IPv6Address(f"::ffff:{address}")) is not None


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_any_v6_address_denied_or_global(n: int) -> None:
    address = ipaddress.IPv6Address(n)
    reason = netguard.denied_reason(address)
    assert reason is not None or address.is_global


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_any_v4_address_denied_or_global(n: int) -> None:
    # Python's own view of the registries (possibly older than ours) never allows what the table denies.
    address = ipaddress.IPv4Address(n)
    assert netguard.denied_reason(address) is not None or address.is_global
