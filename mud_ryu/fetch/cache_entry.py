"""A cached MUD file (:class:`CacheEntry`) and the conversion of entries and failure records to and from rows.

Kept apart from :mod:`mud_ryu.fetch.cache` (the cache's operations) because this is the decoder every stored value
passes through on its way back into the enforcer: a row that can be edited on disk is untrusted input
(THREATS.md R2), so each column is checked for type and range here, in one place, and a failure is a
``ValueError``/``TypeError`` that the cache turns into ``corrupt-entry``. The signer is stored as JSON, never
pickled: a store that can be edited must not become code execution.

The column lists match the tables that :mod:`mud_ryu.fetch.cache_schema` creates, in the order the row tuples use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from mud_ryu.fetch.refresh import MAX_CACHE_VALIDITY_H, MIN_CACHE_VALIDITY_H, FailureRecord, clamp_validity, expiry
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.types import Validators

ENTRY_COLUMNS = (
    "url, body, sha256, signature, signer, etag, last_modified, cache_validity_h, fetched_at, validated_at, expires_at"
)
FAILURE_COLUMNS = "url, failures, first_failure_at, last_failure_at, last_reason, next_attempt_at"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One verified MUD file as cached. ``fetched_at``: when this content was first obtained and verified;
    ``validated_at``: the last successful fetch or 304; ``expires_at``: when it must be revalidated."""

    url: str
    body: bytes
    sha256: str  # lower-case hex SHA-256 of body
    signature: bytes | None
    signer: Signer | None
    validators: Validators
    cache_validity_h: int
    fetched_at: float
    validated_at: float
    expires_at: float

    def __post_init__(self) -> None:
        # Checked on every construction, which includes every read from disk: an entry that exists is sound.
        if not isinstance(self.url, str) or not self.url:
            raise ValueError("cache entry needs a URL")
        if not isinstance(self.body, bytes) or hashlib.sha256(self.body).hexdigest() != self.sha256:
            raise ValueError("body does not hash to sha256")
        if self.signature is not None and not isinstance(self.signature, bytes):
            raise ValueError("signature must be bytes or None")
        if self.signer is not None and not isinstance(self.signer, Signer):
            raise ValueError("signer must be a Signer or None")
        if not isinstance(self.validators, Validators):
            raise ValueError("validators must be Validators")
        if (
            isinstance(self.cache_validity_h, bool)
            or not isinstance(self.cache_validity_h, int)
            or not MIN_CACHE_VALIDITY_H <= self.cache_validity_h <= MAX_CACHE_VALIDITY_H
        ):
            raise ValueError(f"cache_validity_h out of range: {self.cache_validity_h!r}")
        expiry(self.fetched_at, self.cache_validity_h)  # checks fetched_at is a finite time
        if expiry(self.validated_at, self.cache_validity_h) < self.expires_at or self.expires_at < self.validated_at:
            raise ValueError("expires_at must lie within cache_validity_h after validated_at")

    @classmethod
    def create(
        cls,
        url: str,
        body: bytes,
        signature: bytes | None,
        signer: Signer | None,
        validators: Validators,
        cache_validity_h: int | None,
        now: float,
    ) -> CacheEntry:
        """A freshly fetched and verified file: hash computed, validity clamped to 1..168 h, expiry from now."""
        hours = clamp_validity(cache_validity_h)
        return cls(
            url=url,
            body=body,
            sha256=hashlib.sha256(body).hexdigest(),
            signature=signature,
            signer=signer,
            validators=validators,
            cache_validity_h=hours,
            fetched_at=now,
            validated_at=now,
            expires_at=expiry(now, hours),
        )

    def renewed(self, validators: Validators, now: float) -> CacheEntry:
        """The same content confirmed again at ``now`` (a 304): expiry restarts from now. A 304 may omit the
        validators (RFC 9110 s15.4.5 only says SHOULD), so a missing one keeps the remembered value."""
        merged = Validators(
            etag=validators.etag if validators.etag is not None else self.validators.etag,
            last_modified=validators.last_modified
            if validators.last_modified is not None
            else self.validators.last_modified,
        )
        return replace(self, validators=merged, validated_at=now, expires_at=expiry(now, self.cache_validity_h))


def _signer_json(signer: Signer | None) -> str | None:
    return None if signer is None else json.dumps(signer.to_json(), sort_keys=True)


def _signer_from_json(text: object) -> Signer | None:
    """The stored signer: informative only (what is served carries the signer its re-verification found)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("signer column is not text")
    return Signer.from_json(json.loads(text))


def _optional_text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("text column holds a non-text value")
    return value


def entry_to_row(entry: CacheEntry) -> tuple[object, ...]:
    """The values of ``entry`` in :data:`ENTRY_COLUMNS` order."""
    return (
        entry.url,
        entry.body,
        entry.sha256,
        entry.signature,
        _signer_json(entry.signer),
        entry.validators.etag,
        entry.validators.last_modified,
        entry.cache_validity_h,
        entry.fetched_at,
        entry.validated_at,
        entry.expires_at,
    )


def entry_from_row(row: tuple[Any, ...]) -> CacheEntry:
    """A row in :data:`ENTRY_COLUMNS` order as a checked entry; ``ValueError``/``TypeError`` if any column is
    wrong (construction re-checks the hash, ranges and types)."""
    url, body, sha, signature, signer, etag, last_modified, hours, fetched, validated, expires = row
    return CacheEntry(
        url=url,
        body=body,
        sha256=sha,
        signature=signature,
        signer=_signer_from_json(signer),
        validators=Validators(etag=_optional_text(etag), last_modified=_optional_text(last_modified)),
        cache_validity_h=hours,
        fetched_at=fetched,
        validated_at=validated,
        expires_at=expires,
    )


def failure_to_row(record: FailureRecord) -> tuple[object, ...]:
    """The values of ``record`` in :data:`FAILURE_COLUMNS` order."""
    return (
        record.url,
        record.failures,
        record.first_failure_at,
        record.last_failure_at,
        record.last_reason,
        record.next_attempt_at,
    )


def failure_from_row(row: tuple[Any, ...]) -> FailureRecord:
    """A row in :data:`FAILURE_COLUMNS` order as a failure record (whose constructor checks every field)."""
    url, failures, first, last, reason, next_at = row
    return FailureRecord(url, failures, first, last, reason, next_at)
