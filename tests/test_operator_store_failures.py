"""Operator actions when the device store fails (disk full, I/O error): narrowing still happens, the failure is a
StoreError with a 503 ``store-failed`` answer, and nothing escapes as a raw SQLite exception.

The failures are real SQLite errors: a trigger added through a second connection aborts the write, as a full disk
or a failing device would, so the code under test runs unchanged against a real store.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mud_ryu.api.backend import EnforcerBackend
from mud_ryu.api.handlers import handle
from mud_ryu.enforcer.core import FlowUpdate, ResolveRequest
from mud_ryu.enforcer.devicestore import DeviceRecord, DeviceStore, StoreError
from mud_ryu.enforcer.state import Effect
from tests.enforcer_lab import BULB, NOW, PEER_PORT, Lab, device_rules
from tests.mudfiles import ip_mud_file

V1 = "https://mud.test/bulb/v1.json"
TOKEN = "store-failure-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _fail(path: str, table: str, operation: str) -> None:
    """Make every ``operation`` (INSERT, UPDATE, DELETE) on ``table`` fail with an SQLite error."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        f"CREATE TRIGGER fail_{table}_{operation.lower()} BEFORE {operation} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
    )
    conn.close()


def _heal(path: str, table: str, operation: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"DROP TRIGGER fail_{table}_{operation.lower()}")
    conn.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    running = Lab(tmp_path / "state")
    running.connect()
    running.announce(BULB, 1, V1)
    running.resolve(V1, ip_mud_file(V1, port=443))
    assert _allows(running, 443)
    yield running
    running.store.close()
    running.trust_store.close()


def _allows(lab: Lab, port: int) -> bool:
    return lab.sim.is_output(lab.tcp(BULB, 1, port), PEER_PORT)


def _call(lab: Lab, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any], list[Effect]]:
    """One request through the real handler and backend. Flow updates reach the simulated switch; the barrier's
    confirmation (a later event in the app, which saves the device row again) is left out: its store failure is not
    the action's."""
    executed: list[Effect] = []

    def execute(effects: Iterable[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, FlowUpdate):
                lab.sim.add_all(effect.adds)
                for rule in effect.deletes:
                    lab.sim.delete_strict(rule.table, rule.priority, rule.match)
            executed.append(effect)

    backend = EnforcerBackend(lab.enforcer, [], execute, lambda: NOW)
    raw = b"" if body is None else json.dumps(body).encode()
    response = handle(method, path, AUTH, raw, backend, TOKEN)
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return response.status, document, executed


def test_device_store_write_failures_are_store_errors(tmp_path: Path) -> None:
    path = str(tmp_path / "devices.sqlite3")
    store = DeviceStore.open(path)
    record = DeviceRecord(BULB, 1, 1, 1, None, "dhcpv4", "quarantined", None, "", 0.0)
    store.save_device(record)
    _fail(path, "device", "INSERT")
    _fail(path, "device", "DELETE")
    with pytest.raises(StoreError, match="unavailable: device"):
        store.save_device(record)
    with pytest.raises(StoreError, match="unavailable: device"):
        store.forget(BULB)
    store.close()
    with pytest.raises(StoreError, match="unavailable"):
        store.devices()  # a closed store too: never a raw sqlite3 exception


def test_revoke_quarantines_even_when_the_device_row_cannot_be_written(lab: Lab) -> None:
    _fail(lab.settings.device_db_path, "device", "INSERT")
    status, document, executed = _call(lab, "POST", f"/mud/v1/devices/{BULB}/revoke")
    assert (status, document["error"]) == (503, "store-failed"), document
    assert executed and not _allows(lab, 443)  # the flows were narrowed anyway
    assert lab.enforcer.devices[BULB].state == "quarantined"


def test_forget_drops_the_flows_even_when_the_device_row_cannot_be_deleted(lab: Lab) -> None:
    _fail(lab.settings.device_db_path, "device", "DELETE")
    status, document, _ = _call(lab, "DELETE", f"/mud/v1/devices/{BULB}")
    assert (status, document["error"]) == (503, "store-failed"), document
    assert device_rules(lab, BULB) == []
    assert lab.trust_store.records() != []  # trust is kept while the device row is: they go together
    _heal(lab.settings.device_db_path, "device", "DELETE")
    status, document, _ = _call(lab, "DELETE", f"/mud/v1/devices/{BULB}")  # the operator can retry
    assert (status, document["reason"]) == (200, "forgotten"), document
    assert lab.store.devices() == [] and lab.trust_store.records() == []


def test_approve_with_a_failing_device_store_is_503_and_fetches_nothing(lab: Lab) -> None:
    revoked = _call(lab, "POST", f"/mud/v1/devices/{BULB}/revoke")
    assert revoked[0] == 200
    _fail(lab.settings.device_db_path, "device", "INSERT")
    chosen = {"url": V1, "sha256": hashlib.sha256(ip_mud_file(V1, port=443)).hexdigest(), "chosen": True}
    status, document, executed = _call(lab, "POST", f"/mud/v1/devices/{BULB}/approve", chosen)
    assert (status, document["error"]) == (503, "store-failed"), document
    assert not [e for e in executed if isinstance(e, ResolveRequest)] and not _allows(lab, 443)


def test_my_controller_set_with_a_failing_store_is_503_and_changes_nothing(lab: Lab) -> None:
    _fail(lab.settings.device_db_path, "my_controller", "INSERT")
    table = lab.sim.table_hash()
    status, document, _ = _call(lab, "PUT", "/mud/v1/my-controller", {"url": V1, "addresses": ["198.51.100.1"]})
    assert (status, document["error"]) == (503, "store-failed"), document
    assert lab.sim.table_hash() == table and lab.enforcer.my_controller_entries() == []
    _call(lab, "DELETE", f"/mud/v1/my-controller?url={quote(V1, safe='')}")
    assert lab.enforcer.my_controller_entries() == []
