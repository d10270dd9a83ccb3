"""Device rows written behind (issue 14): one transaction per event-loop turn, reads that see them, safe ids."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mud_ryu.enforcer.devicestore import MAX_DEVICE_ID, MAX_PENDING_ROWS, DeviceRecord, DeviceStore, StoreError


def _row(mac: str, device_id: int, state: str = "quarantined") -> DeviceRecord:
    return DeviceRecord(mac, device_id, 1, 1, "https://mud.test/a.json", "dhcpv4", state, None, "", 0.0)


def _on_disk(path: Path) -> dict[str, str]:
    """What another reader of the file sees: committed rows only."""
    conn = sqlite3.connect(path)
    try:
        return {mac: state for mac, state in conn.execute("SELECT mac, state FROM device")}
    finally:
        conn.close()


@pytest.fixture
def deferred(tmp_path: Path) -> Iterator[tuple[DeviceStore, list[int], Path]]:
    path = tmp_path / "devices.sqlite3"
    store = DeviceStore.open(path)
    scheduled: list[int] = []
    store.defer_writes(lambda: scheduled.append(1))
    yield store, scheduled, path
    store.close()


def test_rows_wait_for_one_flush_and_reads_see_them(deferred: tuple[DeviceStore, list[int], Path]) -> None:
    store, scheduled, path = deferred
    for i in range(50):
        mac = f"02:00:00:00:00:{i:02x}"
        store.save_device(_row(mac, store.device_id(mac)))
    store.save_device(_row("02:00:00:00:00:00", 1, "enforced"))  # a second change of a waiting row
    assert scheduled == [1]  # one flush scheduled for the turn, not one a row
    assert _on_disk(path) == {}
    assert len(store.devices()) == 50 and {r.device_id for r in store.devices()} == set(range(1, 51))
    assert store.flush() == 50
    on_disk = _on_disk(path)
    assert len(on_disk) == 50 and on_disk["02:00:00:00:00:00"] == "enforced"
    assert store.flush() == 0
    store.save_device(_row("02:00:00:00:00:99", store.device_id("02:00:00:00:00:99")))
    assert scheduled == [1, 1]  # the next turn's first row schedules the next flush


def test_ids_of_waiting_rows_are_not_handed_out_again(deferred: tuple[DeviceStore, list[int], Path]) -> None:
    store, _, _ = deferred
    store.save_device(_row("02:00:00:00:00:01", store.device_id("02:00:00:00:00:01")))
    store.flush()
    store.save_device(_row("02:00:00:00:00:02", store.device_id("02:00:00:00:00:02")))  # waiting: id 2
    assert store.device_id("02:00:00:00:00:02") == 2
    assert store.device_id("02:00:00:00:00:03") == 3  # not 2 again


def test_a_failed_flush_keeps_the_rows_for_the_next(deferred: tuple[DeviceStore, list[int], Path]) -> None:
    store, _, path = deferred
    store.save_device(_row("02:00:00:00:00:01", 1))
    store._conn.execute("PRAGMA query_only = 1")  # the disk refuses writes (as a full or failing disk would)
    with pytest.raises(StoreError):
        store.flush()
    assert [r.mac for r in store.devices()] == ["02:00:00:00:00:01"]
    store._conn.execute("PRAGMA query_only = 0")
    assert store.flush() == 1 and _on_disk(path) == {"02:00:00:00:00:01": "quarantined"}


def test_an_operator_write_is_committed_at_once(deferred: tuple[DeviceStore, list[int], Path]) -> None:
    store, _, path = deferred
    store.save_device(_row("02:00:00:00:00:01", 1))
    store.save_device(_row("02:00:00:00:00:02", 2), immediately=True)
    assert set(_on_disk(path)) == {"02:00:00:00:00:01", "02:00:00:00:00:02"}  # with what waited before it


def test_many_waiting_rows_flush_by_themselves(deferred: tuple[DeviceStore, list[int], Path]) -> None:
    store, _, path = deferred
    for i in range(MAX_PENDING_ROWS):
        store.save_device(_row(f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}", i + 1))
    assert len(_on_disk(path)) == MAX_PENDING_ROWS  # bounded memory, bounded loss


def test_close_flushes_and_forget_drops_a_waiting_row(tmp_path: Path) -> None:
    path = tmp_path / "devices.sqlite3"
    store = DeviceStore.open(path)
    store.defer_writes(lambda: None)
    store.save_device(_row("02:00:00:00:00:01", 1))
    store.save_device(_row("02:00:00:00:00:02", 2))
    store.forget("02:00:00:00:00:02")
    store.close()
    assert _on_disk(path) == {"02:00:00:00:00:01": "quarantined"}


def test_once_the_top_is_taken_a_gap_is_handed_out_once(deferred: tuple[DeviceStore, list[int], Path]) -> None:
    """Past the top of the id space the gaps (forgotten devices) are searched in the table: a gap given to a row still
    waiting must not be given again -- two devices on one id share their cookie owner, so one's flows are the
    other's (and a delete of one's removes the other's)."""
    store, _, _ = deferred
    store.save_device(_row("02:00:00:00:00:ff", MAX_DEVICE_ID), immediately=True)
    for i in (1, 2, 5):
        store.save_device(_row(f"02:00:00:00:01:{i:02x}", i), immediately=True)
    first = store.device_id("02:00:00:00:02:01")
    store.save_device(_row("02:00:00:00:02:01", first))  # waiting
    second = store.device_id("02:00:00:00:02:02")
    assert first == 3 and second == 4
