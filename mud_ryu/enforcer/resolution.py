"""The enforcer's resolution/verification path: the worker's answers for MUD URLs, and what they do to devices.

An answer carries a verified file (or why there is none). Each device waiting on that URL goes through the update
policy (its own pin and history) and is then enforced under the file, kept on its last policy, or quarantined. Also
the bookkeeping of resolutions in flight: which URLs were asked for and when, so a lost answer is asked again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable

from mud_ryu.enforcer.flows import FlowBook
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.profiles import ProfileBook
from mud_ryu.enforcer.rate_limit import TokenBuckets
from mud_ryu.enforcer.state import Alert, Device, Effect, Profile, ResolveNames, ResolveRequest
from mud_ryu.fetch.budget import BUSY, ResolveBudget
from mud_ryu.fetch.refresh import AGED_SIGNATURE_REASONS
from mud_ryu.fetch.urlgate import MudUrl, UrlGateMemo, UrlRejected
from mud_ryu.fetch.wire import WireResult
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStoreError
from mud_ryu.policy.types import Decision, DeviceId, TrustState, Verdict

log = logging.getLogger(__name__)
RECHECK_S = 60.0  # a file confirmed this recently is not re-resolved for each device announcing it
RESOLVE_TIMEOUT_S = 30.0  # > the worker's fetch deadline (10 s) for the file plus its signature
URL_MEMO_ENTRIES = 1024  # distinct announced strings whose gate answers are remembered (LRU)
STANDING_ANSWERS = 1024  # URLs whose last answer is kept to answer newcomers (LRU; bounded against URL churn)
RETRY_SOON_S = 5.0  # a worker that was busy or failed on a request is asked again this much later


class Resolution:
    """The resolutions one enforcer has in flight and what their answers do to its devices. Owned by
    :class:`~mud_ryu.enforcer.core.Enforcer`; the admission path asks it to resolve a device's URL
    (:meth:`request`) and to enforce a file the device's trust already accepted (:meth:`enforce`)."""

    def __init__(self, state: EnforcerState, profiles: ProfileBook, flows: FlowBook, trust: TrustGate) -> None:
        self._state = state
        self._profiles = profiles
        self._flows = flows
        self._trust = trust
        settings = state.settings
        # URL -> when its resolution was requested. An answer that never comes (a worker lost mid-request) must not
        # leave devices quarantined for good: after RESOLVE_TIMEOUT_S the next announcement asks again.
        self.resolving: dict[str, float] = {}
        self.checked_at: dict[str, float] = {}  # URL -> when the worker last confirmed the file in force
        self.url_gate = UrlGateMemo(max_entries=URL_MEMO_ENTRIES)  # renewals repeat the same strings
        self.budget = ResolveBudget(
            settings.max_resolving_per_device, settings.max_resolving_per_port, timeout_s=RESOLVE_TIMEOUT_S
        )
        self.aged_urls: set[str] = set()  # URLs whose last answer was an aged signature (bounded by the profiles)
        self._busy_alerts = TokenBuckets(rate=1 / 60.0, burst=1.0, max_keys=4096)  # fetch-busy: one a minute a MAC
        # URL -> the worker's last answer about it, while it still stands: a file verified and put in force (within
        # RECHECK_S), or a failure (until its retry_at). A device that announces the URL meanwhile is answered from
        # it alone, without a resolution whose answer every device on the URL would hear again: what made a mass
        # join quadratic (each newcomer's request brought an answer for all).
        self._answers: OrderedDict[str, tuple[WireResult, float]] = OrderedDict()  # URL -> (answer, taken at)

    def in_flight(self, url: str, now: float) -> bool:
        asked = self.resolving.get(url)
        return asked is not None and now - asked < RESOLVE_TIMEOUT_S

    def asked(self, urls: Iterable[str], now: float, *, force: bool = False) -> list[Effect]:
        """Ask the worker for ``urls`` now, whatever is in flight (a reconnect; an operator's approval, with
        ``force``: past the cache)."""
        urls = list(urls)
        self.resolving.update((url, now) for url in urls)
        return [ResolveRequest(url, force=force) for url in urls]

    def aged(self, url: str) -> bool:
        """Whether the last answer for ``url`` was an aged signature (never enforced from memory then)."""
        return url in self.aged_urls

    def recently_checked(self, url: str, now: float) -> bool:
        return now - self.checked_at.get(url, float("-inf")) < RECHECK_S

    def _decide_all(
        self, devices: list[Device], call: Callable[[list[DeviceId]], list[Decision]]
    ) -> list[Decision | None]:
        """Run one trust-store-backed policy step for each device, committed together; all None when the store
        failed (the callers fail closed)."""
        if not devices:
            return []
        try:
            return list(call([identity(d) for d in devices]))
        except TrustStoreError as error:
            log.error("trust store failed (%s): %s", error.reason, error.message)
            return [None] * len(devices)

    def enforce(self, device: Device, profile: Profile, now: float) -> list[Effect]:
        """Put ``device`` under ``profile`` (in force) and sync it; its record is saved once the switch confirms."""
        device.url, device.sha256, device.state, device.reason, device.updated_at = (
            profile.url,
            profile.sha256,
            "enforced",
            "",
            now,
        )
        return self._flows.sync(device.dpid, [("device", device.mac), ("profile", profile.profile_id)],
                                confirms=(device.mac,))  # fmt: skip

    def request(self, device: Device, url: str, known: bool, now: float) -> list[Effect]:
        """``device`` was admitted on ``url`` (``known``: under the file its trust already accepted): ask the worker
        for the URL unless it is in flight or was checked recently. A known, recently checked file needs no new
        resolution for every device that announces it (the periodic refresh keeps it current); anything else goes
        to the worker -- within the bounds per device and per port (:mod:`mud_ryu.fetch.budget`), so one device
        cycling URLs on stalling hosts cannot starve the rest."""
        if self.in_flight(url, now) or (known and self.recently_checked(url, now)):
            return []
        standing = self._standing_answer(url, now)
        if standing is not None:
            return self._answer([device], standing, now, repeat=True)
        place = (device.dpid, device.port)
        if self.budget.admit(url, device.mac, place, now, self._port_resolving_limit(*place)):
            return self._resolution_refused(device, url, now)
        self.resolving[url] = now
        return [ResolveRequest(url)]

    def _port_resolving_limit(self, dpid: int, port: int) -> int:
        """A shared port (an access point, a hub) carries many devices, each with its own URL: its own bound."""
        settings = self._state.settings
        shared = (dpid, port) in settings.shared_ports
        return settings.max_resolving_per_shared_port if shared else settings.max_resolving_per_port

    def _resolution_refused(self, device: Device, url: str, now: float) -> list[Effect]:
        """Over its resolution bound: not fetched now. The device stays as it is (still on its URL, so another
        device's resolution of it reaches it too); its next announcement asks again. One alert a minute at most."""
        if device.state != "enforced" and device.reason != BUSY:
            device.reason, device.updated_at = BUSY, now
            self._state.store.save_device(device.record())
        if not self._busy_alerts.take(device.mac, now):
            return []
        limit = self._port_resolving_limit(device.dpid, device.port)
        why = self.budget.which_bound(device.mac, (device.dpid, device.port), limit)
        return [Alert(BUSY.replace(":", "-"), device.mac, device.dpid, device.port, url, f"{BUSY}: {why}")]

    def resolved(self, result: WireResult, now: float) -> list[Effect]:
        """The worker answered for ``result.url``: each device waiting on it goes through the update policy
        (its own pin and history), then is enforced, kept on its last policy, or quarantined."""
        self.resolving.pop(result.url, None)
        self.budget.done(result.url)
        if result.reason == BUSY or result.reason.startswith("internal:"):
            # Not an answer about the URL: the worker was full or failed on it. Asked again soon (retry_lost),
            # as if the answer had been lost, so waiting devices do not depend on announcing again.
            self.resolving[result.url] = now - RESOLVE_TIMEOUT_S + RETRY_SOON_S
            self._answers.pop(result.url, None)
        else:
            self._remember(result, now)
        return self._answer(self._state.wanting(result.url), result, now)

    def _remember(self, result: WireResult, now: float) -> None:
        """Keep a failure until its retry_at (a file verified is kept by :meth:`_verified`, once in force)."""
        self._answers.pop(result.url, None)
        failed = not result.body and result.reason not in AGED_SIGNATURE_REASONS
        if failed and result.retry_at is not None and result.retry_at > now:
            self._keep(result, now)

    def _keep(self, result: WireResult, now: float) -> None:
        """Keep ``result`` as the newest standing answer, the oldest dropped past STANDING_ANSWERS (LRU)."""
        self._answers.pop(result.url, None)
        self._answers[result.url] = (result, now)
        while len(self._answers) > STANDING_ANSWERS:
            self._answers.popitem(last=False)

    def _standing_answer(self, url: str, now: float) -> WireResult | None:
        """The worker's last answer for ``url`` while it stands: a failure before its retry_at, or the file in force
        verified within RECHECK_S (its signer not aged since)."""
        kept = self._answers.get(url)
        if kept is None:
            return None
        answer, taken_at = kept
        if now < taken_at:
            standing = False  # the clock went back: never a reason to keep an answer longer (as the worker's backoff)
        elif not answer.body:
            standing = answer.retry_at is not None and now < answer.retry_at
        else:
            profile = self._state.profiles.get(url)
            in_force = profile is not None and profile.sha256 == answer.sha256
            # A signed file stands only while its chain does: a newcomer's first use is never granted (and the
            # signer pinned) past the expiry the worker's verification found.
            signed_ok = answer.signer is None or (answer.signed_until is not None and now < answer.signed_until)
            standing = in_force and signed_ok and self.recently_checked(url, now) and not self.aged(url)
        if not standing:
            del self._answers[url]
            return None
        return answer

    def _answer(self, waiting: list[Device], result: WireResult, now: float, *, repeat: bool = False) -> list[Effect]:
        """What the worker's answer does to the devices it concerns (``repeat``: a standing answer given again to a
        device that announced since; the operator heard of the answer already, so it alerts nothing new)."""
        try:
            gated = self.url_gate.check(result.url)
        except UrlRejected:
            return []  # the worker only answers for gated URLs; nothing to act on
        effects: list[Effect] = []
        if result.reason in AGED_SIGNATURE_REASONS:
            return self._signature_aged(waiting, gated, result, now)
        if result.body:
            self.aged_urls.discard(result.url)  # a file verified now (fresh, renewed, re-signed, cached)
        if result.body and result.sha256:
            prepared = self._profiles.prepare(result.url, result.sha256, result.body)
            if isinstance(prepared, Profile):
                return self._verified(waiting, gated, prepared, result, now, repeat=repeat)
            reason = prepared
        else:
            reason = result.reason or result.outcome.value
        self._decide_all(waiting, lambda ids: self._trust.fetch_failed_many(ids, gated, reason, now))
        # A backoff answer repeats a failure that already alerted: record it, do not alert again (an attacker
        # re-announcing a dead URL must not be able to flood the operator).
        loud = (result.alert or bool(result.body)) and not repeat
        for device in waiting:
            if device.state == "enforced":
                # A refresh or a URL change failed: the last verified policy stays in force (never widen); a
                # pending change stays pending, so a later successful resolution of the new URL still applies.
                if loud:
                    effects.append(Alert("kept-last", device.mac, device.dpid, device.port, result.url,
                                         f"{reason}: {result.message}"))  # fmt: skip
                continue
            if device.reason != reason:  # a repeat (every device on a failing URL hears each answer) writes nothing
                device.reason, device.updated_at = reason, now
                self._state.store.save_device(device.record())
            if loud:
                effects.append(Alert("quarantined", device.mac, device.dpid, device.port, result.url,
                                     f"{reason}: {result.message}"))  # fmt: skip
        return effects

    def _signature_aged(self, waiting: list[Device], gated: MudUrl, result: WireResult, now: float) -> list[Effect]:
        """The file's signer is no longer valid at ``now`` (expired, or not yet valid after a clock change) and the
        manufacturer has not signed it again. Never fresh policy: a device that holds exactly this file keeps it
        (``expired_signature_action = keep-last``, the default) or is quarantined; every other device waiting on
        the URL stays where it is (a first use is never granted on an aged signature). Alerted only when the
        worker says so (not on every backoff answer an announcing device triggers)."""
        self.checked_at.pop(result.url, None)  # nobody is enforced from the profile without asking again
        if result.url in self._state.profiles:
            self.aged_urls.add(result.url)
        keep = self._state.settings.expired_signature_action == "keep-last"
        effects: list[Effect] = []
        self._decide_all(waiting, lambda ids: self._trust.fetch_failed_many(ids, gated, result.reason, now))
        for device in waiting:
            holds = device.state == "enforced" and (device.url, device.sha256) == (result.url, result.sha256)
            if holds and keep:
                action = "last verified policy kept"
            elif holds:
                # Quarantined but still on its URL (as a device waiting for its first file is): the file signed
                # again lifts it through the usual verified path.
                device.sha256, device.state = None, "quarantined"
                effects += self._flows.sync(device.dpid, [("device", device.mac)], confirms=(device.mac,))
                action = "quarantined"
            else:
                # It holds another file (a URL change in flight: that one stays in force) or nothing yet: it stays
                # as it is, still waiting on this URL, so the file signed again reaches it.
                if result.alert and device.state != "enforced":
                    effects.append(Alert("signature-expired", device.mac, device.dpid, device.port, result.url,
                                         f"{result.reason} (not enforced): {result.message}"))  # fmt: skip
                continue
            if device.reason != result.reason:
                device.reason, device.updated_at = result.reason, now
                self._state.store.save_device(device.record())
            if result.alert:
                effects.append(Alert("signature-expired", device.mac, device.dpid, device.port, result.url,
                                     f"{result.reason} ({action}): {result.message}"))  # fmt: skip
        return effects

    def _verified(
        self,
        waiting: list[Device],
        gated: MudUrl,
        prepared: Profile,
        result: WireResult,
        now: float,
        *,
        repeat: bool = False,
    ) -> list[Effect]:
        effects: list[Effect] = []
        try:
            file_url = self.url_gate.check(prepared.file_mud_url)  # canonical already: prepare gated it
        except UrlRejected:
            log.error("the canonical mud-url of %s no longer passes the gate: nothing applied", result.url)
            return []
        applies: list[Device] = []
        refused: list[tuple[Device, Decision | None]] = []
        decisions = self._decide_all(
            waiting, lambda ids: self._trust.verified_many(ids, gated, prepared.sha256, result.signer, file_url, now)
        )
        for device, decision in zip(waiting, decisions, strict=True):
            if decision is not None and decision.verdict is Verdict.APPLY:
                applies.append(device)  # the trust record that allows it is already on disk
            elif decision is not None and decision.reason_code == "unchanged" and _restorable(device, prepared):
                applies.append(device)  # its trust holds exactly this file, verified now: e.g. validly signed again
            elif decision is None or decision.verdict is not Verdict.IGNORE:
                refused.append((device, decision))
        if applies:
            profiles = self._state.profiles
            newly = result.url not in profiles or profiles[result.url].sha256 != prepared.sha256
            if newly:
                self._profiles.register(prepared, result.body)
            if not repeat:
                self.checked_at[result.url] = now
                self._keep(result, now)  # it stands for RECHECK_S: see _standing_answer
            if newly and prepared.dns_names:  # bind its names now, before a device's first connection needs them
                effects.append(ResolveNames(tuple(sorted(prepared.dns_names))))
            for device in applies:
                if (device.state, device.url, device.sha256, device.reason) != (
                    "enforced",
                    prepared.url,
                    prepared.sha256,
                    "",
                ):
                    effects += self.enforce(device, prepared, now)
            for dpid in {d.dpid for d in applies}:  # a new version of a shared profile: replace its rules
                effects += self._flows.sync(dpid, [("profile", prepared.profile_id)])
        for device, decision in refused:
            effects += self._refuse(device, decision, result.url, prepared, bool(applies), now)
        if result.alert and not repeat:
            effects += [Alert(result.outcome.value, d.mac, d.dpid, d.port, result.url,
                              f"{result.reason}: {result.message}") for d in applies]  # fmt: skip
        return effects

    def _refuse(
        self, device: Device, decision: Decision | None, url: str, prepared: Profile, replaced: bool, now: float
    ) -> list[Effect]:
        """The policy refused the verified file for this device: keep its last policy or quarantine it."""
        code = decision.reason_code if decision is not None else "trust-store-failed"
        message = decision.message if decision is not None else "trust state unavailable"
        alert = Alert("update-violation", device.mac, device.dpid, device.port, url, f"{code}: {message}")
        record = self._trust.record(identity(device))
        on_changed_profile = replaced and device.url == prepared.url  # its shared rules just changed under it
        if decision is not None and record.state is TrustState.TRUSTED and not on_changed_profile:
            if device.reason == f"pending:{url}":
                device.reason = f"refused:{code}"
                self._state.store.save_device(device.record())
            return [alert]
        device.url, device.sha256, device.state = None, None, "quarantined"
        device.reason, device.updated_at = f"policy:{code}", now
        self._state.store.save_device(device.record())
        return [*self._flows.sync(device.dpid, [("device", device.mac)], confirms=(device.mac,)), alert]

    def retry_lost(self, now: float) -> list[Effect]:
        """Resolutions asked for more than RESOLVE_TIMEOUT_S ago and never answered are asked again (devices that
        do not re-announce soon, e.g. a DHCP client holding a long lease, would otherwise wait for good)."""
        lost = [url for url, asked in self.resolving.items() if now - asked >= RESOLVE_TIMEOUT_S]
        for url in lost:
            self.resolving[url] = now
        return [ResolveRequest(url) for url in sorted(lost)]


def identity(device: Device) -> DeviceId:
    """The identity the trust store keys a device by: (switch, port, MAC)."""
    return DeviceId(device.dpid, device.port, device.mac)


def _restorable(device: Device, profile: Profile) -> bool:
    """On this URL but not enforced -- quarantined for an aged signer (or for a refusal to fetch since) -- or
    enforced and shown with the aged reason. The trust record holds exactly the file (the policy said "unchanged"),
    so its verification now restores the device. Any other enforced device is left alone: a routine refresh does
    no work per device, and a pending change (``pending:<url>``) stays pending."""
    if device.url != profile.url:
        return False
    return device.state != "enforced" or device.reason in AGED_SIGNATURE_REASONS
