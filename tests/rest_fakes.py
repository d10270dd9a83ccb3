"""An in-memory :class:`mud_ryu.api.types.Backend` for the REST handler and CLI tests.

A test double of the enforcer's side of the API (the real one is integrated in the app and tested end to end):
it keeps its devices, alerts, my-controller entries and DNS bindings in dicts, changes them on approve/revoke/forget and
my-controller set/clear as the enforcer would in spirit (entries are checked by the enforcer's own pure
:mod:`mud_ryu.enforcer.my_controller`), and records every call so a test can prove that a refused request never
reached it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mud_ryu.api.types import (
    ActionResult,
    AlertView,
    DecisionView,
    DeviceDetail,
    DeviceView,
    DnsAddressView,
    DnsNameView,
    DnsTable,
    HistoryEntry,
    MyControllerEntryView,
    MyControllerTable,
    PendingView,
    dpid_hex,
)
from mud_ryu.dns.types import COUNTERS
from mud_ryu.enforcer.my_controller import MyControllerRefused, canonical_url, check_entry, entries

URL1 = "https://mud.example.com/household/toaster/model1945.json"
URL2 = "https://mud.example.com/household/toaster/revision2.json"
MAC_A = "00:00:5e:00:53:0a"
MAC_B = "00:00:5e:00:53:0b"
SHA1 = "a" * 64
SHA2 = "c" * 64  # the digest of the toaster's pending (refused) file
MYCTL_DEFAULT = ("192.0.2.99",)
MYCTL_SETTINGS = {"https://mud.example.com/printer.json": ("198.51.100.7",)}


def sample_devices() -> dict[str, DeviceDetail]:
    toaster = DeviceDetail(
        mac=MAC_A,
        dpid=dpid_hex(1),
        port=3,
        url=URL1,
        via="dhcpv4",
        state="enforced",
        signer="ca:1f2e example toaster CA / CN=mud.example.com",
        profile_id=2,
        flow_count=2,
        last_decision=DecisionView("violation", "big-change-refused", 1_700_000_100.0),
        history=(HistoryEntry(URL1, SHA1, 1_700_000_000.0),),
        pending=PendingView(URL2, "needs-approval", "big-change-refused", SHA2, 1_700_000_100.0),
        flows=(
            "table=2, priority=3000, cookie=0x1, dl_src=00:00:5e:00:53:0a actions=goto_table:3",
            "table=3, priority=2000, cookie=0x2, ip,nw_dst=192.0.2.1,tcp,tp_dst=443 actions=goto_table:4",
        ),
    )
    stranger = DeviceDetail(
        mac=MAC_B,
        dpid=dpid_hex(0xABC),
        port=7,
        url=None,
        via="lldp",
        state="quarantined",
        signer=None,
        profile_id=None,
        flow_count=0,
        last_decision=None,
    )
    return {d.mac: d for d in (toaster, stranger)}


def sample_alerts() -> list[AlertView]:
    return [
        AlertView("spoofed-announcement", MAC_A, dpid_hex(1), 5, URL1, "MAC pinned on port 3 seen on port 5", 30.0),
        AlertView("kept-last", MAC_A, dpid_hex(1), 3, URL2, "big change refused; keeping the last file", 20.0),
        AlertView("quarantined", MAC_B, dpid_hex(0xABC), 7, "", "no MUD URL verified yet", 10.0),
    ]


DNS_NAME = "api.vendor.example"
DNS_IDLE_NAME = "updates.vendor.example"


def sample_dns() -> dict[str, DnsNameView]:
    """Two watched names (normalised): one bound to an IPv4 and an IPv6 address, one not answered yet."""
    bound = DnsNameView(
        DNS_NAME, (URL1, URL2), (DnsAddressView("198.51.100.7", 299.5), DnsAddressView("2001:db8::7", 12.0))
    )
    return {DNS_NAME: bound, DNS_IDLE_NAME: DnsNameView(DNS_IDLE_NAME, (URL1,), ())}


def sample_dns_counters() -> dict[str, int]:
    """Every counter of the binding table (DnsBindings.counters() has them all, zero or not)."""
    return {**dict.fromkeys(COUNTERS, 0), "queries": 3, "answers-merged": 2, "addresses-added": 2, "unsolicited": 1,
            "wrong-txid": 1, "not-resolver": 1}  # fmt: skip


@dataclass
class FakeBackend:
    detail: dict[str, DeviceDetail] = field(default_factory=sample_devices)
    alert_log: list[AlertView] = field(default_factory=sample_alerts)  # newest first
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_with: Exception | None = None  # raised by every call: the handler's internal-error path
    my_controller_default: tuple[str, ...] = MYCTL_DEFAULT
    my_controller_settings: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(MYCTL_SETTINGS))
    my_controller_operator: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dns_names: dict[str, DnsNameView] = field(default_factory=sample_dns)  # by normalised name
    dns_counters: dict[str, int] = field(default_factory=sample_dns_counters)
    dns_outstanding: int = 1

    def _enter(self, *call: str) -> None:
        self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with

    @property
    def mutations(self) -> list[tuple[str, ...]]:
        changes = ("approve", "revoke", "forget", "set_my_controller", "clear_my_controller")
        return [c for c in self.calls if c[0] in changes]

    def devices(self) -> list[DeviceView]:
        self._enter("devices")
        return [
            DeviceView(**{f.name: getattr(d, f.name) for f in dataclasses.fields(DeviceView)})
            for d in self.detail.values()
        ]

    def device(self, mac: str) -> DeviceDetail | None:
        self._enter("device", mac)
        return self.detail.get(mac)

    def alerts(self, limit: int) -> list[AlertView]:
        self._enter("alerts", str(limit))
        return self.alert_log[:limit]

    def approve(self, mac: str, url: str, sha256: str, chosen: bool) -> ActionResult:
        """The enforcer's rules in spirit (operator_actions.approve): the pending change must be the URL and digest
        named, unless the operator chose the URL."""
        self._enter("approve", mac, url, sha256, str(chosen))
        current = self.detail.get(mac)
        if current is None:
            return ActionResult(False, "unknown-device", f"no device {mac}")
        if not url.startswith("https://"):
            return ActionResult(False, "bad-url:not-https", "the URL must be https")
        pending = current.pending
        if not chosen:
            if pending is None:
                return ActionResult(False, "nothing-to-approve", f"{mac} has no pending URL change")
            if pending.status == "fetching":
                return ActionResult(False, "pending-fetching", f"{url} is being fetched")
            if pending.url != url or (pending.sha256 is not None and pending.sha256 != sha256):
                return ActionResult(False, "pending-changed", f"{mac}'s pending change is now {pending.url}")
        self.detail[mac] = dataclasses.replace(
            current,
            url=url,
            state="enforced",
            pending=None,
            last_decision=DecisionView("apply", "approved", 1_700_000_200.0),
            history=(*current.history, HistoryEntry(url, sha256, 1_700_000_200.0)),
        )
        return ActionResult(True, "approved", f"{url} approved for {mac}")

    def revoke(self, mac: str) -> ActionResult:
        self._enter("revoke", mac)
        current = self.detail.get(mac)
        if current is None:
            return ActionResult(False, "unknown-device", f"no device {mac}")
        if current.state == "quarantined":
            return ActionResult(False, "already-quarantined", f"{mac} is already quarantined")
        self.detail[mac] = dataclasses.replace(
            current, state="quarantined", last_decision=DecisionView("quarantine", "revoked", 1_700_000_300.0)
        )
        return ActionResult(True, "revoked", f"{mac} quarantined until a URL is approved")

    def forget(self, mac: str) -> ActionResult:
        self._enter("forget", mac)
        if self.detail.pop(mac, None) is None:
            return ActionResult(False, "unknown-device", f"no device {mac}")
        return ActionResult(True, "forgotten", f"{mac} forgotten")

    def my_controllers(self) -> MyControllerTable:
        self._enter("my_controllers")
        merged = entries(self.my_controller_settings, self.my_controller_operator)
        return MyControllerTable(
            self.my_controller_default, tuple(MyControllerEntryView(e.url, e.addresses, e.source) for e in merged)
        )

    def set_my_controller(self, url: str, addresses: list[str]) -> ActionResult:
        self._enter("set_my_controller", url, *addresses)
        try:
            canonical, checked = check_entry(url, addresses)
        except MyControllerRefused as refused:
            return ActionResult(False, refused.reason, refused.message)
        self.my_controller_operator[canonical] = checked
        return ActionResult(True, "set", f"my-controller of {canonical}: {', '.join(checked)}")

    def clear_my_controller(self, url: str) -> ActionResult:
        self._enter("clear_my_controller", url)
        try:
            canonical = canonical_url(url)
        except MyControllerRefused as refused:
            return ActionResult(False, refused.reason, refused.message)
        if self.my_controller_operator.pop(canonical, None) is None:
            return ActionResult(False, "unknown-entry", f"no operator entry for {canonical}")
        return ActionResult(True, "cleared", f"my-controller of {canonical} is from the settings again")

    def dns(self, name: str | None) -> DnsTable:
        self._enter("dns", str(name))
        names = sorted(self.dns_names) if name is None else [name] if name in self.dns_names else []
        return DnsTable(
            tuple(self.dns_names[n] for n in names), self.dns_outstanding, dict(sorted(self.dns_counters.items()))
        )
