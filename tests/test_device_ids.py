"""Device id allocation: cookie owners for device flows (1..MAX_DEVICE_ID; 0 belongs to shared flows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mud_ryu.enforcer.devicestore import MAX_DEVICE_ID, DeviceRecord, DeviceStore, StoreError


def _save(store: DeviceStore, mac: str, device_id: int) -> None:
    store.save_device(DeviceRecord(mac, device_id, 1, 1, None, "dhcpv4", "quarantined", None, "", 0.0))


def _mac(i: int) -> str:
    return f"02:00:00:{i >> 16 & 0xFF:02x}:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"


def test_ids_count_up_and_a_known_mac_keeps_its_id(tmp_path: Path) -> None:
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    for i in range(1, 6):
        assert store.device_id(_mac(i)) == i
        _save(store, _mac(i), i)
    assert store.device_id(_mac(3)) == 3
    store.forget(_mac(2))
    assert store.device_id(_mac(99)) == 6  # a forgotten id is not handed out again while the space has room above


def test_once_the_top_is_taken_the_gaps_are_used_then_the_space_is_exhausted(tmp_path: Path) -> None:
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    for i in (2, 3, 5):
        _save(store, _mac(i), i)
    _save(store, _mac(1000), MAX_DEVICE_ID)
    assert store.device_id(_mac(50)) == 1  # the smallest free id
    _save(store, _mac(1), 1)
    assert store.device_id(_mac(50)) == 4
    _save(store, _mac(4), 4)
    assert store.device_id(_mac(50)) == 6


def test_exhausted_space_is_refused(tmp_path: Path) -> None:
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    conn = store._conn
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO device (mac, device_id, dpid, port, url, via, state, sha256, reason, updated_at) "
        "VALUES (?, ?, 1, 1, NULL, 'dhcpv4', 'absent', NULL, '', 0)",
        ((f"m{i}", i) for i in range(1, MAX_DEVICE_ID + 1)),
    )
    conn.execute("COMMIT")
    with pytest.raises(StoreError):
        store.device_id("02:ff:ff:ff:ff:ff")
