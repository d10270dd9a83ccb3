"""A harness for the enforcer core: an Enforcer with real stores in a temporary directory, and the OpenFlow table
simulator holding whatever the enforcer's flow updates installed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mud_ryu.discovery.scan import Announcement
from mud_ryu.dns.store import DnsStore
from mud_ryu.enforcer.core import Alert, Effect, Enforcer, FlowUpdate
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.wire import WireResult
from mud_ryu.guard.lease_store import LeaseStore
from mud_ryu.openflow.flowkey import rule_key
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStore
from mud_ryu.policy.table import UpdatePolicy
from mud_ryu.settings import DefaultPolicy, MudSettings
from tests.ofsim import FlowTableSim
from tests.packets import SYN, Packet

DPID = 0x1
URL = "https://mud.test/bulb.json"
URL2 = "https://mud.test/bulb-v2.json"
PEER, PEER_MAC, PEER_PORT = "203.0.113.10", "02:00:00:00:00:fe", 5
UPLINK = (DPID, PEER_PORT)  # the lab switch's trusted port: the resolver's answers come in here
BULB, BULB2, LAPTOP = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
IPS = {BULB: "10.0.0.1", BULB2: "10.0.0.2", LAPTOP: "10.0.0.3"}
NOW = 1_767_225_600.0


class Lab:
    """An enforcer, its store and a simulated switch holding whatever the enforcer's updates installed."""

    def __init__(self, state: Path, policy: DefaultPolicy = DefaultPolicy.ALLOW, **options: object) -> None:
        """``options``: MudSettings fields, and ``persist_dns=True`` / ``persist_leases=True`` for a DNS binding
        store / a DHCP lease store in the state directory."""
        persist_dns = bool(options.pop("persist_dns", False))
        persist_leases = bool(options.pop("persist_leases", False))
        options.setdefault("uplink_ports", frozenset({(DPID, 5)}))
        options.setdefault("min_pending_interval", 0)  # like the URL change interval: tests that want it set it
        self.settings = MudSettings(
            state_dir=str(state),
            default_policy=policy,
            min_url_change_interval=0,
            **options,  # type: ignore[arg-type]
        )
        self.store = DeviceStore.open(self.settings.device_db_path)
        self.trust_store = TrustStore.open(self.settings.state_dir)
        self.trust = TrustGate(UpdatePolicy(self.settings.policy_settings()), self.trust_store)
        self.dns_store = DnsStore.open(self.settings.dns_db_path) if persist_dns else None
        self.lease_store = LeaseStore.open(self.settings.lease_db_path) if persist_leases else None
        self.enforcer = Enforcer(self.settings, self.store, self.trust, NOW, self.dns_store, self.lease_store)
        self.sim = FlowTableSim(frozenset({1, 2, 3, 4, 5}))
        self.effects: list[Effect] = []

    def apply(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            if isinstance(effect, FlowUpdate):
                self.sim.add_all(effect.adds)  # adds first (make-before-break), then deletes
                for rule in effect.deletes:
                    self.sim.delete_strict(rule.table, rule.priority, rule.match)
                for stale in effect.stale:
                    assert isinstance(stale, tuple)
                    self.sim.delete_strict(*stale)
                self.enforcer.confirmed(effect.confirms)
        self.effects.extend(effects)
        return effects

    def connect(self) -> list[Effect]:
        self.enforcer.switch_up(DPID, [1, 2, 3, 4, 5], metered=True)
        held = [(rule_key(r), (r.table, r.priority, r.match)) for r in self.sim.rules()]
        return self.apply(self.enforcer.reconcile(DPID, held))

    def announce(self, mac: str, port: int, url: str, *, bind: bool = True) -> list[Effect]:
        """``mac`` announces ``url`` from ``port``; ``bind``: and then sends from its lab address (IPS), which the
        IP source guard binds to it (the controller's answer to its first held frame)."""
        ann = Announcement("dhcpv4", mac, None, url, msg_type=3, chaddr=mac)
        effects = self.apply(self.enforcer.discovered(DPID, port, ann, NOW))
        if bind and mac in IPS:
            effects += self.bind(mac, port, IPS[mac])
        return effects

    def bind(self, mac: str, port: int, address: str) -> list[Effect]:
        """The device's first frame from ``address``, held at the controller (the IP source guard)."""
        return self.apply(self.enforcer.source_seen(DPID, port, mac, address, NOW))

    def resolve(
        self,
        url: str,
        body: bytes | None,
        outcome: Outcome = Outcome.FRESH,
        reason: str = "",
        signer: Signer | None = None,
    ) -> None:
        sha = hashlib.sha256(body).hexdigest() if body else None
        result = WireResult(1, url, outcome, reason, "test", None, None, sha, signer, body or b"")
        self.apply(self.enforcer.resolved(result, NOW))

    def tcp(self, src: str, port: int, dport: int, flags: int = SYN) -> Packet:
        return Packet.tcp(port, src, PEER_MAC, IPS[src], PEER, 40000, dport, flags)

    def back(self, dst: str, sport: int, flags: int) -> Packet:
        return Packet.tcp(PEER_PORT, PEER_MAC, dst, PEER, IPS[dst], sport, 40000, flags)


def alerts(effects: list[Effect]) -> list[str]:
    return [e.code for e in effects if isinstance(e, Alert)]


def device_rules(lab: Lab, mac: str) -> list[object]:
    return [r for r in lab.sim.rules() if ("eth_src", mac) in r.match or ("eth_dst", mac) in r.match]
