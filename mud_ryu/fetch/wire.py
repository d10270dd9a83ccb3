"""The line protocol between the controller and its MUD resolver worker process (JSON, one object per line).

Why a separate process: fetching, decompressing and validating attacker-chosen content is the riskiest work the
system does. In its own process it runs under memory limits, blocking I/O cannot stall the OpenFlow event loop,
and a crash costs one worker restart, not the controller. The controller receives the *verified bytes* and parses
them again itself, so nothing but plain data crosses the boundary (no pickle).

Request:  {"id": 7, "url": "https://...", "force": false, "now": 1767225600.0}
Result:   {"id": 7, "url": ..., "outcome": "fresh", "reason": "", "message": "", "retry_at": null,
           "expires_at": 1767398400.0, "sha256": "...", "signer": <Signer.to_json()> or null,
           "signed_until": <when the verified chain's first certificate expires> or null,
           "body_b64": "...", "alert": false}
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from mud_ryu.fetch.manager import MudRequest, MudResolution
from mud_ryu.fetch.refresh import Outcome, alerts
from mud_ryu.fetch.signature import Signer

MAX_LINE_BYTES = 4 << 20  # a 1 MiB body in base64 plus metadata; longer lines are a protocol error


class WireError(ValueError):
    """A line that is not a well-formed message of this protocol."""


@dataclass(frozen=True, slots=True)
class WireRequest:
    id: int
    request: MudRequest
    now: float


@dataclass(frozen=True, slots=True)
class WireNamesRequest:
    """Resolve these DNS names through the configured resolvers (a profile was loaded)."""

    id: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WireNames:
    """The addresses (and TTL) of the names that resolved; names that did not are absent."""

    id: int
    answers: dict[str, tuple[tuple[str, ...], float]]


@dataclass(frozen=True, slots=True)
class WireResult:
    """A resolution as the controller sees it: ``body`` to re-parse, instead of the worker's parsed objects."""

    id: int
    url: str
    outcome: Outcome
    reason: str
    message: str
    retry_at: float | None
    expires_at: float | None
    sha256: str | None
    signer: Signer | None
    body: bytes
    signed_until: float | None = None  # the signer's verification holds until then (None: unsigned, or not known)

    @property
    def alert(self) -> bool:
        return alerts(self.outcome)


def _load(line: bytes | str) -> dict[str, Any]:
    if len(line) > MAX_LINE_BYTES:
        raise WireError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("a message must be a JSON object")
    return obj


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{key} must be a non-negative integer")
    return value


def _time(obj: dict[str, Any], key: str, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireError(f"{key} must be a finite number")
    return float(value)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise WireError(f"{key} must be a string")
    return value


def encode_request(ident: int, request: MudRequest, now: float) -> bytes:
    return json.dumps({"id": ident, "url": request.url, "force": request.force, "now": now}).encode() + b"\n"


MAX_NAMES = 256


def encode_names_request(ident: int, names: tuple[str, ...]) -> bytes:
    return json.dumps({"id": ident, "names": list(names)}).encode() + b"\n"


def encode_names_result(ident: int, answers: dict[str, tuple[tuple[str, ...], float]]) -> bytes:
    body = {name: {"addresses": list(addrs), "ttl": ttl} for name, (addrs, ttl) in answers.items()}
    return json.dumps({"id": ident, "answers": body}).encode() + b"\n"


def decode_any_request(line: bytes | str) -> WireRequest | WireNamesRequest:
    obj = _load(line)
    if "names" not in obj:
        return decode_request(line)
    names = obj["names"]
    if not isinstance(names, list) or len(names) > MAX_NAMES or not all(isinstance(n, str) and n for n in names):
        raise WireError(f"names must be a list of at most {MAX_NAMES} non-empty strings")
    return WireNamesRequest(_int(obj, "id"), tuple(names))


def decode_any_result(line: bytes | str) -> WireResult | WireNames:
    obj = _load(line)
    if "answers" not in obj:
        return decode_result(line)
    answers = obj["answers"]
    if not isinstance(answers, dict) or len(answers) > MAX_NAMES:
        raise WireError("answers must be an object")
    out: dict[str, tuple[tuple[str, ...], float]] = {}
    for name, entry in answers.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("addresses"), list):
            raise WireError("an answer needs addresses")
        addrs = entry["addresses"]
        if not all(isinstance(a, str) for a in addrs):
            raise WireError("addresses must be strings")
        ttl = _time(entry, "ttl")
        assert ttl is not None
        out[name] = (tuple(addrs), ttl)
    return WireNames(_int(obj, "id"), out)


def decode_request(line: bytes | str) -> WireRequest:
    obj = _load(line)
    force = obj.get("force", False)
    if not isinstance(force, bool):
        raise WireError("force must be a boolean")
    now = _time(obj, "now")
    assert now is not None
    return WireRequest(_int(obj, "id"), MudRequest(_str(obj, "url"), force), now)


def encode_result(ident: int, resolution: MudResolution) -> bytes:
    signer = resolution.signer
    message = {
        "id": ident,
        "url": resolution.url,
        "outcome": resolution.outcome.value,
        "reason": resolution.reason,
        "message": resolution.message,
        "retry_at": resolution.retry_at,
        "expires_at": resolution.expires_at,
        "sha256": resolution.sha256,
        "signer": None if signer is None else signer.to_json(),
        "signed_until": None if signer is None else signer.valid_until,
        "body_b64": base64.b64encode(resolution.body).decode() if resolution.mud is not None else "",
        "alert": resolution.alert,
    }
    return json.dumps(message).encode() + b"\n"


def _signer(value: object) -> Signer | None:
    if value is None:
        return None
    try:
        return Signer.from_json(value)
    except ValueError as exc:
        raise WireError(f"signer: {exc}") from None


def decode_result(line: bytes | str) -> WireResult:
    obj = _load(line)
    try:
        outcome = Outcome(_str(obj, "outcome"))
        body = base64.b64decode(_str(obj, "body_b64"), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise WireError(f"bad outcome or body: {exc}") from None
    sha = obj.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise WireError("sha256 must be a string or null")
    return WireResult(
        id=_int(obj, "id"),
        url=_str(obj, "url"),
        outcome=outcome,
        reason=_str(obj, "reason"),
        message=_str(obj, "message"),
        retry_at=_time(obj, "retry_at", optional=True),
        expires_at=_time(obj, "expires_at", optional=True),
        sha256=sha,
        signer=_signer(obj.get("signer")),
        body=body,
        signed_until=_time(obj, "signed_until", optional=True),
    )
