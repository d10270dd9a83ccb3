"""Carrying out the enforcer's effects at the controller edge: flow updates with their barriers, held frames released
behind a barrier, resolution requests to the worker, operator alerts.

Split from :mod:`mud_ryu.app` so the app module holds only the framework wiring and its event handlers. Flow-mods
and barriers go out as the bytes :mod:`mud_ryu.openflow.wire` encodes (byte-identical to Ryu's objects, tested),
each update's adds in one write, on transaction ids taken through :mod:`mud_ryu.compat`; the rarer messages
(packet-outs, meters, deletes of stale entries) are built with its ``parser``/``ofproto``, never from the framework
itself. It logs under the app's logger (operators and benchmarks read the app's log
lines, e.g. ``confirmed mac=...``, under that one name).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable
from typing import Any

from mud_ryu.compat import ofproto, parser, reserve_xids, send_bytes
from mud_ryu.compiler.edgeflows import DNS_METER, LEARN_METER, port_meter
from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.enforcer.core import Alert, Effect, Enforcer, FlowUpdate, ResolveRequest
from mud_ryu.enforcer.rate_limit import TokenBuckets
from mud_ryu.enforcer.state import PacketOut, ResolveNames
from mud_ryu.fetch.client import WorkerClient
from mud_ryu.guard.source import SOURCE_METER
from mud_ryu.openflow import wire
from mud_ryu.settings import MudSettings

MAX_XID = 0xFFFFFFFF

LOG = logging.getLogger("mud_ryu.app")
ALERT_HISTORY = 1000

# What a barrier confirms: each device's MAC and the state it was in as the flows went out.
Confirms = tuple[tuple[str, str], ...]


def format_dpid(dpid: int) -> str:
    return f"{dpid:016x}"


def printable(text: str, limit: int = 255) -> str:
    """Attacker strings (URLs, reasons) go to logs escaped and bounded."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])


class EffectRunner:
    """Sends what the enforcer asks for to the connected switches (``datapaths``, filled by the app's handlers),
    the resolver worker and the alert history, and remembers what each outstanding barrier stands for."""

    def __init__(self, enforcer: Enforcer, settings: MudSettings, worker: WorkerClient) -> None:
        self.enforcer = enforcer
        self.settings = settings
        self.worker = worker
        self.datapaths: dict[int, Any] = {}
        self.alerts: collections.deque[tuple[float, Alert]] = collections.deque(maxlen=ALERT_HISTORY)
        self._barriers: dict[tuple[int, int], tuple[Confirms, int]] = {}  # final barrier -> (confirms, update serial)
        # Flow-mods in flight, so a switch's error can be tied to what it refused: (dpid, xid) -> (rule, serial), and
        # per update serial the xids it sent and the rules refused so far. Dropped when its final barrier answers.
        self._flow_xids: dict[tuple[int, int], tuple[FlowRule, int]] = {}
        self._sent: dict[int, list[tuple[int, int]]] = {}
        self._refused: dict[int, list[FlowRule]] = {}
        self._serial = 0
        self._held: dict[tuple[int, int], PacketOut] = {}  # frames released when their barrier is answered
        self._encoder = wire.FlowModEncoder()  # caches the TLVs and bodies a profile's flows repeat
        self._alert_limit = TokenBuckets(rate=0.2, burst=5.0, max_keys=65536)
        self.suppressed_alerts = 0

    def send(self, dpid: int, msgs: Iterable[Any]) -> Any:
        dp = self.datapaths.get(dpid)
        if dp is None:
            return None
        for msg in msgs:
            msg.datapath = dp
            dp.send_msg(msg)
        return dp

    def barrier(self, dpid: int, confirms: tuple[str, ...], serial: int | None = None) -> None:
        """A barrier; ``serial``: the final barrier of that update (it confirms ``confirms`` unless a flow-mod of the
        update was refused)."""
        dp = self.datapaths.get(dpid)
        if dp is None:
            return
        xid = reserve_xids(dp, 1)
        if confirms or serial is not None:
            # The state each device is in as these flows go out: what this barrier confirms.
            states = tuple((mac, d.state if (d := self.enforcer.devices.get(mac)) else "?") for mac in confirms)
            self._barriers[(dpid, xid)] = (states, -1 if serial is None else serial)
        send_bytes(dp, wire.barrier_request(xid))

    def flow_error(self, dpid: int, xid: int) -> FlowRule | None:
        """A switch error for ``xid``: the flow-mod it refused (None when the xid is not a flow-mod in flight)."""
        found = self._flow_xids.get((dpid, xid))
        if found is None:
            return None
        rule, serial = found
        self._refused.setdefault(serial, []).append(rule)
        return rule

    def barrier_answered(self, dpid: int, xid: int) -> tuple[PacketOut | None, Confirms, tuple[FlowRule, ...]]:
        """What the switch's answer to barrier ``xid`` releases: a held frame, the devices it confirms, and the
        flow-mods of its update the switch refused (when any: the caller confirms none of the devices and reports
        the refusal instead)."""
        confirms, serial = self._barriers.pop((dpid, xid), ((), -1))
        for key in self._sent.pop(serial, ()):
            self._flow_xids.pop(key, None)
        refused = tuple(self._refused.pop(serial, ()))
        return self._held.pop((dpid, xid), None), confirms, refused

    def switch_gone(self, dpid: int) -> None:
        """Forget what was in flight to a switch that disconnected."""
        for key in [k for k in self._barriers if k[0] == dpid]:
            _, serial = self._barriers.pop(key)
            for sent in self._sent.pop(serial, ()):
                self._flow_xids.pop(sent, None)
            self._refused.pop(serial, None)

    def execute(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, FlowUpdate):
                self.apply(effect)
            elif isinstance(effect, PacketOut):
                self.packet_out(effect)
            elif isinstance(effect, ResolveNames):
                self.worker.request_names(effect.names)
            elif isinstance(effect, ResolveRequest):
                self.worker.request(effect.url, time.time(), effect.force)
            elif isinstance(effect, Alert):
                self.alerts.append((time.time(), effect))
                if not self._alert_limit.take((effect.code, effect.dpid, effect.port), time.monotonic()):
                    self.suppressed_alerts += 1  # kept in the history, not logged: a flood must not flood the log
                    continue
                LOG.warning(
                    "ALERT %s mac=%s dpid=%s port=%s url=%s: %s", effect.code, effect.mac, format_dpid(effect.dpid),
                    effect.port, printable(effect.url), printable(effect.message),
                )  # fmt: skip

    def packet_out(self, out: PacketOut) -> None:
        """Release a held frame once the switch has *answered* a barrier behind the flows sent before it (not merely
        ordered after it): only then is the new policy in place for the traffic the frame will cause."""
        dp = self.datapaths.get(out.dpid)
        if dp is None:
            return
        msg = parser.OFPBarrierRequest(dp)
        dp.set_xid(msg)
        self._held[(out.dpid, msg.xid)] = out
        dp.send_msg(msg)

    def release(self, out: PacketOut) -> None:
        dp = self.datapaths.get(out.dpid)
        if dp is None:
            return
        if out.resubmit:  # back into the pipeline, as if it came in on its port: the new flows decide
            actions = [parser.OFPActionOutput(ofproto.OFPP_TABLE)]
            dp.send_msg(parser.OFPPacketOut(dp, ofproto.OFP_NO_BUFFER, out.port, actions, out.data))
            return
        actions = [parser.OFPActionOutput(out.port)]
        dp.send_msg(parser.OFPPacketOut(dp, ofproto.OFP_NO_BUFFER, ofproto.OFPP_CONTROLLER, actions, out.data))

    def apply(self, update: FlowUpdate) -> None:
        """Adds, barrier, deletes, barrier: make-before-break (see :mod:`mud_ryu.enforcer.core`). Every add carries its
        own xid, remembered until the final barrier answers, so an error the switch sends for it is tied to it."""
        dp = self.datapaths.get(update.dpid)
        if dp is None:
            return
        self._serial += 1
        serial = self._serial
        sent = self._sent.setdefault(serial, [])
        if update.adds:
            # The encoder's bytes (byte-identical to Ryu's objects, ~20x cheaper to build), in one write: an add
            # each costs an object and a place in the datapath's bounded send queue, and a join sends thousands.
            first = reserve_xids(dp, len(update.adds))
            for i, rule in enumerate(update.adds):
                xid = (first + i) & MAX_XID
                self._flow_xids[(update.dpid, xid)] = (rule, serial)
                sent.append((update.dpid, xid))
            send_bytes(dp, self._encoder.flow_mods(update.adds, first))
        if update.deletes or update.stale:
            self.barrier(update.dpid, ())
            if update.deletes:
                first = reserve_xids(dp, len(update.deletes))
                send_bytes(dp, b"".join(self._encoder.flow_mod(r, (first + i) & MAX_XID, wire.OFPFC_DELETE_STRICT)
                                        for i, r in enumerate(update.deletes)))  # fmt: skip
            self.send(update.dpid, (delete_entry(e) for e in update.stale))
        self.barrier(update.dpid, update.confirms, serial)
        LOG.debug("dpid=%s +%d -%d flows", format_dpid(update.dpid), len(update.adds),
                  len(update.deletes) + len(update.stale))  # fmt: skip

    def meter_mods(self, ports: Iterable[int]) -> list[Any]:
        """ADD then MODIFY each meter: ADD fails harmlessly when it exists (a reconnect), MODIFY sets the rate.
        Meters are never deleted: that would delete every flow using them."""
        wanted = [(LEARN_METER, self.settings.learn_rate_pps, self.settings.learn_rate_pps),
                  (DNS_METER, self.settings.learn_rate_pps, self.settings.learn_rate_pps),
                  (SOURCE_METER, self.settings.learn_rate_pps, self.settings.learn_rate_pps)]  # fmt: skip
        wanted += [(m, self.settings.punt_rate_pps, self.settings.punt_burst) for p in ports if (m := port_meter(p))]
        msgs = []
        for meter_id, rate, burst in wanted:
            bands = [parser.OFPMeterBandDrop(rate=rate, burst_size=burst)]
            flags = ofproto.OFPMF_PKTPS | ofproto.OFPMF_BURST
            for command in (ofproto.OFPMC_ADD, ofproto.OFPMC_MODIFY):
                msgs.append(parser.OFPMeterMod(None, command=command, flags=flags, meter_id=meter_id, bands=bands))
        return msgs


def delete_entry(entry: Any) -> Any:
    """Delete exactly one entry a FLOW_STATS reply reported (its own match, priority and cookie)."""
    return parser.OFPFlowMod(
        datapath=None, cookie=entry.cookie, cookie_mask=0xFFFFFFFFFFFFFFFF, table_id=entry.table_id,
        command=ofproto.OFPFC_DELETE_STRICT, priority=entry.priority, buffer_id=ofproto.OFP_NO_BUFFER,
        out_port=ofproto.OFPP_ANY, out_group=ofproto.OFPG_ANY, match=entry.match, instructions=[],
    )  # fmt: skip
