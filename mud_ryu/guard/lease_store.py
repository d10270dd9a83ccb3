"""DHCP leases kept across a controller restart: the IP source guard's bindings of hosts that are not MUD devices.

A present MUD device's bindings are adopted back from the switch's flows after a restart; a lease the server gave
a laptop or a printer exists only in the controller's memory, and without it any device could claim that address
first (an address-stealing window until the host's next renewal, which may be hours away). This store keeps
``(mac, address, end of lease)`` rows in ``leases.sqlite3``; the enforcer restores the leases still running at
start and saves a diff every few seconds (:mod:`mud_ryu.storage.pairs`). A crash loses at most those seconds: a lease
the server gave just before it is bound again by the client's next ACK. Infinite leases are saved with a far
expiry (the store keeps finite times only).
"""

from __future__ import annotations

from mud_ryu.errors import ReasonError
from mud_ryu.storage.pairs import ExpiringPairStore

FOREVER = 253402300799.0  # 9999-12-31T23:59:59Z: how an infinite lease is saved


class LeaseStoreError(ReasonError):
    """The lease store cannot be used; ``reason``: ``unavailable``, ``corrupt-database``, ``schema-too-new``."""


class LeaseStore(ExpiringPairStore):
    """client MAC -> leased address -> end of lease, in ``leases.sqlite3``."""

    WHAT = "DHCP lease store"
    TABLE, KEY, VALUE = "lease", "mac", "address"
    APPLICATION_ID = 0x4D55444C  # "MUDL"
    ERROR = LeaseStoreError
