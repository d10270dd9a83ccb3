"""Which IP addresses each MUD device may send from: the IP source guard's binding table (first come, first served).

A managed device's frames reach its ACLs only from the addresses bound to it (:mod:`mud_ryu.guard.source`). The
switch copies a managed device's first frame from an unbound source (IPv4, IPv6, ARP sender address; also an IPv6
duplicate-address-detection probe, which names the address a device is about to use) to the controller and drops
it; the controller binds the address to the device when no one else holds it (the FCFS source address validation
of RFC 6620): not another present device's address, not a configured server's or controller's, not a group,
unspecified, loopback or link-wide broadcast address, and within a cap per device. The device's next frame from
that address passes. A DHCP server's acknowledgement seen on a trusted port binds the leased address to its client
before the client uses it, and wins over a claim (:mod:`mud_ryu.guard.dhcp_lease`): a device cannot claim the address a
server gave another client, managed or not. A device keeps its bindings while it is present; they go with its
place (port down, release, forget) and are adopted again from the switch's flows after a controller restart.

A leased address is bound for its lease's lifetime: when no renewal came by then, the binding goes (the server may
give the address to someone else; a device that still uses it claims it again, first come). Leases are the only
bindings of hosts that are not MUD devices, so they are what the enforcer saves for a restart
(:mod:`mud_ryu.guard.lease_store`); so are the routers a DHCP server names (option 3), which no device may claim for as
long as the lease that named them (a day at most). A lease survives its client's port going down: it is the
client's until it ends. What the switch itself drops from untrusted ports (:func:`mud_ryu.guard.ports.guard_rules`)
is the configured server and ``protected_addresses`` set, not the learned routers.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_V4_PER_DEVICE = 4
MAX_V6_PER_DEVICE = 8  # link-local, SLAAC (stable and temporary), DHCPv6
MAX_BOUND = 65536  # every binding of the table, leases of unmanaged hosts included
MAX_LEARNED_ROUTERS = 64  # routers named by DHCP servers (a handful per site)


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
    _lease_ends: dict[str, float] = field(default_factory=dict)  # leased address -> when its lease ends
    _routers: dict[str, float] = field(default_factory=dict)  # router named by a server -> until when protected
    _due: list[tuple[float, str]] = field(default_factory=list)  # heap of (end, address); stale entries skipped

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
        if address in self.servers or address in self._routers:
            return Refused("server-address")
        holder = self._holder.get(address)
        if holder == mac:
            return address
        if holder is not None:
            return Refused("held-by-other", holder)
        if self._at_cap(mac, ip.version):
            return Refused("cap")
        self._by_mac.setdefault(mac, set()).add(address)
        self._holder[address] = mac
        return address

    def assign(self, mac: str, raw: str, until: float = math.inf) -> str | Refused:
        """A DHCP server leased ``raw`` to ``mac`` until ``until`` (an ACK or Reply seen on a trusted port):
        authoritative, so it is bound to ``mac`` even when another MAC claimed it first (that claim is dropped; the
        caller tells the operator), and also when ``mac`` is no MUD device (its lease is then protected from a
        device's claim). The previous holder, if any, is returned by :meth:`holder` before the call."""
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            return Refused("bad-address")
        address = str(ip)
        if address in self.servers or address in self._routers:
            return Refused("server-address")
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
            return Refused("bad-address")
        holder = self._holder.get(address)
        if holder != mac:
            # a client (or a client faking DUIDs/client ids in its requests) gets no more leases than a device may
            # claim addresses: each one costs flows
            if self._at_cap(mac, ip.version):
                return Refused("cap")
            if len(self._holder) >= MAX_BOUND and address not in self._holder:
                return Refused("cap")
        if holder is not None and holder != mac:
            self._drop(holder, address)
        self._by_mac.setdefault(mac, set()).add(address)
        self._holder[address] = mac
        self._lease_ends[address] = until
        self._push(until, address)
        return address

    def _at_cap(self, mac: str, version: int) -> bool:
        """``mac`` holds as many addresses of this IP version as one device may (claimed and leased alike)."""
        cap = MAX_V6_PER_DEVICE if version == 6 else MAX_V4_PER_DEVICE
        return sum(1 for a in self._by_mac.get(mac, ()) if (":" in a) == (version == 6)) >= cap

    def protect_router(self, raw: str, until: float) -> str | None:
        """A DHCP server named ``raw`` as a router (until its lease ends): no device may claim it from now on. The
        MAC that held it (its claim is dropped; the caller tells the operator), or None."""
        try:
            address = str(ipaddress.ip_address(raw))
        except ValueError:
            return None
        if address not in self._routers and len(self._routers) >= MAX_LEARNED_ROUTERS:
            return None
        self._routers[address] = max(until, self._routers.get(address, 0.0))
        self._push(until, address)
        holder = self._holder.get(address)
        if holder is not None:
            self._drop(holder, address)
        return holder

    def _push(self, until: float, address: str) -> None:
        if until == math.inf:
            return
        heapq.heappush(self._due, (until, address))
        if len(self._due) > 4 * (len(self._lease_ends) + len(self._routers)) + 64:
            # every renewal leaves its predecessor's entry behind: rebuild from what is current
            self._due = [(t, a) for a, t in (*self._lease_ends.items(), *self._routers.items()) if t < math.inf]
            heapq.heapify(self._due)

    def expire(self, now: float) -> list[tuple[str, str]]:
        """End the leases (and router protections) due by ``now``; the (MAC, address) bindings that went."""
        gone: list[tuple[str, str]] = []
        while self._due and self._due[0][0] <= now:
            _end, address = heapq.heappop(self._due)
            if self._routers.get(address, math.inf) <= now:
                del self._routers[address]
            ends = self._lease_ends.get(address)
            if ends is not None and ends <= now:  # not renewed since this entry was pushed
                holder = self._holder[address]
                self._drop(holder, address)
                gone.append((holder, address))
        return gone

    def next_expiry(self) -> float | None:
        return self._due[0][0] if self._due else None

    def leases(self) -> dict[str, dict[str, float]]:
        """MAC -> leased address -> when the lease ends: what is saved for a restart (claims are not: a present
        device's are adopted back from the switch)."""
        out: dict[str, dict[str, float]] = {}
        for address, until in self._lease_ends.items():
            out.setdefault(self._holder[address], {})[address] = until
        return out

    def restore(self, leases: Mapping[str, Mapping[str, float]], now: float) -> int:
        """At start: the saved leases still running at ``now``; how many were bound again."""
        bound = 0
        for mac, table in leases.items():
            for address, until in table.items():
                if until > now and not isinstance(self.assign(mac, address, until), Refused):
                    bound += 1
        return bound

    def _drop(self, mac: str, address: str) -> None:
        mine = self._by_mac.get(mac)
        if mine is not None:
            mine.discard(address)
            if not mine:
                del self._by_mac[mac]
        self._holder.pop(address, None)
        self._lease_ends.pop(address, None)

    def release(self, mac: str) -> frozenset[str]:
        """Forget the claimed addresses of ``mac`` (it left its place); the addresses it held. Addresses a server
        leased it stay its own until the lease ends: a port flap must not hand them to whoever claims first."""
        mine = self._by_mac.pop(mac, set())
        kept = {a for a in mine if a in self._lease_ends}
        for address in mine - kept:
            self._holder.pop(address, None)
        if kept:
            self._by_mac[mac] = kept
        return frozenset(mine - kept)

    def routers(self) -> dict[str, float]:
        """Router address -> until when it is protected (saved with the leases)."""
        return dict(self._routers)

    def adopt(self, mac: str, addresses: Iterable[str]) -> None:
        """After a restart: bindings the switch still holds for a present device (refusals are skipped)."""
        for address in addresses:
            self.claim(mac, address)
