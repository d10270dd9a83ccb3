"""The real SQLite stores, counting what they do: trust commits, forgets and record reads, device-row writes.

Shared by tests/test_renewal_io.py and benchmarks/renewal.py, which count the same store I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from mud_ryu.enforcer.devicestore import DeviceRecord, DeviceStore
from mud_ryu.policy.store import TrustStore, TrustStoreError
from mud_ryu.policy.types import Decision, DeviceId, TrustRecord


class CountingTrustStore(TrustStore):
    """The real trust store, counting its write transactions and its record reads."""

    commits = 0
    forgets = 0
    reads = 0
    fail = False  # fault injection: refuse the next commits as an unavailable disk would

    def commit(self, record: TrustRecord, decision: Decision) -> None:
        if self.fail:
            raise TrustStoreError("unavailable", "injected: the disk refused the write")
        self.commits += 1
        super().commit(record, decision)

    def commit_many(self, items: Sequence[tuple[TrustRecord, Decision]]) -> None:
        if self.fail:
            raise TrustStoreError("unavailable", "injected: the disk refused the write")
        self.commits += 1 if items else 0  # one transaction
        super().commit_many(items)

    def forget(self, identity: DeviceId) -> bool:
        self.forgets += 1
        return super().forget(identity)

    def get(self, identity: DeviceId) -> TrustRecord | None:
        self.reads += 1
        return super().get(identity)


class CountingDeviceStore(DeviceStore):
    saves = 0

    def save_device(self, rec: DeviceRecord, *, immediately: bool = False) -> None:
        self.saves += 1
        super().save_device(rec, immediately=immediately)
