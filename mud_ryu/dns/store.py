"""DNS-learned bindings kept across a controller restart (THREATS.md R11: a restart deletes no valid flow).

An address a device was told by the site resolver stays allowed until its (clamped) TTL runs out. That state lived
only in the controller's memory, so after a restart the profiles compiled without it and reconciliation deleted
the flows of every DNS-named service a device was using, until the device happened to query again. This store
keeps ``(name, address, expiry)`` rows in ``dns-bindings.sqlite3`` next to the other state files; the enforcer
restores them at start (:meth:`~mud_ryu.dns.bind.DnsBindings.restore`: never past the saved expiry) before any
switch is reconciled.

Writes are a diff against what was last saved, in one transaction (:mod:`mud_ryu.storage.pairs`), and the app saves at
most every few seconds (a DNS answer can arrive many times a second; an fsync each would be the cost of every
answer). What a crash can
lose is the last few seconds: an extension (the address then expires earlier, at its older expiry) or a new address
(its flows go at the restart until the device asks again): both fail closed, neither widens.
"""

from __future__ import annotations

from mud_ryu.errors import ReasonError
from mud_ryu.storage.pairs import ExpiringPairStore, Row

Binding = Row  # (normalised name, address, expiry in seconds since the epoch)


class DnsStoreError(ReasonError):
    """The binding store cannot be used; ``reason``: ``unavailable``, ``corrupt-database``, ``schema-too-new``."""


class DnsStore(ExpiringPairStore):
    """name -> address -> expiry, in ``dns-bindings.sqlite3``."""

    WHAT = "DNS binding store"
    TABLE, KEY, VALUE = "binding", "name", "address"
    APPLICATION_ID = 0x4D554444  # "MUDD"
    ERROR = DnsStoreError
