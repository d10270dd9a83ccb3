"""The update policy bound to its durable store: every decision is committed before the caller acts on it.

The enforcer asks the gate, never the policy directly, so "trust is written before a policy is widened"
(THREATS.md R2) holds by construction: :meth:`TrustGate.verified` returns an APPLY only after the record that
justifies it is on disk. A store that fails raises :class:`~mud_ryu.truststore.TrustStoreError`; the enforcer
then refuses the change (fails closed).
"""

from __future__ import annotations

import dataclasses

from mud_ryu.signature import Signer
from mud_ryu.truststore import TrustStore
from mud_ryu.update_policy import Outcome, UpdatePolicy
from mud_ryu.update_types import Decision, DeviceId, TrustRecord, TrustState
from mud_ryu.urlgate import MudUrl


class TrustGate:
    def __init__(self, policy: UpdatePolicy, store: TrustStore) -> None:
        self.policy = policy
        self.store = store

    def record(self, identity: DeviceId) -> TrustRecord:
        return self.store.load(identity)

    def _commit(self, outcome: Outcome) -> Decision:
        self.store.commit(outcome.record, outcome.decision)
        return outcome.decision

    def announced(self, identity: DeviceId, url: MudUrl, now: float) -> Decision:
        return self._commit(self.policy.announced(self.record(identity), url, now))

    def verified(
        self, identity: DeviceId, url: MudUrl, sha256: str, signer: Signer | None, file_mud_url: MudUrl, now: float
    ) -> Decision:
        return self._commit(self.policy.verified(self.record(identity), url, sha256, signer, file_mud_url, now))

    def fetch_failed(self, identity: DeviceId, url: MudUrl, reason: str, now: float) -> Decision:
        return self._commit(self.policy.fetch_failed(self.record(identity), url, reason, now))

    def approve(self, identity: DeviceId, url: MudUrl, now: float) -> Decision:
        return self._commit(self.policy.approve(self.record(identity), url, now))

    def revoke(self, identity: DeviceId, now: float) -> Decision:
        return self._commit(self.policy.revoke(self.record(identity), now))

    def quarantined(self, identity: DeviceId) -> bool:
        return self.record(identity).state is TrustState.QUARANTINED

    def moved(self, old: DeviceId, new: DeviceId) -> bool:
        """A device left ``old`` (its port went down or it released its lease) and announced at ``new``: its trust
        moves with it -- explicitly, after a port-down, never silently while the old port is up (THREATS.md row
        1). Returns whether there was anything to carry."""
        record = self.store.get(old)
        if record is None or self.store.get(new) is not None:
            return False
        carried = dataclasses.replace(record, identity=new)
        if record.last_decision is not None:
            self.store.commit(carried, record.last_decision)
        self.store.forget(old)
        return True

    def forget(self, identity: DeviceId) -> bool:
        return self.store.forget(identity)
