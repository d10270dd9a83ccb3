"""Which IP addresses each MUD device may send from: the IP source guard's binding table (first come, first served).

A managed device's frames reach its ACLs only from the addresses bound to it (:mod:`mud_ryu.sourceguard`). The
switch copies a managed device's first frame from an unbound source (IPv4, IPv6, ARP sender address; also an IPv6
duplicate-address-detection probe, which names the address a device is about to use) to the controller and drops
it; the controller binds the address to the device when no one else holds it (the FCFS source address validation
of RFC 6620): not another present device's address, not a configured server's or controller's, not a group,
unspecified, loopback or link-wide broadcast address, and within a cap per device. The device's next frame from
that address passes. A DHCP server's acknowledgement seen on a trusted port binds the leased address to its client
before the client uses it, and wins over a claim (:mod:`mud_ryu.dhcp_lease`): a device cannot claim the address a
server gave another client, managed or not. A device keeps its bindings while it is present; they go with its
place (port down, release, forget) and are adopted again from the switch's flows after a controller restart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_V4_PER_DEVICE = 4
MAX_V6_PER_DEVICE = 8  # link-local, SLAAC (stable and temporary), DHCPv6
MAX_BOUND = 65536  # every binding of the table, leases of unmanaged hosts included


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str  # bad-address | server-address | held-by-other | cap
    holder: str = ""  # the MAC that holds it, for held-by-other


@dataclass
class AddressBindings:
    """MAC -> its bound addresses, and address -> MAC (one holder per address)."""

    servers: frozenset[str] = frozenset()
    _by_mac: dict[str, set[str]] = field(default_factory=dict)
    _holder: dict[str, str] = field(default_factory=dict)

    def of(self, mac: str) -> frozenset[str]:
        return frozenset(self._by_mac.get(mac, ()))

    def holder(self, address: str) -> str | None:
        return self._holder.get(address)

    def claim(self, mac: str, raw: str) -> str | Refused:
        """Bind ``raw`` to ``mac``; the canonical address, or why not (nothing changes then)."""
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            return Refused("bad-address")
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip == ipaddress.IPv4Address("255.255.255.255"):
            return Refused("bad-address")
        address = str(ip)
        if address in self.servers:
            return Refused("server-address")
        holder = self._holder.get(address)
        if holder == mac:
            return address
        if holder is not None:
            return Refused("held-by-other", holder)
        mine = self._by_mac.setdefault(mac, set())
        cap = MAX_V6_PER_DEVICE if ip.version == 6 else MAX_V4_PER_DEVICE
        if sum(1 for a in mine if (":" in a) == (ip.version == 6)) >= cap:
            if not mine:
                del self._by_mac[mac]
            return Refused("cap")
        mine.add(address)
        self._holder[address] = mac
        return address

    def assign(self, mac: str, raw: str) -> str | Refused:
        """A DHCP server leased ``raw`` to ``mac`` (an ACK seen on a trusted port): authoritative, so it is bound to
        ``mac`` even when another MAC claimed it first (that claim is dropped; the caller tells the operator), and
        also when ``mac`` is no MUD device (its lease is then protected from a device's claim). The previous holder,
        if any, is returned by :meth:`holder` before the call."""
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            return Refused("bad-address")
        address = str(ip)
        if address in self.servers or ip.is_multicast or ip.is_unspecified or ip.is_loopback:
            return Refused("server-address" if address in self.servers else "bad-address")
        holder = self._holder.get(address)
        if holder is not None and holder != mac:
            self._drop(holder, address)
        if len(self._holder) >= MAX_BOUND and address not in self._holder:
            return Refused("cap")
        self._by_mac.setdefault(mac, set()).add(address)
        self._holder[address] = mac
        return address

    def _drop(self, mac: str, address: str) -> None:
        mine = self._by_mac.get(mac)
        if mine is not None:
            mine.discard(address)
            if not mine:
                del self._by_mac[mac]
        self._holder.pop(address, None)

    def release(self, mac: str) -> frozenset[str]:
        """Forget every address of ``mac`` (it left its place); the addresses it held."""
        gone = self._by_mac.pop(mac, set())
        for address in gone:
            self._holder.pop(address, None)
        return frozenset(gone)

    def adopt(self, mac: str, addresses: Iterable[str]) -> None:
        """After a restart: bindings the switch still holds for a present device (refusals are skipped)."""
        for address in addresses:
            self.claim(mac, address)
