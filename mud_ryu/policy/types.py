"""The values of the MUD URL update policy: settings, events, decisions and the per-device trust record.

All frozen: :mod:`mud_ryu.policy.table` returns a *new* record for every event, so the caller can persist it
(:mod:`mud_ryu.policy.store`) before it acts on the decision -- trust is written before a policy is widened
(THREATS.md R2) -- and a crash between the two leaves the old record, never a half-updated one.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Literal

from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import MudUrl
from mud_ryu.policy.rules import URL_CHANGE_REASONS

FirstUse = Literal["tofu", "trusted-authorities", "trusted-signers", "approve"]
ViolationAction = Literal["quarantine", "keep-last"]
FIRST_USE_MODES: tuple[FirstUse, ...] = ("tofu", "trusted-authorities", "trusted-signers", "approve")
VIOLATION_ACTIONS: tuple[ViolationAction, ...] = ("quarantine", "keep-last")


class Verdict(enum.Enum):
    """What the caller must do. Only APPLY may widen a device's access."""

    FETCH = "fetch"  # fetch + verify ``Decision.url``, then report verified()/fetch_failed()
    IGNORE = "ignore"  # nothing to do (same URL, rate limited, stale result, released)
    APPLY = "apply"  # enforce the verified file of ``Decision.url`` (persist the record first)
    VIOLATION = "violation"  # refuse and alert; the record's state says quarantine or keep-last
    PENDING_APPROVAL = "pending-approval"  # an operator must approve ``Decision.url``
    FAILED = "failed"  # the fetch failed: keep the last verified policy, or quarantine when there is none
    QUARANTINE = "quarantine"  # trust revoked: minimal policy until an operator approves a URL


class TrustState(enum.Enum):
    UNKNOWN = "unknown"  # nothing accepted yet (or first contact failed): the enforcer quarantines it
    TRUSTED = "trusted"  # ``current_url`` is enforced
    QUARANTINED = "quarantined"  # a violation or a revoke; sticky until an operator approves a URL
    PENDING_APPROVAL = "pending-approval"  # first use in ``approve`` mode, waiting for the operator


# Stable reason codes of the policy itself; URL_CHANGE_REASONS (the URL rule's) are reported as they are.
POLICY_REASONS: frozenset[str] = frozenset(
    {
        "first-use",
        "same-url",
        "refresh",
        "unchanged",
        "small-change",
        "big-change",
        "approved",
        "rate-limited",
        "stale-result",
        "released",
        "revoked",
        "fetch-failed",
        "needs-approval",
        "quarantined",
        "untrusted-authority",
        "untrusted-signer",
        "unsigned",
        "signer-changed",
        "rollback-url",
        "rollback-file",
        "mud-url-mismatch",
        "big-change-refused",
        "big-change-unsigned",
        "unapproved-file",
        "pending-rate-limited",
    }
)
REASONS: frozenset[str] = POLICY_REASONS | URL_CHANGE_REASONS
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: object) -> bool:
    """A file digest as the controller writes it: 64 lower-case hex digits (no prefix, no spaces)."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def check_time(value: float, name: str = "now") -> float:
    """A finite number of seconds; NaN would make every "too soon?" comparison silently false."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class DeviceId:
    """Who the trust belongs to: a MAC on one switch port (THREATS.md row 1: never silently rebound)."""

    dpid: int
    port: int
    mac: str  # lower-case colon form (mud_ryu.compiler.context.normalize_mac)


def normalise_spki_digest(text: str) -> str:
    """A CA's SPKI SHA-256 digest as 64 lower-case hex digits (colons and a ``sha256:`` prefix allowed);
    ``ValueError`` for anything else, naming what changed for an operator whose setting holds key ids."""
    digest = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(
            f"trusted_signers entry {text[:80]!r} is not a SHA-256 SPKI digest (64 hex digits): CAs are named by "
            "their public key now, not their key id; `mud-ryu verify` prints ca-spki-sha256"
        )
    return digest


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Operator choices; defaults are the draft's recommendations (see README of policy.table)."""

    first_use: FirstUse = "tofu"
    trusted_authorities: frozenset[str] = frozenset()  # hosts accepted on first use ("trusted-authorities")
    # SPKI SHA-256 digests (hex) of the signer CAs accepted on first use ("trusted-signers"); `mud-ryu verify` prints
    # a CA's digest. Not key ids: a CA chooses its own key id, and another CA may copy it.
    trusted_signers: frozenset[str] = frozenset()
    allow_big_change: bool = True
    violation_action: ViolationAction = "quarantine"
    min_change_interval_s: float = 600.0
    # Between replacements of a pending change the operator reviews (or approved) by a device that is not trusted.
    min_pending_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if self.first_use not in FIRST_USE_MODES:
            raise ValueError(f"first_use must be one of {FIRST_USE_MODES}, not {self.first_use!r}")
        if self.violation_action not in VIOLATION_ACTIONS:
            raise ValueError(f"violation_action must be one of {VIOLATION_ACTIONS}, not {self.violation_action!r}")
        if check_time(self.min_change_interval_s, "min_change_interval_s") < 0:
            raise ValueError("min_change_interval_s must be >= 0")
        if check_time(self.min_pending_interval_s, "min_pending_interval_s") < 0:
            raise ValueError("min_pending_interval_s must be >= 0")
        if self.first_use == "trusted-authorities" and not self.trusted_authorities:
            raise ValueError("first_use trusted-authorities needs at least one host")
        if self.first_use == "trusted-signers" and not self.trusted_signers:
            raise ValueError("first_use trusted-signers needs at least one CA SPKI digest")
        object.__setattr__(self, "trusted_authorities", frozenset(h.lower() for h in self.trusted_authorities))
        object.__setattr__(self, "trusted_signers", frozenset(normalise_spki_digest(k) for k in self.trusted_signers))


# ---- events --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Announced:
    """The device named ``url`` (DHCP/LLDP), before any fetch."""

    url: MudUrl
    now: float


@dataclass(frozen=True, slots=True)
class Verified:
    """``url`` was fetched and its signature checked; ``file_mud_url`` is the file's own mud-url (gated)."""

    url: MudUrl
    sha256: str
    signer: Signer | None  # None: the file was accepted unsigned (signature policy not "required")
    file_mud_url: MudUrl
    now: float


@dataclass(frozen=True, slots=True)
class FetchFailed:
    url: MudUrl
    reason: str  # the fetcher's stable reason code
    now: float


@dataclass(frozen=True, slots=True)
class Approve:
    """An operator approved the file ``sha256`` at ``url`` for this device (overrides URL rules, rollback and the
    signer pin once). Only a file with that digest is applied: the operator approves what they reviewed."""

    url: MudUrl
    sha256: str  # is_sha256(), checked where the operator's input arrives (operator_actions.approve)
    now: float


@dataclass(frozen=True, slots=True)
class Revoke:
    """An operator withdrew the device's trust: minimal policy until a URL is approved again."""

    now: float


@dataclass(frozen=True, slots=True)
class Released:
    """DHCP release, LLDP TTL=0 or port down: the device left. Trust is kept (THREATS.md row 13)."""

    now: float


Event = Announced | Verified | FetchFailed | Approve | Revoke | Released


# ---- outputs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason_code: str  # one of REASONS
    rule_id: str  # the transition-table row that decided
    message: str  # for people; attacker strings in it are already canonical URLs
    url: str | None = None  # the URL to fetch / apply / approve
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """One file accepted for the device: kept forever so a return to it is recognised as rollback."""

    url: str
    sha256: str
    at: float


PendingStatus = Literal["fetching", "needs-approval", "approved"]


@dataclass(frozen=True, slots=True)
class Pending:
    """The URL change in flight: being fetched, waiting for the operator, or approved by the operator."""

    url: str
    status: PendingStatus
    reason: str  # why approval is needed, or the rule that allowed the fetch
    at: float  # when this URL became the pending one (the pending rate limit counts from here)
    # needs-approval: the digest of the file fetched and refused (None: refused on its URL alone, never fetched);
    # approved: the digest the operator approved, the only file that may be applied.
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class TrustRecord:
    identity: DeviceId
    state: TrustState = TrustState.UNKNOWN
    root_url: str | None = None  # the first trusted URL (reset only by approve/revoke)
    canonical_url: MudUrl | None = None  # the mud-url of the file in force: small changes are relative to it
    current_url: str | None = None  # the URL whose file is enforced
    current_sha256: str | None = None
    signer: Signer | None = None  # the pinned signer (CA key id + subject chain)
    history: tuple[Accepted, ...] = ()
    pending: Pending | None = None
    last_decision: Decision | None = None
    changed_at: float | None = None  # when current_url last changed (rate limit)

    def accepted_urls(self) -> frozenset[str]:
        return frozenset(a.url for a in self.history)

    def accepted_digests(self) -> frozenset[str]:
        return frozenset(a.sha256 for a in self.history)
