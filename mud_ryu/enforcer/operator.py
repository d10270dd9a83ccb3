"""What an operator may do (REST API, ``mud-ryu approve|revoke|forget|my-controller``): approve a pending or refused
URL, revoke trust, forget the device, set or clear a MUD URL's my-controller addresses. Each returns whether it
happened, a stable reason, and the enforcer's effects for the app to carry out. Pure like the enforcer: ``now`` is an
argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mud_ryu.enforcer.core import Enforcer
from mud_ryu.enforcer.devicestore import StoreError
from mud_ryu.enforcer.my_controller import MyControllerRefused, canonical_url
from mud_ryu.enforcer.state import Effect
from mud_ryu.fetch.urlgate import UrlRejected, check_mud_url
from mud_ryu.policy.store import TrustStoreError
from mud_ryu.policy.types import DeviceId, Pending, Verdict, is_sha256


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    ok: bool
    reason: str  # stable: approved, revoked, forgotten, unknown-device, nothing-to-approve, bad-url, ...
    message: str
    effects: tuple[Effect, ...] = ()


def _identity(enforcer: Enforcer, mac: str) -> DeviceId | None:
    device = enforcer.devices.get(mac)
    return None if device is None else DeviceId(device.dpid, device.port, device.mac)


def approve(enforcer: Enforcer, mac: str, url: str, sha256: str, now: float, *, chosen: bool = False) -> ActionOutcome:
    """Approve the file ``sha256`` at ``url``: the device's pending change as the operator reviewed it, or (``chosen``)
    a URL of the operator's choosing. The file is then fetched and verified as usual and applied only if it hashes to
    ``sha256``; the approval overrides the URL rule, rollback and the signer pin once (the policy's approve row).

    Refusals besides the URL gate's: ``bad-field`` (not a SHA-256 hex digest), ``nothing-to-approve`` (no pending
    change and not ``chosen``), ``pending-changed`` (the pending change is not the URL and digest named: the device
    replaced it, or its file changed since it was shown), ``pending-fetching`` (the policy is fetching it; its
    outcome decides, and a refusal makes it reviewable with a digest)."""
    identity = _identity(enforcer, mac)
    if identity is None:
        return ActionOutcome(False, "unknown-device", f"no device {mac}")
    digest = sha256.lower()
    if not is_sha256(digest):
        return ActionOutcome(False, "bad-field", "sha256 must be the file's SHA-256 digest: 64 hex digits")
    try:
        gated = check_mud_url(url)
    except UrlRejected as rejected:
        return ActionOutcome(False, "bad-url", f"{rejected.reason}: {rejected.message}")
    if not chosen:
        refusal = _pending_refusal(mac, enforcer.trust.record(identity).pending, gated.url, digest)
        if refusal is not None:
            return refusal
    try:
        decision = enforcer.trust.approve(identity, gated, digest, now)
    except TrustStoreError as error:
        return ActionOutcome(False, "trust-store-failed", error.message)
    if decision.verdict is not Verdict.FETCH:
        return ActionOutcome(False, decision.reason_code, decision.message)
    device = enforcer.devices[mac]
    device.reason, device.updated_at = f"pending:{gated.url}", now  # the resolution of this URL applies to it
    enforcer.state.place(mac)  # the answer for that URL finds it (the wanting index)
    try:
        enforcer.store.save_device(device.record(), immediately=True)
    except StoreError as error:  # the approval is on disk (trust store); the fetch waits for a retry
        return ActionOutcome(False, "store-failed", f"approval recorded, device row not saved: {error}")
    fetch = tuple(enforcer.resolution.asked([gated.url], now, force=True))
    return ActionOutcome(True, "approved", f"{gated.url} (sha256 {digest}) approved for {mac}; fetching", fetch)


def _pending_refusal(mac: str, pending: Pending | None, url: str, sha256: str) -> ActionOutcome | None:
    """Why approving ``url``/``sha256`` as the device's pending change is refused, or None. A pending change without
    a digest was refused on its URL alone and never fetched (the controller does not contact a host a device named
    against the rules): the digest the operator names is then their own review of the file, and binds the fetch."""
    if pending is None:
        why = "to approve a URL of your own choosing, say so (chosen)"
        return ActionOutcome(False, "nothing-to-approve", f"{mac} has no pending URL change; {why}")
    if pending.url != url:
        return ActionOutcome(False, "pending-changed", f"{mac}'s pending change is now {pending.url} "
                             f"({pending.status}), not {url}")  # fmt: skip
    if pending.status == "fetching":
        return ActionOutcome(False, "pending-fetching", f"{url} is being fetched under the policy; await its outcome")
    if pending.sha256 is not None and pending.sha256 != sha256:
        return ActionOutcome(False, "pending-changed", f"the pending file of {url} is sha256 {pending.sha256}, "
                             f"not {sha256}")  # fmt: skip
    return None


def revoke(enforcer: Enforcer, mac: str, now: float) -> ActionOutcome:
    """Withdraw the device's trust: quarantined (DHCP, ARP, ND only) until an operator approves a URL again."""
    identity = _identity(enforcer, mac)
    if identity is None:
        return ActionOutcome(False, "unknown-device", f"no device {mac}")
    try:
        decision = enforcer.trust.revoke(identity, now)
    except TrustStoreError as error:
        return ActionOutcome(False, "trust-store-failed", error.message)
    device = enforcer.devices[mac]
    device.url, device.sha256, device.state = None, None, "quarantined"
    device.reason, device.updated_at = f"policy:{decision.reason_code}", now
    # Narrowing never waits on the device store: the flows go even when the device row cannot be written.
    effects = tuple(enforcer.sync_device(device.mac))
    try:
        enforcer.store.save_device(device.record(), immediately=True)
    except StoreError as error:
        return ActionOutcome(False, "store-failed", f"{mac} quarantined now, but its device row was not saved "
                             f"(a restart may restore its old state): {error}", effects)  # fmt: skip
    return ActionOutcome(True, "revoked", f"{mac} quarantined until a URL is approved", effects)


def forget(enforcer: Enforcer, mac: str, now: float) -> ActionOutcome:
    """Remove the device: its flows, its record and its trust. Its next announcement is a first use again."""
    identity = _identity(enforcer, mac)
    if identity is None:
        return ActionOutcome(False, "unknown-device", f"no device {mac}")
    device = enforcer.devices[mac]
    device.state, device.updated_at = "absent", now
    effects = tuple(enforcer.sync_device(mac))  # its flows go whatever the stores do below
    try:
        enforcer.store.forget(mac)
    except StoreError as error:
        # Kept (absent, no flows) so the operator can retry; its trust stays, as the device row does.
        return ActionOutcome(False, "store-failed", f"{mac} has no flows now, but was not forgotten: {error}", effects)
    del enforcer.devices[mac]
    try:
        enforcer.trust.forget(identity)
    except TrustStoreError as error:
        return ActionOutcome(False, "trust-store-failed", error.message, effects)
    return ActionOutcome(True, "forgotten", f"{mac} forgotten", effects)


def set_my_controller(enforcer: Enforcer, url: str, addresses: Sequence[str] | None) -> ActionOutcome:
    """Set (``addresses``) or clear (None) the operator's my-controller entry for ``url``: it replaces the settings
    for that URL until cleared. The profiles in force for the URL that use my-controller are recompiled; only their
    changed flows are sent. Refusals: ``bad-url:<gate reason>``, ``bad-field``, ``bad-address``, ``too-broad``,
    ``unknown-entry`` (clear without an entry), ``store-failed``."""
    try:
        canonical = canonical_url(url)
        effects = tuple(enforcer.set_my_controller(canonical, addresses))
    except MyControllerRefused as refused:
        return ActionOutcome(False, refused.reason, refused.message)
    except StoreError as error:
        return ActionOutcome(False, "store-failed", str(error))
    entry = next((e for e in enforcer.my_controller_entries() if e.url == canonical), None)
    if addresses is not None:
        shown = ", ".join(entry.addresses) if entry is not None else "?"
        return ActionOutcome(True, "set", f"my-controller of {canonical}: {shown}", effects)
    default = enforcer.settings.my_controller
    now = entry.addresses if entry is not None else default
    where = "its settings entry" if entry is not None else "the settings' default"
    shown = ", ".join(now) if now else "nothing (its my-controller ACEs allow no traffic)"
    return ActionOutcome(True, "cleared", f"my-controller of {canonical} is {where} again: {shown}", effects)
