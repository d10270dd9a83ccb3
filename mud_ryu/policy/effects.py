"""Guards and effects of the MUD URL update policy: the small pure functions the transition table names.

Kept apart from the table (:mod:`mud_ryu.policy.table`) so that the table reads as a table. Every effect returns
a new :class:`TrustRecord`; none removes an entry from ``history`` (a return to any accepted URL or file must stay
recognisable as rollback, THREATS.md row 17) and only :func:`accept` with ``repin`` may replace a pinned signer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import MudUrl
from mud_ryu.policy.rules import ChangeKind, UrlChange, check_url_change
from mud_ryu.policy.types import (
    Accepted,
    Announced,
    Approve,
    Event,
    FetchFailed,
    Pending,
    PendingStatus,
    PolicySettings,
    TrustRecord,
    TrustState,
    Verified,
)


@dataclass(frozen=True, slots=True)
class Ctx:
    """One event applied to one record under one set of settings."""

    settings: PolicySettings
    rec: TrustRecord
    event: Event


@dataclass(frozen=True, slots=True)
class Match:
    """A guard that holds; ``reason`` overrides the row's reason (the URL rule reports which part differs)."""

    reason: str | None = None
    detail: str = ""


HOLDS = Match()
# An effect takes the context and the decided reason code and returns the new record.
Effect = Callable[[Ctx, str], TrustRecord]


def url_of(ctx: Ctx) -> MudUrl:
    ev = ctx.event
    if not isinstance(ev, Announced | Verified | FetchFailed | Approve):
        raise TypeError(f"{type(ev).__name__} carries no URL")
    return ev.url


def verified(ctx: Ctx) -> Verified:
    if not isinstance(ctx.event, Verified):
        raise TypeError(f"expected Verified, got {type(ctx.event).__name__}")
    return ctx.event


def canonical_change(ctx: Ctx, url: MudUrl) -> UrlChange:
    """``url`` against the canonical URL in force (the mud-url of the file last accepted)."""
    canonical = ctx.rec.canonical_url
    if canonical is None:
        raise ValueError("a trusted record without a canonical URL")
    return check_url_change(canonical, url)


def equivalent_signer(pinned: Signer, signer: Signer) -> bool:
    """Draft s5.1: "signed by an equivalent End Entity (same trusted CA and same Subject Name)". The CA is the same
    when its public key is (SPKI SHA-256), never merely its self-chosen key id; a legacy pin that has no SPKI yet
    matches nothing. The end entity is the same when its subject and (if the pin recorded them) its
    subjectAltNames are (a pin whose end entity had none compares the subject only, so a renewal that adds SANs
    is the same signer). The rest of the chain may change: the draft's "Changing Signing Authority" adds a
    cross-certificate under the same anchor."""
    if pinned.ca_spki is None or pinned.ca_spki != signer.ca_spki:
        return False
    pinned_names = set(pinned.alt_names[0]) if pinned.alt_names else set()
    if pinned_names and pinned_names != (set(signer.alt_names[0]) if signer.alt_names else set()):
        return False  # the pinned end entity named itself by SANs: a renewal must name the same (in any order)
    return pinned.subject_chain[:1] == signer.subject_chain[:1]


def too_soon(ctx: Ctx, now: float) -> bool:
    """Inside the per-device minimum interval between URL changes; a clock that went back counts as too soon."""
    last = ctx.rec.changed_at
    return last is not None and (now < last or now - last < ctx.settings.min_change_interval_s)


def pending_too_soon(ctx: Ctx) -> bool:
    """A device would replace the pending change an operator reviews (needs-approval) or approved with another URL
    inside ``min_pending_interval_s`` of when that change was raised; a clock that went back counts as too soon.
    Without it a device could swap what the operator is looking at as fast as it can announce."""
    pending, now = ctx.rec.pending, ctx.event.now
    if pending is None or pending.status == "fetching" or pending.url == url_of(ctx).url:
        return False
    return now < pending.at or now - pending.at < ctx.settings.min_pending_interval_s


def pending_is(ctx: Ctx, status: PendingStatus) -> bool:
    pending = ctx.rec.pending
    return pending is not None and pending.status == status and pending.url == url_of(ctx).url


# ---- effects -------------------------------------------------------------------------------------------------


def unchanged(ctx: Ctx, reason: str) -> TrustRecord:
    return ctx.rec


def set_pending(status: PendingStatus, state: TrustState | None = None) -> Effect:
    def effect(ctx: Ctx, reason: str) -> TrustRecord:
        url, old = url_of(ctx).url, ctx.rec.pending
        if old is not None and (old.url, old.status, status) == (url, "needs-approval", "needs-approval"):
            # The same URL announced again is the change the operator reviews, as it was: why it was refused, the
            # digest of its file, and since when it waits (the pending rate limit counts from then).
            pending = old
        else:
            pending = Pending(url, status, reason, ctx.event.now)
        return dataclasses.replace(ctx.rec, pending=pending, state=state or ctx.rec.state)

    return effect


def approve_file(ctx: Ctx, reason: str) -> TrustRecord:
    """The operator's approval: the URL and the one file digest that may be applied for it."""
    ev = ctx.event
    if not isinstance(ev, Approve):
        raise TypeError(f"expected Approve, got {type(ev).__name__}")
    return dataclasses.replace(ctx.rec, pending=Pending(ev.url.url, "approved", reason, ev.now, ev.sha256))


def violate(ctx: Ctx, reason: str) -> TrustRecord:
    """Refuse the URL and keep it for the operator. A trusted device is quarantined or keeps its last verified
    policy (``violation_action``); a device with nothing accepted stays where it is (quarantined by default)."""
    state = ctx.rec.state
    if state is TrustState.TRUSTED and ctx.settings.violation_action == "quarantine":
        state = TrustState.QUARANTINED
    ev, old = ctx.event, ctx.rec.pending
    # A file fetched and refused is named by its digest, so the operator approves exactly the file shown to them;
    # the same URL refused again before any fetch keeps the digest already shown.
    sha256 = ev.sha256 if isinstance(ev, Verified) else None
    if sha256 is None and old is not None and (old.url, old.status) == (url_of(ctx).url, "needs-approval"):
        sha256 = old.sha256
    pending = Pending(url_of(ctx).url, "needs-approval", reason, ev.now, sha256)
    return dataclasses.replace(ctx.rec, state=state, pending=pending)


def quarantine(ctx: Ctx, reason: str) -> TrustRecord:
    return dataclasses.replace(ctx.rec, state=TrustState.QUARANTINED, pending=None)


def accept(*, root: bool, repin: bool) -> Effect:
    """Enforce the verified file. ``root``: it becomes the root (first use, operator approval); ``repin``: its
    signer replaces the pinned one (only first use and operator approval may do that)."""

    def effect(ctx: Ctx, reason: str) -> TrustRecord:
        ev = verified(ctx)
        rec = ctx.rec
        history = rec.history
        if not history or history[-1].url != ev.url.url or history[-1].sha256 != ev.sha256:
            history = (*history, Accepted(ev.url.url, ev.sha256, ev.now))
        moved = rec.current_url != ev.url.url
        return dataclasses.replace(
            rec,
            state=TrustState.TRUSTED,
            root_url=ev.url.url if root else rec.root_url,
            canonical_url=ev.file_mud_url,
            current_url=ev.url.url,
            current_sha256=ev.sha256,
            signer=(ev.signer if ev.signer is not None else rec.signer) if repin else rec.signer,
            history=history,
            pending=None,
            changed_at=ev.now if moved or rec.changed_at is None else rec.changed_at,
        )

    return effect


def url_rule(ctx: Ctx) -> Match | None:
    """The draft's small-change rule against the canonical URL; None when the URL is acceptable."""
    change = canonical_change(ctx, url_of(ctx))
    if change.kind is ChangeKind.REJECT:
        return Match(change.reason, change.message)
    return None
