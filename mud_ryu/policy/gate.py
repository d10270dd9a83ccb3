"""The update policy bound to its durable store: every decision is committed before the caller acts on it.

The enforcer asks the gate, never the policy directly, so "trust is written before a policy is widened"
(THREATS.md R2) holds by construction: :meth:`TrustGate.verified` returns an APPLY only after the record that
justifies it is on disk. A store that fails raises :class:`~mud_ryu.policy.store.TrustStoreError`; the enforcer
then refuses the change (fails closed).

Why a cache, and why some decisions are not committed (THREATS.md "correct under attack"): every DHCP renewal and
LLDP refresh of an enforced device is an announcement. Loading its record from SQLite and committing an unchanged
record (an IMMEDIATE transaction with ``synchronous=FULL``: an fsync) for each one let a device -- or an attacker on
a port, at the punt rate limit -- buy ~100 fsyncs per second on the controller's one event loop. So:

* The gate keeps a write-through cache of the records it has read or written. This process is the store's only
  writer, so the cache can only go stale through this gate, and every write here updates it *after* the store
  returned: a failed commit drops the entry (the next read goes to disk), so the cache is never ahead of the disk
  and an APPLY is still never returned for trust that is not on disk.
* A step that leaves the durable record unchanged and says nothing new is not committed (:func:`_worth_a_commit`):
  the confirmation of the URL (or file) in force, or a repeat of the decision already stored as the record's
  ``last_decision``. "Unchanged" compares everything but timestamps that only restate the time of a repeat: the
  ``at`` of ``last_decision`` and of a ``pending`` entry that is otherwise the same. Consequences, deliberately:
  ``last_decision`` (and its time) is the last decision that changed the record or reported something new -- e.g.
  the first use, a violation, an approval -- not the latest same-URL renewal; a pending entry keeps the time it was
  first raised ("waiting since"); the decision log gets one line per distinct event, not one per repeat. Every state
  change, every first instance of a violation, refusal or approval is still committed, and alerts are the
  enforcer's effects, emitted whether or not anything was written. Operator actions (approve, revoke, moves,
  forget) always commit.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import MudUrl
from mud_ryu.policy.store import TrustStore
from mud_ryu.policy.table import Outcome, UpdatePolicy
from mud_ryu.policy.types import Decision, DeviceId, TrustRecord, TrustState, Verdict


class TrustGate:
    def __init__(self, policy: UpdatePolicy, store: TrustStore) -> None:
        self.policy = policy
        self.store = store
        # Records as the store holds them (never a record the store refused). Only records that exist are kept:
        # the cache holds no more than the store does.
        self._cache: dict[DeviceId, TrustRecord] = {}
        # Cache and store change together: a reader never sees the cache between a commit and its update.
        self._lock = threading.RLock()

    def record(self, identity: DeviceId) -> TrustRecord:
        """The record in force for ``identity`` (the empty record of a device never committed)."""
        found = self._get(identity)
        return TrustRecord(identity) if found is None else found

    def _get(self, identity: DeviceId) -> TrustRecord | None:
        with self._lock:
            cached = self._cache.get(identity)
            if cached is not None:
                return cached
            stored = self.store.get(identity)
            if stored is not None:
                self._cache[identity] = stored
            return stored

    def _write(self, record: TrustRecord, decision: Decision) -> None:
        """Commit, then (and only then) cache. A failed commit drops the cached entry: whatever the store now holds
        is read back next time, so the cache is never ahead of the disk."""
        with self._lock:
            try:
                self.store.commit(record, decision)
            except BaseException:
                self._cache.pop(record.identity, None)
                raise
            self._cache[record.identity] = record

    def _commit(self, previous: TrustRecord, outcome: Outcome, *, always: bool = False) -> Outcome:
        """Persist ``outcome`` unless it restates ``previous`` (see the module docstring). Returns the outcome as
        it stands on disk: its decision, and the record now in force (``previous`` when nothing was written)."""
        if not always and not _worth_a_commit(previous, outcome):
            return dataclasses.replace(outcome, record=previous)
        self._write(outcome.record, outcome.decision)
        return outcome

    def announce(self, identity: DeviceId, url: MudUrl, now: float) -> Outcome:
        """An announcement's decision and the record in force after it, read once (the enforcer needs both)."""
        with self._lock:
            previous = self.record(identity)
            return self._commit(previous, self.policy.announced(previous, url, now))

    def announced(self, identity: DeviceId, url: MudUrl, now: float) -> Decision:
        return self.announce(identity, url, now).decision

    def verified(
        self, identity: DeviceId, url: MudUrl, sha256: str, signer: Signer | None, file_mud_url: MudUrl, now: float
    ) -> Decision:
        with self._lock:
            previous = self.record(identity)
            outcome = self.policy.verified(previous, url, sha256, signer, file_mud_url, now)
            return self._commit(previous, outcome).decision

    def fetch_failed(self, identity: DeviceId, url: MudUrl, reason: str, now: float) -> Decision:
        with self._lock:
            previous = self.record(identity)
            return self._commit(previous, self.policy.fetch_failed(previous, url, reason, now)).decision

    def verified_many(
        self,
        identities: Sequence[DeviceId],
        url: MudUrl,
        sha256: str,
        signer: Signer | None,
        file_mud_url: MudUrl,
        now: float,
    ) -> list[Decision]:
        """:meth:`verified` for every device an answer concerns, committed in one transaction (one fsync, not one
        a device): each APPLY is still returned only once the record that allows it is on disk."""
        with self._lock:
            steps = [(p, self.policy.verified(p, url, sha256, signer, file_mud_url, now))
                     for p in map(self.record, identities)]  # fmt: skip
            return self._commit_all(steps)

    def fetch_failed_many(self, identities: Sequence[DeviceId], url: MudUrl, reason: str, now: float) -> list[Decision]:
        """:meth:`fetch_failed` for every device an answer concerns, committed in one transaction."""
        with self._lock:
            steps = [(p, self.policy.fetch_failed(p, url, reason, now)) for p in map(self.record, identities)]
            return self._commit_all(steps)

    def _commit_all(self, steps: list[tuple[TrustRecord, Outcome]]) -> list[Decision]:
        """Persist, in one transaction, the outcomes worth a commit (see the module docstring), then cache them; a
        failure drops every one of them from the cache (it is never ahead of the disk) and raises."""
        written = [outcome for previous, outcome in steps if _worth_a_commit(previous, outcome)]
        if len({o.record.identity for o in written}) != len(written):
            raise ValueError("one device twice in a batch")  # each step read the record before the other's write
        try:
            self.store.commit_many([(o.record, o.decision) for o in written])
        except BaseException:
            for outcome in written:
                self._cache.pop(outcome.record.identity, None)
            raise
        for outcome in written:
            self._cache[outcome.record.identity] = outcome.record
        return [outcome.decision for _, outcome in steps]

    def approve(self, identity: DeviceId, url: MudUrl, sha256: str, now: float) -> Decision:
        with self._lock:
            previous = self.record(identity)
            return self._commit(previous, self.policy.approve(previous, url, sha256, now), always=True).decision

    def revoke(self, identity: DeviceId, now: float) -> Decision:
        with self._lock:
            previous = self.record(identity)
            return self._commit(previous, self.policy.revoke(previous, now), always=True).decision

    def quarantined(self, identity: DeviceId) -> bool:
        return self.record(identity).state is TrustState.QUARANTINED

    def moved(self, old: DeviceId, new: DeviceId) -> bool:
        """A device left ``old`` (its port went down or it released its lease) and announced at ``new``: its trust
        moves with it -- explicitly, after a port-down, never silently while the old port is up (THREATS.md row
        1). Returns whether there was anything to carry."""
        with self._lock:
            record = self._get(old)
            if record is None or self._get(new) is not None:
                return False
            carried = dataclasses.replace(record, identity=new)
            if record.last_decision is not None:
                self._write(carried, record.last_decision)
            self.forget(old)
            return True

    def forget(self, identity: DeviceId) -> bool:
        with self._lock:
            try:
                return self.store.forget(identity)
            finally:  # gone, or (on failure) re-read from disk next time
                self._cache.pop(identity, None)


def _settled(record: TrustRecord) -> TrustRecord:
    """The record without the times a repeat restates: ``last_decision`` (compared apart) and ``pending.at``."""
    pending = record.pending
    return dataclasses.replace(
        record, last_decision=None, pending=None if pending is None else dataclasses.replace(pending, at=0.0)
    )


def _gist(decision: Decision | None) -> tuple[object, ...] | None:
    """What a decision says, without when it was made."""
    if decision is None:
        return None
    return (decision.verdict, decision.reason_code, decision.rule_id, decision.message, decision.url)


def _worth_a_commit(previous: TrustRecord, outcome: Outcome) -> bool:
    """Whether ``outcome`` must be written: it changes the durable record, or it says something the stored record
    does not already say. A record never committed always is (its first decision starts the log)."""
    if previous.last_decision is None or _settled(outcome.record) != _settled(previous):
        return True
    decision = outcome.decision
    if decision.verdict is Verdict.IGNORE and decision.url is not None and decision.url == previous.current_url:
        return False  # the URL (or file) in force, confirmed again: same-url, unchanged
    return _gist(decision) != _gist(previous.last_decision)
