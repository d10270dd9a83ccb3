"""Rows of the trust store <-> the policy's frozen values, checked on the way back in.

JSON for the nested values (signer, pending change, decisions), never pickle: a store file that can be edited must
not become code execution. Every value read back is checked for type and range; anything else is
``TrustStoreError("corrupt-record")`` -- the enforcer then fails closed (THREATS.md R3) rather than guessing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mud_ryu.errors import ReasonError
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import MudUrl
from mud_ryu.policy.rules import canonical_problem
from mud_ryu.policy.types import (
    REASONS,
    Accepted,
    Decision,
    DeviceId,
    Pending,
    PendingStatus,
    TrustRecord,
    TrustState,
    Verdict,
    is_sha256,
)

STORE_REASONS: frozenset[str] = frozenset(
    {"corrupt-database", "corrupt-record", "schema-too-new", "unavailable", "history-rewrite"}
)
DEVICE_COLUMNS = (
    "dpid, port, mac, state, root_url, canonical, current_url, current_sha256, signer, pending, last_decision, "
    "changed_at, history_len"
)
_PENDING_STATUSES: dict[str, PendingStatus] = {
    "fetching": "fetching",
    "needs-approval": "needs-approval",
    "approved": "approved",
}


class TrustStoreError(ReasonError):
    """The trust store cannot give a trustworthy answer; ``reason`` is one of STORE_REASONS."""


def _bad(what: str) -> TrustStoreError:
    return TrustStoreError("corrupt-record", what)


def _str(value: object, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{what} is not a non-empty string: {value!r}")
    return value


def _time(value: object, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{what} is not a finite time: {value!r}")
    return float(value)


def _json(text: object, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(_str(text, what))
    except ValueError as exc:
        raise _bad(f"{what} is not JSON: {exc}") from None


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ---- nested values -------------------------------------------------------------------------------------------


def signer_to_json(signer: Signer | None) -> str | None:
    return None if signer is None else _dump(signer.to_json())


def signer_from_json(text: object) -> Signer | None:
    """A pin; one stored before the CA's SPKI was recorded decodes with ``ca_spki`` None (a legacy pin)."""
    data = _json(text, "signer")
    if data is None:
        return None
    try:
        return Signer.from_json(data)
    except ValueError as exc:
        raise _bad(str(exc)) from None


def mudurl_to_json(url: MudUrl | None) -> str | None:
    if url is None:
        return None
    return _dump({"url": url.url, "host": url.host, "port": url.port, "segments": list(url.path_segments)})


def mudurl_from_json(text: object) -> MudUrl | None:
    data = _json(text, "canonical URL")
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) != {"url", "host", "port", "segments"}:
        raise _bad("canonical URL has the wrong shape")
    port, segments = data["port"], data["segments"]
    if isinstance(port, bool) or not isinstance(port, int) or not isinstance(segments, list):
        raise _bad("canonical URL port/segments have the wrong type")
    if not all(isinstance(s, str) for s in segments):
        raise _bad("canonical URL segments are not strings")
    url = MudUrl(_str(data["url"], "url"), _str(data["host"], "host"), port, tuple(segments))
    problem = canonical_problem(url)
    if problem is not None:
        raise _bad(f"canonical URL is not canonical: {problem}")
    return url


def pending_to_json(pending: Pending | None) -> str | None:
    if pending is None:
        return None
    fields: dict[str, object] = {"url": pending.url, "status": pending.status, "reason": pending.reason,
                                 "at": pending.at}  # fmt: skip
    if pending.sha256 is not None:  # written only when known: a record from before digests reads back the same
        fields["sha256"] = pending.sha256
    return _dump(fields)


def pending_from_json(text: object) -> Pending | None:
    data = _json(text, "pending")
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"sha256"} != {"url", "status", "reason", "at"}:
        raise _bad("pending change has the wrong shape")
    sha256 = data.get("sha256")
    if sha256 is not None and not is_sha256(sha256):
        raise _bad("pending sha256 is not 64 lower-case hex digits")
    status = _PENDING_STATUSES.get(data["status"]) if isinstance(data["status"], str) else None
    if status is None:
        raise _bad(f"pending status {data['status']!r} is unknown")
    reason = _str(data["reason"], "pending reason")
    if reason not in REASONS:
        raise _bad(f"pending reason {reason!r} is unknown")
    return Pending(_str(data["url"], "pending url"), status, reason, _time(data["at"], "pending at"), sha256)


def decision_to_json(decision: Decision | None) -> str | None:
    if decision is None:
        return None
    return _dump(decision_fields(decision))


def decision_fields(d: Decision) -> dict[str, object]:
    return {
        "verdict": d.verdict.value,
        "reason": d.reason_code,
        "rule_id": d.rule_id,
        "message": d.message,
        "url": d.url,
        "at": d.at,
    }


def decision_from_fields(data: object) -> Decision:
    if not isinstance(data, dict) or set(data) != {"verdict", "reason", "rule_id", "message", "url", "at"}:
        raise _bad("decision has the wrong shape")
    try:
        verdict = Verdict(data["verdict"])
    except ValueError:
        raise _bad(f"decision verdict {data['verdict']!r} is unknown") from None
    reason = _str(data["reason"], "decision reason")
    if reason not in REASONS:
        raise _bad(f"decision reason {reason!r} is unknown")
    message = data["message"]
    if not isinstance(message, str):
        raise _bad("decision message is not a string")
    return Decision(
        verdict,
        reason,
        _str(data["rule_id"], "rule id"),
        message,
        _str(data["url"], "decision url", optional=True),
        _time(data["at"], "decision at"),
    )


def decision_from_json(text: object) -> Decision | None:
    data = _json(text, "last decision")
    return None if data is None else decision_from_fields(data)


# ---- whole rows ----------------------------------------------------------------------------------------------


def identity_key(identity: DeviceId) -> tuple[int, int, str]:
    return (identity.dpid, identity.port, identity.mac)


def record_to_row(record: TrustRecord) -> tuple[object, ...]:
    return (
        *identity_key(record.identity),
        record.state.value,
        record.root_url,
        mudurl_to_json(record.canonical_url),
        record.current_url,
        record.current_sha256,
        signer_to_json(record.signer),
        pending_to_json(record.pending),
        decision_to_json(record.last_decision),
        record.changed_at,
        len(record.history),
    )


def history_from_rows(rows: list[tuple[Any, ...]], expected_len: int, what: str) -> tuple[Accepted, ...]:
    """History rows (seq, url, sha256, at) ordered by seq: gap-free from 0 and as long as the device row says."""
    if len(rows) != expected_len:
        raise _bad(f"{what}: {len(rows)} history entries, the record says {expected_len}")
    out: list[Accepted] = []
    for i, (seq, url, sha, at) in enumerate(rows):
        if seq != i:
            raise _bad(f"{what}: history sequence has a gap at {i}")
        out.append(Accepted(_str(url, "history url"), _str(sha, "history sha256"), _time(at, "history at")))
    return tuple(out)


def record_from_row(row: tuple[Any, ...], history: tuple[Accepted, ...]) -> TrustRecord:
    dpid, port, mac, state, root, canonical, current, sha, signer, pending, last, changed_at, _ = row
    if isinstance(dpid, bool) or not isinstance(dpid, int) or not isinstance(port, int) or isinstance(port, bool):
        raise _bad("identity has the wrong type")
    try:
        trust_state = TrustState(state)
    except ValueError:
        raise _bad(f"state {state!r} is unknown") from None
    record = TrustRecord(
        identity=DeviceId(dpid, port, _str(mac, "mac")),
        state=trust_state,
        root_url=_str(root, "root url", optional=True),
        canonical_url=mudurl_from_json(canonical),
        current_url=_str(current, "current url", optional=True),
        current_sha256=_str(sha, "current sha256", optional=True),
        signer=signer_from_json(signer),
        history=history,
        pending=pending_from_json(pending),
        last_decision=decision_from_json(last),
        changed_at=_time(changed_at, "changed_at", optional=True),
    )
    if trust_state is TrustState.TRUSTED and record.current_url is None:
        raise _bad("a trusted record without a current URL")
    if (record.current_url is None) != (record.canonical_url is None) or (record.current_url is None) != (
        record.current_sha256 is None
    ):
        raise _bad("current URL, its digest and the canonical URL are not all set or all unset")
    if record.current_url is not None and record.current_url not in record.accepted_urls():
        raise _bad("the current URL is not in the accepted history")
    return record
