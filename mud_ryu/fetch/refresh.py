"""When to fetch, revalidate or wait for a MUD file, and what one resolution ended as.

Pure policy: no clock, no I/O, no randomness. ``now`` is always an argument (float seconds since the epoch), so
the MUD manager, the cache and the tests all decide with the same function and the decisions are reproducible.

RFC 8520 s3.5: ``cache-validity`` is the number of hours (1..168, default 48) a MUD manager waits after the last
retrieval before checking for an update; expiry does NOT mean the file must be discarded. So an expired entry is
revalidated, and when that fails the last verified file stays in force (THREATS.md R10: never widen on failure).
Failing URLs go into a negative cache with exponential backoff (THREATS.md row 14) so that a dead or hostile
server is not hammered by every DHCP renewal of every device that names it.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass

DEFAULT_CACHE_VALIDITY_H = 48
MIN_CACHE_VALIDITY_H = 1
MAX_CACHE_VALIDITY_H = 168
_HOUR_S = 3600.0
# An expiry further ahead than the longest legal validity cannot come from a real retrieval: the clock stepped
# back (or the store was edited). Such an entry is treated as stale so that it gets revalidated, not trusted
# for longer than RFC 8520 allows.
MAX_VALIDITY_S = MAX_CACHE_VALIDITY_H * _HOUR_S


def clamp_validity(hours: int | None) -> int:
    """The cache-validity to apply: the YANG default when absent, else forced into 1..168 hours."""
    if hours is None:
        return DEFAULT_CACHE_VALIDITY_H
    if isinstance(hours, bool) or not isinstance(hours, int):
        raise TypeError(f"cache-validity must be an int number of hours, not {type(hours).__name__}")
    return max(MIN_CACHE_VALIDITY_H, min(MAX_CACHE_VALIDITY_H, hours))


def expiry(validated_at: float, cache_validity_h: int | None) -> float:
    """When an entry last validated at ``validated_at`` becomes stale."""
    _check_time(validated_at, "validated_at")
    return validated_at + clamp_validity(cache_validity_h) * _HOUR_S


def _check_time(value: float, name: str) -> None:
    # NaN compares false with everything, which would silently turn "is it fresh?" into "no" or "yes"
    # depending on how the comparison is written; refuse it at the door instead.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff of a failing URL: ``base_s * factor**(failures-1)``, capped at ``cap_s``, then
    stretched by a deterministic jitter of up to ``jitter`` (a fraction) of itself.

    The negative cache is keyed by URL, so devices that share a URL share one record and one retry. The jitter
    spreads *different* URLs that started failing together (one manufacturer's server down, an upstream outage):
    derived from a hash of (url, failures), they do not retry in lockstep, yet every run computes the same delay.
    ``factor >= 1 + jitter`` is required so that the jitter can never make a later delay shorter than an earlier
    one below the cap.
    """

    base_s: float = 30.0
    factor: float = 2.0
    cap_s: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        for name in ("base_s", "factor", "cap_s", "jitter"):
            _check_time(getattr(self, name), name)
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be a fraction in [0, 1)")
        if self.factor < 1 + self.jitter:
            raise ValueError("backoff factor must be at least 1 + jitter (delays must not shrink)")

    def raw_delay(self, failures: int) -> float:
        """The un-jittered delay after ``failures`` consecutive failures (>= 1)."""
        if failures < 1:
            raise ValueError("failures must be >= 1")
        if self.factor == 1:
            return self.base_s
        # Compare exponents rather than computing factor**n: n comes from a counter that may be large.
        steps_to_cap = math.log(self.cap_s / self.base_s, self.factor)
        if failures - 1 >= steps_to_cap:
            return self.cap_s
        return min(self.cap_s, self.base_s * self.factor ** (failures - 1))

    def delay(self, url: str, failures: int) -> float:
        """The jittered delay: within [raw, raw * (1 + jitter)), fixed for a given (url, failures)."""
        return self.raw_delay(failures) * (1 + self.jitter * jitter_fraction(url, failures))


def jitter_fraction(url: str, failures: int) -> float:
    """A number in [0, 1) that depends only on (url, failures): SHA-256, not ``hash()``, which is salted per
    process and would give each restart (and each worker process) a different schedule."""
    digest = hashlib.sha256(f"{failures}\n{url}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """The negative-cache entry of one URL: how often and since when its fetch has failed, and when to retry."""

    url: str
    failures: int
    first_failure_at: float
    last_failure_at: float
    last_reason: str  # a stable reason code (FetchError/SignatureError/...), never free text from the peer
    next_attempt_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ValueError("failure record needs a URL")
        if isinstance(self.failures, bool) or not isinstance(self.failures, int) or self.failures < 1:
            raise ValueError(f"failures must be an int >= 1, got {self.failures!r}")
        for name in ("first_failure_at", "last_failure_at", "next_attempt_at"):
            _check_time(getattr(self, name), name)
        if not isinstance(self.last_reason, str):
            raise ValueError("last_reason must be a string")


def record_failure(
    previous: FailureRecord | None, url: str, reason: str, now: float, policy: BackoffPolicy | None = None
) -> FailureRecord:
    """The record after one more failed attempt on ``url`` at ``now``; ``previous`` is the record so far."""
    _check_time(now, "now")
    policy = policy if policy is not None else BackoffPolicy()
    if previous is not None and previous.url != url:
        raise ValueError(f"failure record of {previous.url!r} handed in for {url!r}")
    failures = 1 if previous is None else previous.failures + 1
    return FailureRecord(
        url=url,
        failures=failures,
        first_failure_at=now if previous is None else previous.first_failure_at,
        last_failure_at=now,
        last_reason=reason,
        next_attempt_at=now + policy.delay(url, failures),
    )


class Action(enum.Enum):
    """What to do about one URL now."""

    USE_CACHED = "use-cached"  # the cached entry is fresh: no I/O
    REVALIDATE = "revalidate"  # the entry is stale: conditional fetch with its validators
    FETCH = "fetch"  # nothing cached: full fetch
    WAIT = "wait"  # the negative cache says not before ``not_before``; enforce what is in force meanwhile


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    not_before: float | None  # set for WAIT only: when the next attempt is allowed
    has_stale_entry: bool  # a (stale) verified entry exists: keep enforcing it, never widen


def is_fresh(now: float, entry_expiry: float) -> bool:
    """Fresh while ``now < expiry``, and only if the expiry is not implausibly far ahead (clock stepped back)."""
    return now < entry_expiry and entry_expiry - now <= MAX_VALIDITY_S


# A signer certificate valid when the file was fetched that has since expired (or whose validity has not begun at
# the current time, after a clock change): the file keeps its last verified standing at most, never fresh policy.
AGED_SIGNATURE = frozenset({"expired", "not-yet-valid"})
AGED_SIGNATURE_REASONS = frozenset(f"signature:{code}" for code in AGED_SIGNATURE)


def plan(now: float, entry_expiry: float | None, failure: FailureRecord | None) -> Plan:
    """Decide for one URL. A fresh entry wins over a failure record (a concurrent refresh may have succeeded
    after the record was written); a stale entry during backoff gives WAIT and the caller keeps the last
    verified file in force.

    A failure record whose ``last_failure_at`` lies after ``now`` means the clock went backwards: the backoff is
    then treated as elapsed, so a clock step can never freeze a URL (or a quarantined device) indefinitely.
    """
    _check_time(now, "now")
    if entry_expiry is not None:
        _check_time(entry_expiry, "entry_expiry")
        if is_fresh(now, entry_expiry):
            return Plan(Action.USE_CACHED, None, False)
    has_entry = entry_expiry is not None
    if failure is not None and failure.last_failure_at <= now < failure.next_attempt_at:
        return Plan(Action.WAIT, failure.next_attempt_at, has_entry)
    if has_entry:
        return Plan(Action.REVALIDATE, None, True)
    return Plan(Action.FETCH, None, False)


class Outcome(enum.Enum):
    """How one resolution of a MUD URL ended; the enforcer acts on it.

    ====================  ================================================  ==============================  =====
    outcome               meaning                                           enforcer                        alert
    ====================  ================================================  ==============================  =====
    FRESH                 a new file was fetched and verified               compile and install it          no
    RENEWED               304, or 200 with the same SHA-256: expiry moved   nothing changes                 no
    CACHED                a fresh cached entry was served, no I/O           install the cached policy       no
    KEPT_LAST             refresh failed (down, 5xx, oversize, bad sig...)  keep the last verified file:    yes
                                                                            flows stay byte-identical
    FIRST_CONTACT_FAILED  no verified file was ever obtained for the URL    keep the device in quarantine   yes
    BACKOFF               negative cache: not attempted this time           keep what is in force           no
    ====================  ================================================  ==============================  =====

    BACKOFF raises no alert of its own: the failure that started the backoff already did (KEPT_LAST or
    FIRST_CONTACT_FAILED), and repeating it on every DHCP renewal would be a log flood an attacker controls.
    """

    FRESH = "fresh"
    RENEWED = "renewed"
    CACHED = "cached"
    KEPT_LAST = "kept-last"
    FIRST_CONTACT_FAILED = "first-contact-failed"
    BACKOFF = "backoff"


_ALERTING = frozenset({Outcome.KEPT_LAST, Outcome.FIRST_CONTACT_FAILED})


def alerts(outcome: Outcome) -> bool:
    """Whether this outcome must raise an operator alert."""
    return outcome in _ALERTING


def failed_outcome(has_verified_entry: bool) -> Outcome:
    """The outcome of a failed fetch or verification: keep the last verified file if there is one, else the
    device stays in quarantine."""
    return Outcome.KEPT_LAST if has_verified_entry else Outcome.FIRST_CONTACT_FAILED
