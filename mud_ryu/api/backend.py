"""The operator API's view of the running enforcer: devices, alerts, my-controller entries and the approve / revoke /
forget / my-controller actions.

Called by the app on its one event loop (the REST request handler runs there too), so reading the enforcer's
state needs no locks. Actions return the enforcer's effects to ``execute``: the same path as any other event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

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
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.dns.types import normalize_name
from mud_ryu.enforcer import operator as operator_actions
from mud_ryu.enforcer.core import Enforcer
from mud_ryu.enforcer.state import Alert, Device, Effect
from mud_ryu.openflow.ofctl_text import render_flow
from mud_ryu.policy.types import DeviceId, TrustRecord

TimedAlert = tuple[float, Alert]


class EnforcerBackend:
    def __init__(
        self,
        enforcer: Enforcer,
        alerts: Sequence[TimedAlert],
        execute: Callable[[Iterable[Effect]], None],
        clock: Callable[[], float],
    ) -> None:
        self._enforcer = enforcer
        self._alerts = alerts
        self._execute = execute
        self._clock = clock

    def _record(self, device: Device) -> TrustRecord:
        return self._enforcer.trust.record(DeviceId(device.dpid, device.port, device.mac))

    def _rules(self, device: Device) -> list[FlowRule]:
        """The flows the device holds on its switch: its own and its profile's."""
        sw = self._enforcer.switches.get(device.dpid)
        if sw is None:
            return []
        rules = list(sw.owners.get(("device", device.mac), ()))
        profile_id = sw.device_profile.get(device.mac)
        if profile_id is not None:
            rules += sw.owners.get(("profile", profile_id), ())
        return rules

    def _view(self, device: Device, flow_count: int) -> DeviceView:
        record = self._record(device)
        sw = self._enforcer.switches.get(device.dpid)
        profile_id = sw.device_profile.get(device.mac) if sw is not None else None
        decision = record.last_decision
        return DeviceView(
            mac=device.mac,
            dpid=dpid_hex(device.dpid),
            port=device.port,
            url=device.url,
            via=device.via,
            state=record.state.value if device.state == "quarantined" and record.state.value != "unknown"
            else device.state,
            signer=str(record.signer) if record.signer is not None else None,
            profile_id=profile_id,
            flow_count=flow_count,
            last_decision=None if decision is None else DecisionView(decision.verdict.value, decision.reason_code,
                                                                     decision.at),
        )  # fmt: skip

    def devices(self) -> list[DeviceView]:
        # The list shows only a count: no flow is rendered.
        return [
            self._view(d, len(self._rules(d))) for d in sorted(self._enforcer.devices.values(), key=lambda d: d.mac)
        ]

    def device(self, mac: str) -> DeviceDetail | None:
        device = self._enforcer.devices.get(mac)
        if device is None:
            return None
        flows = tuple(sorted(render_flow(rule) for rule in self._rules(device)))  # rendered once: count and list
        view = self._view(device, len(flows))
        record = self._record(device)
        pending = record.pending
        shown = None if pending is None else PendingView(
            pending.url, pending.status, pending.reason, pending.sha256, pending.at
        )  # fmt: skip
        return DeviceDetail(
            **{name: getattr(view, name) for name in DeviceView.__dataclass_fields__},
            history=tuple(HistoryEntry(a.url, a.sha256, a.at) for a in record.history),
            pending=shown,
            flows=flows,
        )

    def alerts(self, limit: int) -> list[AlertView]:
        newest = list(self._alerts)[-limit:][::-1]
        return [AlertView(a.code, a.mac, dpid_hex(a.dpid), a.port, a.url, a.message, at) for at, a in newest]

    def _act(self, outcome: operator_actions.ActionOutcome) -> ActionResult:
        self._execute(outcome.effects)
        return ActionResult(outcome.ok, outcome.reason, outcome.message)

    def approve(self, mac: str, url: str, sha256: str, chosen: bool) -> ActionResult:
        return self._act(operator_actions.approve(self._enforcer, mac, url, sha256, self._clock(), chosen=chosen))

    def revoke(self, mac: str) -> ActionResult:
        return self._act(operator_actions.revoke(self._enforcer, mac, self._clock()))

    def forget(self, mac: str) -> ActionResult:
        return self._act(operator_actions.forget(self._enforcer, mac, self._clock()))

    def my_controllers(self) -> MyControllerTable:
        entries = self._enforcer.my_controller_entries()
        return MyControllerTable(
            tuple(self._enforcer.settings.my_controller),
            tuple(MyControllerEntryView(e.url, e.addresses, e.source) for e in entries),
        )

    def set_my_controller(self, url: str, addresses: list[str]) -> ActionResult:
        return self._act(operator_actions.set_my_controller(self._enforcer, url, addresses))

    def clear_my_controller(self, url: str) -> ActionResult:
        return self._act(operator_actions.set_my_controller(self._enforcer, url, None))

    def dns(self, name: str | None) -> DnsTable:
        table = self._enforcer.dns
        watched = table.watched()
        names = sorted(watched) if name is None else [name] if name in watched else []
        users: dict[str, set[str]] = {n: set() for n in names}
        for url, profile in self._enforcer.profiles.items():  # the table's owners are the profiles' URLs
            for spelling in profile.dns_names:
                norm = normalize_name(spelling)
                if norm in users:
                    users[norm].add(url)
        now = self._clock()
        bound, expiries = table.current(), table.expiries()
        return DnsTable(
            names=tuple(
                DnsNameView(
                    n,
                    tuple(sorted(users[n])),
                    tuple(DnsAddressView(a, round(max(0.0, expiries[n][a] - now), 3)) for a in bound.get(n, ())),
                )
                for n in names
            ),
            outstanding_queries=table.outstanding(),
            counters=dict(sorted(table.counters().items())),
        )
