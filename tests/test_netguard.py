"""The SSRF deny-list: every address class a device could aim the controller at is refused, by category."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mud_ryu import netguard


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata service
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "shared-cgnat"),
        ("fd00::1", "unique-local"),
        ("fec0::1", "unique-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::fb", "multicast"),
        ("255.255.255.255", "broadcast-reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "v4-mapped"),
        ("::ffff:8.8.8.8", "v4-mapped"),  # mapped forms are refused outright, even of global addresses
        ("64:ff9b::a9fe:a9fe", "v4-mapped"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::1", "v4-mapped"),  # 6to4 of 127.0.0.1
        ("2001::1", "v4-mapped"),  # Teredo
        ("192.0.2.7", "documentation"),
        ("2001:db8::5", "documentation"),
        ("198.18.0.1", "special-purpose"),
    ],
)
def test_denied_categories(text: str, category: str) -> None:
    assert netguard.denied_reason(ipaddress.ip_address(text)) == category


@pytest.mark.parametrize("text", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450::1"])
def test_global_addresses_pass(text: str) -> None:
    assert netguard.denied_reason(ipaddress.ip_address(text)) is None


def test_allow_list_takes_precedence_and_is_exact() -> None:
    allowed = netguard.parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert netguard.denied_reason(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert netguard.denied_reason(ipaddress.ip_address("10.9.9.9"), allowed) is None
    # Only what was listed: the rest of loopback and the mapped form of the allowed address stay denied.
    assert netguard.denied_reason(ipaddress.ip_address("127.0.0.2"), allowed) == "loopback"
    assert netguard.denied_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) == "v4-mapped"


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
