"""The operator's my-controller entries on disk (device store schema 2) and the pure merge rules of
:mod:`mud_ryu.enforcer.my_controller`: precedence, canonical forms, and stores written before the entries existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mud_ryu.enforcer import my_controller
from mud_ryu.enforcer.core import Enforcer
from mud_ryu.enforcer.devicestore import SCHEMA_VERSION, DeviceRecord, DeviceStore, StoreError
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStore
from mud_ryu.policy.table import UpdatePolicy
from mud_ryu.settings import MudSettings

URL = "https://mud.example.com/printer.json"
OTHER_URL = "https://mud.example.com/lamp.json"

# The device store exactly as the release before schema 2 created it (CREATE IF NOT EXISTS, user_version 1).
_V1 = (
    "PRAGMA journal_mode=WAL",
    "CREATE TABLE IF NOT EXISTS profile (url TEXT PRIMARY KEY, profile_id INTEGER NOT NULL UNIQUE) STRICT",
    "CREATE TABLE IF NOT EXISTS manufacturer (authority TEXT PRIMARY KEY, mfg_id INTEGER NOT NULL UNIQUE) STRICT",
    """CREATE TABLE IF NOT EXISTS device (
        mac TEXT PRIMARY KEY, device_id INTEGER NOT NULL UNIQUE, dpid INTEGER NOT NULL, port INTEGER NOT NULL,
        url TEXT, via TEXT NOT NULL, state TEXT NOT NULL, sha256 TEXT, reason TEXT NOT NULL,
        updated_at REAL NOT NULL) STRICT""",
    "CREATE TABLE IF NOT EXISTS body (sha256 TEXT PRIMARY KEY, body BLOB NOT NULL) STRICT",
    "PRAGMA user_version=1",
    f"INSERT INTO profile VALUES ('{URL}', 2)",
    "INSERT INTO device VALUES ('02:00:00:00:00:01', 1, 1, 3, NULL, 'dhcpv4', 'quarantined', NULL, '', 5.0)",
)


def _raw(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_a_store_from_before_the_migration_opens_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "devices.sqlite3"
    _raw(path, *_V1)
    store = DeviceStore.open(path)
    assert _version(path) == SCHEMA_VERSION == 2
    assert store.profile_ids() == {URL: 2}
    assert store.devices() == [DeviceRecord("02:00:00:00:00:01", 1, 1, 3, None, "dhcpv4", "quarantined", None, "", 5.0)]
    assert store.my_controllers() == {}
    store.set_my_controller(URL, ("198.51.100.7",))
    store.close()
    reopened = DeviceStore.open(path)  # opening an upgraded store migrates nothing again
    assert reopened.my_controllers() == {URL: ("198.51.100.7",)} and reopened.profile_ids() == {URL: 2}
    reopened.close()


def test_an_enforcer_starts_on_an_upgraded_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    settings = MudSettings(state_dir=str(state))
    _raw(Path(settings.device_db_path), *_V1)
    store = DeviceStore.open(settings.device_db_path)
    trust_store = TrustStore.open(settings.state_dir)
    enforcer = Enforcer(settings, store, TrustGate(UpdatePolicy(settings.policy_settings()), trust_store), 0.0)
    assert enforcer.set_my_controller(URL, ["198.51.100.7"]) == []  # no profile in force: nothing to send
    assert [(e.url, e.source) for e in enforcer.my_controller_entries()] == [(URL, "operator")]
    store.close()
    trust_store.close()


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "devices.sqlite3"
    DeviceStore.open(path).close()
    _raw(path, f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema-too-new"):
        DeviceStore.open(path)


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "devices.sqlite3"
    _raw(path, "CREATE TABLE something_else (x INTEGER)")
    with pytest.raises(StoreError, match="corrupt-database"):
        DeviceStore.open(path)


@pytest.mark.parametrize(
    "row",
    [
        f"('{URL}', '[\"0.0.0.0/0\"]')",  # a too-broad entry is never read back as one
        f"('{URL}', 'not json')",
        f"('{URL}', '[]')",
        "('http://mud.example.com/x', '[\"198.51.100.7\"]')",
        "('HTTPS://MUD.EXAMPLE.COM/printer.json', '[\"198.51.100.7\"]')",  # not the canonical key
    ],
)
def test_a_corrupt_entry_fails_closed(tmp_path: Path, row: str) -> None:
    path = tmp_path / "devices.sqlite3"
    DeviceStore.open(path).close()
    _raw(path, f"INSERT INTO my_controller (url, addresses) VALUES {row}")
    store = DeviceStore.open(path)
    with pytest.raises(StoreError, match="corrupt-record"):
        store.my_controllers()
    store.close()


def test_the_store_takes_only_canonical_entries(tmp_path: Path) -> None:
    store = DeviceStore.open(tmp_path / "devices.sqlite3")
    with pytest.raises(my_controller.MyControllerRefused):
        store.set_my_controller(URL, ("198.51.100.7/32",))
    store.set_my_controller(URL, ("198.51.100.7",))
    assert store.clear_my_controller(URL) is True
    assert store.clear_my_controller(URL) is False
    assert store.my_controllers() == {}
    store.close()


# ---- the pure merge rules ------------------------------------------------------------------------------------


def test_view_precedence_operator_then_settings_entry_then_default() -> None:
    by_url = {URL: ("198.51.100.7",), "HTTPS://MUD.EXAMPLE.COM/lamp.json": ("198.51.100.8",)}
    operator = {OTHER_URL: ("10.0.0.12",)}
    third = "https://mud.example.com/third.json"
    view = my_controller.view([URL, OTHER_URL, third, "https://mud.example.com:443/lamp.json"], ("192.0.2.1",),
                              by_url, operator)  # fmt: skip
    assert view == {
        URL: ("198.51.100.7",),
        OTHER_URL: ("10.0.0.12",),  # the operator wins over the settings' (non-canonical) key for the same URL
        third: ("192.0.2.1",),
        "https://mud.example.com:443/lamp.json": ("10.0.0.12",),  # a file's own mud-url, looked up canonically
    }
    assert my_controller.view([third], (), {}, {}) == {third: ()}  # nothing configured: expands to nothing


def test_entries_are_sorted_and_the_operator_wins() -> None:
    got = my_controller.entries({OTHER_URL: ("198.51.100.8",), URL: ("198.51.100.7",)}, {URL: ("10.0.0.12",)})
    assert [(e.url, e.addresses, e.source) for e in got] == [
        (OTHER_URL, ("198.51.100.8",), "settings"),
        (URL, ("10.0.0.12",), "operator"),
    ]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("10.0.0.12", "10.0.0.12"),
        ("10.0.0.12/32", "10.0.0.12"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("0.0.0.0/1", "0.0.0.0/1"),
    ],
)
def test_canonical_addresses(raw: str, canonical: str) -> None:
    assert my_controller.canonical_address(raw) == canonical
