"""The MUD manager: turn a MUD URL into the verified MUD file to enforce (RFC 8520 s1.5, s13, s16).

One call, ``MudManager.resolve(request, now)``, does: URL gate -> cache and negative cache -> (conditional) fetch
-> strict validation -> the file must name the URL it was fetched from -> detached signature fetched from the same
host and verified -> cache. Whatever fails, the answer never widens what a device may reach: a failed refresh
keeps the last verified file (KEPT_LAST, alert), a device with no verified file ever stays quarantined
(FIRST_CONTACT_FAILED, alert). The clock is an argument, so the enforcer's worker and the tests drive time.

Blocking (it fetches): call it from a worker, never from the OpenFlow event loop.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

from cryptography import x509

from mud_ryu.fetch import refresh
from mud_ryu.fetch.cache import CacheEntry, CacheError, MudCache
from mud_ryu.fetch.fetcher import Fetcher
from mud_ryu.fetch.refresh import AGED_SIGNATURE, Action, BackoffPolicy, Outcome
from mud_ryu.fetch.signature import SignatureError, Signer, verify_detached
from mud_ryu.fetch.types import SIGNATURE_CONTENT_TYPE, FetchError, FetchStatus, Validators
from mud_ryu.fetch.urlgate import MudUrl
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import ParsedMud

log = logging.getLogger(__name__)

MAX_SIGNATURE_BYTES = 64 * 1024  # a CMS signature with a 3-certificate chain is a few KiB
_PARSED_CACHE_SIZE = 256


class SignaturePolicy(enum.Enum):
    REQUIRED = "required"  # default: an unsigned or badly signed file is refused
    IF_PRESENT = "if-present"  # verify when the file names a signature; accept unsigned files (unsigned = no pin)
    OFF = "off"  # labs only: never fetch or check signatures


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    signature_policy: SignaturePolicy = SignaturePolicy.REQUIRED
    trust_anchors: tuple[x509.Certificate, ...] = ()
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    # RFC 8520 s3.3: the file's own mud-url must be the URL it was fetched from; off only for replaying old files.
    require_matching_mud_url: bool = True


@dataclass(frozen=True, slots=True)
class MudRequest:
    url: str
    force: bool = False  # operator "refresh now": ignore freshness and backoff


@dataclass(frozen=True, slots=True)
class MudResolution:
    """The result event of one request. ``mud`` is what to enforce now (None -> quarantine)."""

    url: str
    outcome: Outcome
    mud: ParsedMud | None
    signer: Signer | None
    sha256: str | None
    expires_at: float | None
    reason: str = ""  # "<stage>:<code>" of the failure (stage: url, fetch, mud, signature-fetch, signature)
    message: str = ""
    retry_at: float | None = None
    body: bytes = b""  # the exact verified bytes of ``mud`` (what a worker process hands to the controller)

    @property
    def alert(self) -> bool:
        return refresh.alerts(self.outcome)


class _Failure(Exception):
    def __init__(self, stage: str, code: str, message: str) -> None:
        super().__init__(message)
        self.reason = f"{stage}:{code}"
        self.message = message


class MudManager:
    """Resolves MUD URLs for many devices at once; one fetch per URL at a time (single flight)."""

    def __init__(self, fetcher: Fetcher, cache: MudCache, settings: ManagerSettings | None = None) -> None:
        self._fetcher = fetcher
        self._cache = cache
        self._settings = settings or ManagerSettings()
        self._locks_guard = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self._parsed_guard = threading.Lock()
        self._parsed: OrderedDict[str, ParsedMud] = OrderedDict()  # sha256 -> parsed: re-parsing costs ms

    def resolve(self, request: MudRequest, now: float) -> MudResolution:
        try:
            target = self._fetcher.gate(request.url)
        except FetchError as error:
            # Never fetched and never cached under this string: the device stays quarantined.
            return MudResolution(
                request.url, Outcome.FIRST_CONTACT_FAILED, None, None, None, None, f"url:{error.detail}", error.message
            )
        with self._url_lock(target.url):
            return self._resolve_locked(target, request.force, now)

    def _url_lock(self, url: str) -> threading.Lock:
        with self._locks_guard:
            return self._url_locks.setdefault(url, threading.Lock())

    def _cached_entry(self, url: str, now: float) -> tuple[CacheEntry | None, str]:
        """The cached entry of ``url`` as the signature policy in force allows it to be served, with the signer its
        verification at ``now`` found (never the stored column: a row can be edited on disk), and "" -- or, for an
        entry whose signature was valid when fetched but whose signer is expired or not yet valid at ``now``, the
        entry with the aged reason (``signature:expired``): never served as fresh, and kept in force only for
        devices that already hold it (the enforcer decides). An entry that fails the policy for any other reason
        (unsigned under ``required``, an edited signature, an anchor since removed) is set aside as evidence and
        refetched."""
        try:
            entry = self._cache.get(url)
        except CacheError as error:
            log.warning("MUD cache entry for %s dropped: %s (%s)", url, error.message, error.reason)
            return None, ""
        if entry is None:
            return None, ""
        policy = self._settings.signature_policy
        if policy is SignaturePolicy.OFF:
            return dataclasses.replace(entry, signer=None), ""
        if entry.signature is None:
            if policy is SignaturePolicy.IF_PRESENT and not self._names_signature(entry):
                return dataclasses.replace(entry, signer=None), ""
            return self._set_aside(entry, "signature:missing", now)
        anchors = self._settings.trust_anchors
        try:
            signer = verify_detached(entry.body, entry.signature, anchors, _utc(now))
        except SignatureError as error:
            if error.reason not in AGED_SIGNATURE:
                return self._set_aside(entry, f"signature:{error.reason}", now)
            aged = f"signature:{error.reason}"
        else:
            return dataclasses.replace(entry, signer=signer), ""
        try:
            # Aged, but was it ever valid? Verified at the time it was first obtained, or it is not ours to keep.
            signer = verify_detached(entry.body, entry.signature, anchors, _utc(entry.fetched_at))
        except SignatureError as error:
            return self._set_aside(entry, f"signature:{error.reason}", now)
        return dataclasses.replace(entry, signer=signer), aged

    def _names_signature(self, entry: CacheEntry) -> bool:
        try:
            return self._parsed_body(entry).mud.mud_signature is not None
        except MudFileError:
            return True  # it will not be served anyway (_from_entry refuses it); never guess "unsigned"

    def _set_aside(self, entry: CacheEntry, reason: str, now: float) -> tuple[None, str]:
        log.warning("cached MUD file for %s fails the signature policy in force (%s): set aside, refetching",
                    entry.url, reason)  # fmt: skip
        self._cache.set_aside(entry.url, reason, now)
        return None, ""

    def _resolve_locked(self, target: MudUrl, force: bool, now: float) -> MudResolution:
        url = target.url
        entry, aged = self._cached_entry(url, now)
        failure = self._cache.failure(url)
        # An aged entry is stale whatever its cache-validity says: revalidated, within the backoff of its failures.
        expiry = None if entry is None else min(entry.expires_at, now) if aged else entry.expires_at
        plan = refresh.plan(now, expiry, None if force else failure)
        if plan.action is Action.USE_CACHED and not force and entry is not None:
            return self._from_entry(entry, Outcome.CACHED)
        if plan.action is Action.WAIT:
            # An aged entry answers with its own reason, whatever started the backoff: it is never fresh policy.
            reason = aged or (f"backoff:{failure.last_reason}" if failure else "backoff")
            if entry is not None:
                return self._from_entry(entry, Outcome.BACKOFF, reason, "retry pending", plan.not_before)
            return MudResolution(url, Outcome.BACKOFF, None, None, None, None, reason, "retry pending", plan.not_before)
        try:
            resolution = self._fetch_and_verify(target, entry, bool(aged), now)
        except _Failure as failed:
            record = refresh.record_failure(failure, url, failed.reason, now, self._settings.backoff)
            self._cache.put_failure(record)
            log.warning("MUD URL %s failed: %s (%s)", url, failed.message, failed.reason)
            if entry is not None:
                reason, message = failed.reason, failed.message
                if aged:
                    reason, message = aged, f"{failed.reason}: {failed.message}"
                return self._from_entry(entry, Outcome.KEPT_LAST, reason, message, record.next_attempt_at)
            return MudResolution(
                url, Outcome.FIRST_CONTACT_FAILED, None, None, None, None, failed.reason, failed.message,
                record.next_attempt_at,
            )  # fmt: skip
        if failure is not None:
            self._cache.clear_failure(url)
        return resolution

    def _fetch_and_verify(self, target: MudUrl, entry: CacheEntry | None, aged: bool, now: float) -> MudResolution:
        try:
            fetched = self._fetcher.fetch(target.url, validators=entry.validators if entry else None)
        except FetchError as error:
            raise _Failure("fetch", error.reason, error.message) from None
        if entry is not None and (
            fetched.status is FetchStatus.NOT_MODIFIED or hashlib.sha256(fetched.body).hexdigest() == entry.sha256
        ):
            if aged:
                # Same content, but its signer aged: the manufacturer may have signed it again. Only a signature
                # valid now renews it; otherwise the failure keeps the aged reason.
                return self._resigned(target, entry, fetched.validators, now)
            renewed = self._cache.renew(target.url, fetched.validators, now)
            # The signer verified at now (entry's, from _cached_entry), not the stored column.
            return self._from_entry(dataclasses.replace(renewed, signer=entry.signer) if renewed else entry,
                                    Outcome.RENEWED)  # fmt: skip
        if fetched.status is FetchStatus.NOT_MODIFIED:
            raise _Failure("fetch", "unexpected-304", "304 Not Modified to an unconditional request")
        parsed = self._parse(fetched.body, target)
        signature, signer = self._signature(target, parsed, fetched.body, now)
        new = CacheEntry.create(
            target.url, fetched.body, signature, signer, fetched.validators, parsed.mud.cache_validity, now
        )
        self._cache.put(new)
        self._remember(new.sha256, parsed)
        return MudResolution(target.url, Outcome.FRESH, parsed, signer, new.sha256, new.expires_at, body=fetched.body)

    def _resigned(self, target: MudUrl, entry: CacheEntry, validators: Validators, now: float) -> MudResolution:
        try:
            parsed = self._parsed_body(entry)
        except MudFileError as error:
            # Cached before a stricter validator: it no longer validates, whatever signs it.
            self._cache.set_aside(entry.url, f"mud:{error.finding.reason}", now)
            raise _Failure("mud", error.finding.reason, "the cached file no longer validates") from None
        signature, signer = self._signature(target, parsed, entry.body, now)
        new = CacheEntry.create(target.url, entry.body, signature, signer, validators, parsed.mud.cache_validity, now)
        self._cache.put(new)
        return self._from_entry(new, Outcome.RENEWED)

    def _parsed_body(self, entry: CacheEntry) -> ParsedMud:
        with self._parsed_guard:
            parsed = self._parsed.get(entry.sha256)
        if parsed is None:
            parsed = mudfile.parse(entry.body)
            self._remember(entry.sha256, parsed)
        return parsed

    def _parse(self, body: bytes, target: MudUrl) -> ParsedMud:
        try:
            parsed = mudfile.parse(body)
        except MudFileError as error:
            raise _Failure("mud", error.finding.reason, f"{error.finding.path}: {error.finding.message}") from None
        try:
            named = self._fetcher.gate(parsed.mud.mud_url).url
        except FetchError as error:
            # Invalid, never replaced by the fetched URL: the update policy compares the two on first use.
            why = f"the file's mud-url {parsed.mud.mud_url!r}: {error.message}"
            raise _Failure("mud", "bad-mud-url", why) from None
        if self._settings.require_matching_mud_url and named != target.url:
            raise _Failure("mud", "mud-url-mismatch", f"the file names {parsed.mud.mud_url!r}, not {target.url}")
        return parsed

    def _signature(
        self, target: MudUrl, parsed: ParsedMud, body: bytes, now: float
    ) -> tuple[bytes | None, Signer | None]:
        policy = self._settings.signature_policy
        reference = parsed.mud.mud_signature
        if policy is SignaturePolicy.OFF or (reference is None and policy is SignaturePolicy.IF_PRESENT):
            return None, None
        if reference is None:
            raise _Failure("signature", "missing", "the MUD file names no mud-signature and signatures are required")
        try:
            sig_url = self._fetcher.gate(urljoin(target.url, reference))
        except FetchError as error:
            raise _Failure("signature-fetch", "bad-url", error.message) from None
        if (sig_url.host, sig_url.port) != (target.host, target.port):
            raise _Failure(
                "signature-fetch", "cross-host", f"mud-signature {sig_url.authority} is not on {target.authority}"
            )
        try:
            signature = self._fetcher.fetch(
                sig_url.url, accept=SIGNATURE_CONTENT_TYPE, max_bytes=MAX_SIGNATURE_BYTES
            ).body
        except FetchError as error:
            raise _Failure("signature-fetch", error.reason, error.message) from None
        try:
            signer = verify_detached(body, signature, self._settings.trust_anchors, _utc(now))
        except SignatureError as error:
            raise _Failure("signature", error.reason, error.message) from None
        return signature, signer

    def _from_entry(
        self, entry: CacheEntry, outcome: Outcome, reason: str = "", message: str = "", retry_at: float | None = None
    ) -> MudResolution:
        try:
            parsed = self._parsed_body(entry)
        except MudFileError as error:
            # Verified once, now refused (a stricter validator after an upgrade): enforce nothing from it.
            self._cache.delete(entry.url)
            return MudResolution(
                entry.url, refresh.failed_outcome(False), None, None, None, None,
                f"mud:{error.finding.reason}", "the cached file no longer validates",
            )  # fmt: skip
        return MudResolution(
            entry.url, outcome, parsed, entry.signer, entry.sha256, entry.expires_at, reason, message, retry_at,
            entry.body,
        )  # fmt: skip

    def _remember(self, sha256: str, parsed: ParsedMud) -> None:
        with self._parsed_guard:
            self._parsed[sha256] = parsed
            self._parsed.move_to_end(sha256)
            while len(self._parsed) > _PARSED_CACHE_SIZE:
                self._parsed.popitem(last=False)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
