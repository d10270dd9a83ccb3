"""The MUD URL update policy as one table: (state, event, guard) -> (verdict, reason, new record).

Pure (THREATS.md rows 1-3, 15, 17, 19; R4, R10): ``now`` comes with every event, nothing is read from the clock,
the network or a store. :func:`step` walks :data:`TABLE` top to bottom and the first row whose state, event type
and guard match decides; the order of the rows is part of the policy. Each row quotes the text it implements
(draft-ietf-iotops-mud-acceptable-urls = "draft", RFC 8520 = "RFC"). A (state, event) pair no row matches is a
programmer error and raises, so a hole in the table fails loudly instead of widening anything.

Defaults and why: first use is TOFU (draft s1: "it is sufficient that some satisfactory initial trust is
established"); violations quarantine (THREATS.md row 2 asks for an alert and no new policy; quarantine is the
conservative reading, ``keep-last`` the operator's alternative); big changes are allowed (see the V-big rows:
the draft defines them as the way a manufacturer moves its files, and they need the pinned signer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import MudUrl
from mud_ryu.policy.effects import (
    HOLDS,
    Ctx,
    Effect,
    Match,
    accept,
    approve_file,
    equivalent_signer,
    pending_is,
    pending_too_soon,
    quarantine,
    set_pending,
    too_soon,
    unchanged,
    url_of,
    url_rule,
    verified,
    violate,
)
from mud_ryu.policy.types import (
    Announced,
    Approve,
    Decision,
    DeviceId,
    Event,
    FetchFailed,
    Pending,
    PolicySettings,
    Released,
    Revoke,
    TrustRecord,
    TrustState,
    Verdict,
    Verified,
    check_time,
)

U, T, Q, P = TrustState.UNKNOWN, TrustState.TRUSTED, TrustState.QUARANTINED, TrustState.PENDING_APPROVAL
ANY = frozenset(TrustState)
FIRST = frozenset({U, P})
Guard = Callable[[Ctx], Match | None]


@dataclass(frozen=True, slots=True)
class Row:
    rule_id: str
    states: frozenset[TrustState]
    event: type
    guard: Guard
    verdict: Verdict
    reason: str
    effect: Effect
    quote: str


def _when(predicate: Callable[[Ctx], bool]) -> Guard:
    return lambda ctx: HOLDS if predicate(ctx) else None


_always: Guard = _when(lambda ctx: True)


def _v(ctx: Ctx) -> Verified:
    return verified(ctx)


def _is_current(ctx: Ctx) -> bool:
    return url_of(ctx).url == ctx.rec.current_url


def _unsigned_with_pin(ctx: Ctx) -> bool:
    return ctx.rec.signer is not None and _v(ctx).signer is None


def _other_signer(ctx: Ctx) -> bool:
    pin, signer = ctx.rec.signer, _v(ctx).signer
    return pin is not None and signer is not None and not equivalent_signer(pin, signer)


def _rollback_url(ctx: Ctx) -> bool:
    return not _is_current(ctx) and url_of(ctx).url in ctx.rec.accepted_urls()


def _rollback_file(ctx: Ctx) -> bool:
    ev = _v(ctx)
    in_force = _is_current(ctx) and ev.sha256 == ctx.rec.current_sha256
    return not in_force and ev.sha256 in ctx.rec.accepted_digests()


def _big(ctx: Ctx) -> bool:
    ev = _v(ctx)
    return ev.file_mud_url.url != ev.url.url


def _untrusted_authority(ctx: Ctx) -> bool:
    s = ctx.settings
    return s.first_use == "trusted-authorities" and url_of(ctx).host not in s.trusted_authorities


def _untrusted_signer(ctx: Ctx) -> bool:
    s, signer = ctx.settings, _v(ctx).signer
    return s.first_use == "trusted-signers" and (signer is None or signer.ca_spki not in s.trusted_signers)


def _stale(ctx: Ctx) -> bool:
    return not _is_current(ctx) and not pending_is(ctx, "fetching")


def _unchanged(ctx: Ctx) -> bool:
    ev, rec = _v(ctx), ctx.rec
    return _is_current(ctx) and ev.sha256 == rec.current_sha256 and ev.file_mud_url == rec.canonical_url


def _requested(ctx: Ctx) -> bool:
    pending = ctx.rec.pending
    return _is_current(ctx) or (pending is not None and pending.url == url_of(ctx).url)


def _approved_file(ctx: Ctx) -> bool:
    pending = ctx.rec.pending
    return pending is not None and pending.sha256 is not None and pending.sha256 == _v(ctx).sha256


def _url_rule_on_change(ctx: Ctx) -> Match | None:
    return None if _is_current(ctx) else url_rule(ctx)


_fetching = set_pending("fetching")
_TOFU = "draft s4.1: The first time a signature ... is verified ... the identity of the signing authority is recorded."

TABLE: tuple[Row, ...] = (
    # ---- announced(url): URL-only rules, before any network I/O ----------------------------------------------
    Row("A-approved", ANY, Announced, _when(lambda c: pending_is(c, "approved")), Verdict.FETCH, "approved",
        unchanged, "RFC s16: the MUD manager SHOULD seek administrator approval"),
    Row("A-pending-rate-limit", frozenset({U, Q, P}), Announced, _when(pending_too_soon), Verdict.PENDING_APPROVAL,
        "pending-rate-limited", unchanged, "THREATS row 14: a minimum interval between URL changes per device; "
        "the operator approves the change they reviewed"),
    Row("A-quarantined", frozenset({Q}), Announced, _always, Verdict.PENDING_APPROVAL, "quarantined",
        set_pending("needs-approval"), "THREATS row 2: only an operator action ... moves it"),
    Row("A-same", frozenset({T}), Announced, _when(_is_current), Verdict.IGNORE, "same-url", unchanged,
        "draft s6: the MUD controller will receive no signal about a change ... the URL will not have changed"),
    Row("A-first-approve", FIRST, Announced, _when(lambda c: c.settings.first_use == "approve"),
        Verdict.PENDING_APPROVAL, "needs-approval", set_pending("needs-approval", P),
        "RFC s16: New Things that present some form of unauthenticated MUD URL SHOULD be validated by some "
        "external means"),
    Row("A-first-authority", FIRST, Announced, _when(_untrusted_authority), Verdict.VIOLATION, "untrusted-authority",
        violate, "RFC s16: limit retrieval of MUD URLs to only those sites that are known"),
    Row("A-pending-kept", frozenset({U}), Announced, _when(lambda c: pending_is(c, "needs-approval")),
        Verdict.PENDING_APPROVAL, "needs-approval", unchanged,
        "RFC s16: the change an operator reviews stays as it was raised: announcing it again neither refetches it "
        "(losing its digest) nor restarts the interval a replacement must wait"),
    Row("A-first-fetch", FIRST, Announced, _always, Verdict.FETCH, "first-use", _fetching,
        "draft s1: it is sufficient that some satisfactory initial trust is established"),
    Row("A-rollback", frozenset({T}), Announced, _when(_rollback_url), Verdict.VIOLATION, "rollback-url", violate,
        "draft s5.1: if a device ever suggests a URL that was previously used, then the MUD manager should "
        "suspect that is a rollback attack"),
    Row("A-url-rule", frozenset({T}), Announced, url_rule, Verdict.VIOLATION, "url-rule", violate,
        "draft s5.1: acceptable if it contains the same series of segments in its path, excepting that the last "
        "segment may be different"),
    Row("A-rate-limit", frozenset({T}), Announced, _when(lambda c: too_soon(c, c.event.now)), Verdict.IGNORE,
        "rate-limited", unchanged, "THREATS row 14: a minimum interval between URL changes per device"),
    Row("A-canonical", frozenset({T}), Announced,
        _when(lambda c: c.rec.canonical_url is not None and url_of(c).url == c.rec.canonical_url.url),
        Verdict.FETCH, "big-change", _fetching,
        "draft s5.2: any subsequent updates MUST be relative to the new MUD-URL in this file"),
    Row("A-small", frozenset({T}), Announced, _always, Verdict.FETCH, "small-change", _fetching,
        "draft s5.1: they have the same initial Base-URI as the MUD-URL, but may have a different final part"),
    # ---- verified(url, sha256, signer, file_mud_url): after fetch + signature ----------------------------------
    Row("V-approved-digest", ANY, Verified, _when(lambda c: pending_is(c, "approved") and not _approved_file(c)),
        Verdict.VIOLATION, "unapproved-file", violate,
        "RFC s16: If the MUD file also changes, the MUD manager SHOULD seek administrator approval"),
    Row("V-approved-mismatch", ANY, Verified, _when(lambda c: pending_is(c, "approved") and _big(c)),
        Verdict.VIOLATION, "mud-url-mismatch", violate,
        "RFC s3.3: mud-url: This is the URL that points to this MUD file"),
    Row("V-approved-unsigned", ANY, Verified, _when(lambda c: pending_is(c, "approved") and _unsigned_with_pin(c)),
        Verdict.VIOLATION, "unsigned", violate,
        "draft s1: the MUD controller has been configured to always check the signatures"),
    Row("V-approved", ANY, Verified, _when(lambda c: pending_is(c, "approved")), Verdict.APPLY, "approved",
        accept(root=True, repin=True), "RFC s16: If the MUD file also changes, the MUD manager SHOULD seek "
        "administrator approval"),
    Row("V-quarantined", frozenset({Q}), Verified, _always, Verdict.IGNORE, "quarantined", unchanged,
        "THREATS row 19: never auto-apply a wider policy"),
    Row("V-stale", ANY, Verified, _when(_stale), Verdict.IGNORE, "stale-result", unchanged,
        "DESIGN: policy decides (ignore / fetch / ...) -> fetch + verify; only a requested fetch is applied"),
    Row("V-first-mismatch", FIRST, Verified, _when(_big), Verdict.VIOLATION, "mud-url-mismatch", violate,
        "draft s5: A MUD file contains a self-referential MUD-URL attribute"),
    Row("V-first-signer", FIRST, Verified, _when(_untrusted_signer), Verdict.VIOLATION, "untrusted-signer", violate,
        "draft s4.1: The first signature could be from a manually configured trust anchor"),
    Row("V-first-authority", FIRST, Verified, _when(_untrusted_authority), Verdict.VIOLATION, "untrusted-authority",
        violate, "RFC s16: limit retrieval of MUD URLs to only those sites that are known"),
    Row("V-first-use", FIRST, Verified, _always, Verdict.APPLY, "first-use", accept(root=True, repin=True), _TOFU),
    Row("V-unsigned", frozenset({T}), Verified, _when(_unsigned_with_pin), Verdict.VIOLATION, "unsigned", violate,
        "draft s4.1: subsequent MUD files must be signed by the same entity in order to be accepted"),
    Row("V-signer", frozenset({T}), Verified, _when(_other_signer), Verdict.VIOLATION, "signer-changed", violate,
        "draft s5.1: signed by an equivalent End Entity (same trusted CA and same Subject Name)"),
    Row("V-rollback-url", frozenset({T}), Verified, _when(_rollback_url), Verdict.VIOLATION, "rollback-url", violate,
        "draft s5.1: MUD managers SHOULD keep track of the list of MUD-URLs that they have successfully retrieved"),
    Row("V-rollback-file", frozenset({T}), Verified, _when(_rollback_file), Verdict.VIOLATION, "rollback-file",
        violate, "THREATS row 17: keep every URL (and file digest) accepted per device"),
    Row("V-url-rule", frozenset({T}), Verified, _url_rule_on_change, Verdict.VIOLATION, "url-rule", violate,
        "draft s5.1: Subsequent MUD files are considered valid if: they have the same initial Base-URI"),
    Row("V-big-unsigned", frozenset({T}), Verified, _when(lambda c: _big(c) and c.rec.signer is None),
        Verdict.VIOLATION, "big-change-unsigned", violate,
        "draft s1: This document limits itself to situations in which the MUD file is signed"),
    Row("V-big-refused", frozenset({T}), Verified, _when(lambda c: _big(c) and not c.settings.allow_big_change),
        Verdict.VIOLATION, "big-change-refused", violate, "operator setting allow_big_change = false"),
    Row("V-big-rollback", frozenset({T}), Verified,
        _when(lambda c: _big(c) and _v(c).file_mud_url.url in c.rec.accepted_urls() - {c.rec.current_url}),
        Verdict.VIOLATION, "rollback-url", violate, "draft s5.1: should suspect that is a rollback attack"),
    Row("V-unchanged", frozenset({T}), Verified, _when(_unchanged), Verdict.IGNORE, "unchanged", unchanged,
        "draft s6: the use of ETag allows a MUD controller to more efficiently poll for changes"),
    Row("V-big", frozenset({T}), Verified, _when(_big), Verdict.APPLY, "big-change", accept(root=False, repin=False),
        "draft s5.2: the MUD-URL attribute in this file becomes the new canonical MUD file. The contained MUD-URL "
        "attribute in the file need not be related in any way to the existing MUD-URL."),
    Row("V-refresh", frozenset({T}), Verified, _when(_is_current), Verdict.APPLY, "refresh",
        accept(root=False, repin=False), "draft s3: update the MUD file in place"),
    Row("V-small", frozenset({T}), Verified, _always, Verdict.APPLY, "small-change", accept(root=False, repin=False),
        "draft s5.1: The new URL is considered acceptable"),
    # ---- fetch_failed / approve / revoke / released --------------------------------------------------------------
    Row("F-failed", ANY, FetchFailed, _when(_requested),
        Verdict.FAILED, "fetch-failed", unchanged,
        "THREATS R10: a refresh that fails leaves the flow table byte-identical; a first-contact failure leaves the "
        "device in quarantine"),
    Row("F-stale", ANY, FetchFailed, _always, Verdict.IGNORE, "stale-result", unchanged, "nothing was requested"),
    Row("P-approve", ANY, Approve, _always, Verdict.FETCH, "approved", approve_file,
        "draft s4.1: manual configuration of trust anchors; RFC s16: review by a network administrator"),
    Row("R-revoke", ANY, Revoke, _always, Verdict.QUARANTINE, "revoked", quarantine,
        "RFC s16: When such a rogue is discovered, it SHOULD be removed."),
    Row("L-released", ANY, Released, _always, Verdict.IGNORE, "released", unchanged,
        "THREATS row 13: a TTL=0 shutdown LLDPDU does NOT delete trust state"),
)  # fmt: skip
RULE_IDS: frozenset[str] = frozenset(row.rule_id for row in TABLE)


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    record: TrustRecord
    before: Pending | None = None  # the pending change the step started from (a replacement of it is alerted)


def new_record(identity: DeviceId) -> TrustRecord:
    """The record of a device never seen before: nothing trusted, nothing pinned."""
    return TrustRecord(identity)


def step(settings: PolicySettings, record: TrustRecord, event: Event) -> Outcome:
    """Apply one event to one device's record: the first matching row decides."""
    now = check_time(event.now)
    ctx = Ctx(settings, record, event)
    for row in TABLE:
        if record.state not in row.states or not isinstance(event, row.event):
            continue
        match = row.guard(ctx)
        if match is None:
            continue
        reason = match.reason or row.reason
        url = url_of(ctx).url if not isinstance(event, Revoke | Released) else record.current_url
        message = f"{row.rule_id}: {reason}" + (f" ({match.detail})" if match.detail else "")
        if isinstance(event, FetchFailed):
            message += f"; fetch reason {event.reason}"
        decision = Decision(row.verdict, reason, row.rule_id, message, url, now)
        new = row.effect(ctx, reason)
        return Outcome(decision, _with_decision(new, decision), record.pending)
    raise LookupError(f"no policy row for {type(event).__name__} in state {record.state.value}")


def _with_decision(record: TrustRecord, decision: Decision) -> TrustRecord:
    return dataclasses.replace(record, last_decision=decision)


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """The policy bound to its settings: one method per input event, each returning the decision and the new
    record. The caller persists ``Outcome.record`` (with the decision) before acting on an APPLY."""

    settings: PolicySettings

    def announced(self, record: TrustRecord, url: MudUrl, now: float) -> Outcome:
        return step(self.settings, record, Announced(url, now))

    def verified(
        self, record: TrustRecord, url: MudUrl, sha256: str, signer: Signer | None, file_mud_url: MudUrl, now: float
    ) -> Outcome:
        return step(self.settings, record, Verified(url, sha256, signer, file_mud_url, now))

    def fetch_failed(self, record: TrustRecord, url: MudUrl, reason: str, now: float) -> Outcome:
        return step(self.settings, record, FetchFailed(url, reason, now))

    def approve(self, record: TrustRecord, url: MudUrl, sha256: str, now: float) -> Outcome:
        return step(self.settings, record, Approve(url, sha256, now))

    def revoke(self, record: TrustRecord, now: float) -> Outcome:
        return step(self.settings, record, Revoke(now))

    def released(self, record: TrustRecord, now: float) -> Outcome:
        return step(self.settings, record, Released(now))
