"""Flows a switch refused (an OpenFlow error tied to its flow-mod by xid): out of the book, resent after a backoff.

Only what was refused leaves the book of the owners holding it, so the resend's diff sends it again and what the
switch accepted stays known (a change before the resend still deletes what it no longer wants). The devices whose
barrier the refused update carried are not confirmed: what the switch holds is not what their records would say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.enforcer.flows import FlowBook
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.state import Alert, Effect, Owner

REFUSAL_RETRY_FIRST_S = 1.0
REFUSAL_RETRY_MAX_S = 60.0


@dataclasses.dataclass
class _Retry:
    """Owners of one switch whose flows it refused, waiting for their resend."""

    owners: set[Owner] = dataclasses.field(default_factory=set)
    confirms: set[str] = dataclasses.field(default_factory=set)
    due: float = 0.0  # 0: nothing waiting (the delay is kept for the next refusal)
    delay: float = 0.0
    last: float = 0.0  # when the last refusal came


class RefusedFlows:
    """The refusals of one enforcer's switches and their resends (owned by :class:`~mud_ryu.enforcer.core.Enforcer`)."""

    def __init__(self, state: EnforcerState, flows: FlowBook) -> None:
        self._state = state
        self._flows = flows
        self._retries: dict[int, _Retry] = {}

    def refused(
        self, dpid: int, rules: Iterable[FlowRule], confirms: Iterable[str], reason: str, now: float
    ) -> list[Effect]:
        """The switch refused ``rules`` (sent in one update whose barrier would have confirmed ``confirms``): out of
        the book, their devices not confirmed, the operator told; :meth:`retry` resends after a backoff (1 s,
        doubling to 60 s while refusals go on)."""
        sw = self._state.switches.get(dpid)
        if sw is None:
            return []
        refused = frozenset(rules)
        owners = [owner for owner, flows in sw.owners.items() if flows & refused]
        for owner in owners:
            self._flows.set_owner(sw, owner, sw.owners[owner] - refused)
        retry = self._retries.setdefault(dpid, _Retry())
        retry.owners.update(owners)
        retry.confirms.update(confirms)
        # Refusals in a row (within twice the longest delay of the last one) double the delay; a fresh one starts over.
        in_a_row = retry.delay and now - retry.last < 2 * REFUSAL_RETRY_MAX_S
        retry.delay = min(REFUSAL_RETRY_MAX_S, retry.delay * 2) if in_a_row else REFUSAL_RETRY_FIRST_S
        retry.due, retry.last = now + retry.delay, now
        effects: list[Effect] = []
        for owner in sorted(owners, key=repr):
            kind, key = owner
            device = self._state.devices.get(str(key)) if kind == "device" else None
            port = device.port if device is not None else (key if kind == "punt" and isinstance(key, int) else 0)
            why = f"switch refused flows of {kind} {key}: {reason}; retrying in {retry.delay:g} s"
            effects.append(Alert("flow-refused", device.mac if device else "", dpid, port, "", why))
        return effects

    def retry(self, now: float) -> list[Effect]:
        """Resend the owners whose flows a switch refused, once their backoff is due (the app's flow-retry loop)."""
        effects: list[Effect] = []
        for dpid, retry in list(self._retries.items()):
            if retry.due > now:
                continue
            if dpid not in self._state.switches:
                del self._retries[dpid]  # reconnect reconciles everything anyway
                continue
            owners, confirms = set(retry.owners), tuple(sorted(retry.confirms))
            retry.owners.clear()
            retry.confirms.clear()
            retry.due = 0.0  # the delay stays: a refusal of this resend doubles it
            effects += self._flows.sync(dpid, owners, confirms=confirms)
        return effects

    def forget(self, dpid: int) -> None:
        """The switch went away: its reconnect reconciles everything."""
        self._retries.pop(dpid, None)
