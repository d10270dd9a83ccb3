"""The Ryu application: ``ryu-manager [--config-file mud.conf] mud_ryu.app``.

The controller edge. It turns OpenFlow events into calls on the pure :class:`~mud_ryu.enforcer.core.Enforcer` and
carries out the effects it returns (flow updates with barriers, resolution requests to the worker process,
operator alerts). It is one of the two modules that touch the framework (the other is :mod:`mud_ryu.compat`).

Handler work is O(1) per event apart from the enforcer's per-owner diff; fetching, decompressing, validating and
signature checks of MUD files happen in the resolver worker process, never on this event loop.

This module holds the framework wiring (the app class, the REST controller, the worker and its callbacks) and the
OpenFlow event handlers; carrying out effects is :mod:`mud_ryu.edge.effects`, the background loops
:mod:`mud_ryu.edge.tasks`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from mud_ryu import __version__, settings
from mud_ryu.api.backend import EnforcerBackend
from mud_ryu.api.wsgi import make_app
from mud_ryu.compat import framework, ofproto, parser
from mud_ryu.compiler.edgeflows import PORT_METER_BASE
from mud_ryu.compiler.pipeline import APP_ID, APP_MASK, APP_SHIFT, parse_cookie
from mud_ryu.dns.store import DnsStore
from mud_ryu.edge import tasks as app_tasks
from mud_ryu.edge.effects import ALERT_HISTORY, EffectRunner, format_dpid, printable
from mud_ryu.edge.packet_in import PacketIn, PacketInQueue
from mud_ryu.edge.tasks import REFRESH_INTERVAL_S
from mud_ryu.enforcer import pin_migration
from mud_ryu.enforcer.core import Alert, Enforcer
from mud_ryu.enforcer.devicestore import DeviceStore, StoreError
from mud_ryu.enforcer.rate_limit import TokenBuckets
from mud_ryu.errors import ReasonError
from mud_ryu.fetch.client import WorkerClient
from mud_ryu.fetch.signature import load_anchor_files
from mud_ryu.fetch.wire import WireNames, WireResult
from mud_ryu.guard.lease_store import LeaseStore
from mud_ryu.openflow.flowkey import stats_key
from mud_ryu.policy.gate import TrustGate
from mud_ryu.policy.store import TrustStore
from mud_ryu.policy.table import UpdatePolicy
from mud_ryu.storage.pairs import ExpiringPairStore

_fw = framework()
_AppBase: Any = _fw.app_base
_Handler = TypeVar("_Handler", bound=Callable[..., None])
_S = TypeVar("_S", bound=ExpiringPairStore)


def _on(event: Any, states: Any) -> Callable[[_Handler], _Handler]:
    """The framework's ``set_ev_cls``, typed so handlers keep their signatures for mypy."""
    return cast(Callable[[_Handler], _Handler], _fw.handler.set_ev_cls(event, states))


_CONFIG = _fw.handler.CONFIG_DISPATCHER
_MAIN = _fw.handler.MAIN_DISPATCHER
_DEAD = _fw.handler.DEAD_DISPATCHER
_ev = _fw.ofp_event

LOG = logging.getLogger("mud_ryu.app")
DNS_RELEASE_SETTLE_S = 0.05
__all__ = ["ALERT_HISTORY", "DNS_RELEASE_SETTLE_S", "REFRESH_INTERVAL_S", "MudApp", "MudRestController", "format_dpid"]


# The operator API listens on loopback unless the operator passes --wsapi-host (Ryu's own default is 0.0.0.0).
if "wsapi_host" in _fw.conf:  # os-ken without its WSGI module registers no such option
    _fw.conf.set_default("wsapi_host", "127.0.0.1")
_route = cast(Callable[..., Callable[[_Handler], _Handler]], _fw.wsgi.route) if _fw.wsgi else None
_ControllerBase: Any = _fw.wsgi.ControllerBase if _fw.wsgi else object


class MudRestController(_ControllerBase):  # type: ignore[misc]  # the framework's base class is untyped
    """Hands every /mud/v1 request to the framework-free API (:mod:`mud_ryu.api.handlers`)."""

    def __init__(self, req: Any, link: Any, data: Any, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self._api = data

    def serve(self, req: Any, **_kwargs: Any) -> Any:
        return req.get_response(self._api)


if _route is not None:  # Ryu's @route, applied after the fact so the class also exists without a WSGI module
    MudRestController.serve = _route(  # type: ignore[method-assign]
        "mud_api", "/mud/v1/{path:.*}", methods=["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"]
    )(MudRestController.serve)


class MudApp(_AppBase):  # type: ignore[misc]  # the framework's base class is untyped
    """Enforces MUD policies on the OpenFlow 1.3 switches that connect to this controller."""

    OFP_VERSIONS = [ofproto.OFP_VERSION]
    _CONTEXTS = {"wsgi": _fw.wsgi.WSGIApplication} if _fw.wsgi else {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The framework's own ConfigOpts (ryu.cfg.CONF, not oslo's global) holds what `--config-file` gave;
        # options registered after parsing still read the parsed files.
        settings.register(self.CONF)
        self.settings = settings.load(self.CONF)
        # A store that cannot be opened stops the controller: it must not enforce without its trust state.
        self.store = DeviceStore.open(self.settings.device_db_path)
        self.store.defer_writes(lambda: _fw.hub.spawn(self._flush_rows))  # one commit per event-loop turn
        # The same for the update policy's trust state (pins, URL history): a corrupt store stops the controller.
        self.trust_store = TrustStore.open(self.settings.state_dir)
        trust = TrustGate(UpdatePolicy(self.settings.policy_settings()), self.trust_store)
        # DNS-learned bindings and DHCP leases survive a restart (R11). Not trust state: without the file the
        # controller still runs; names wait for the devices' next answers, leases for the hosts' next renewals.
        self.dns_store = _optional_store(DnsStore, self.settings.dns_db_path)
        self.lease_store = _optional_store(LeaseStore, self.settings.lease_db_path)
        self.enforcer = Enforcer(self.settings, self.store, trust, time.time(), self.dns_store, self.lease_store)
        self.connected: dict[int, str] = {}
        self._setup: dict[int, dict[str, Any]] = {}
        self._flow_stats: dict[int, list[Any]] = {}
        self._last_error: dict[int, str] = {}
        self._punt_limit = TokenBuckets(rate=50.0, burst=100.0, max_keys=65536)
        self._dropped_punts = 0
        green_subprocess = __import__("eventlet.green.subprocess", fromlist=["Popen"])
        self.worker = WorkerClient(
            self.settings.worker_settings(),
            str(Path(self.settings.state_dir) / "worker.json"),
            self._on_resolution,
            on_names=self._on_names,
            popen=green_subprocess.Popen,
            spawn=_fw.hub.spawn,
            sleep=_fw.hub.sleep,
        )
        self.out = EffectRunner(self.enforcer, self.settings, self.worker)
        self._migrate_pins()
        self.datapaths = self.out.datapaths  # the same map: the handlers fill it, the runner sends through it
        self.alerts = self.out.alerts
        self._execute = self.out.execute
        self.packet_ins = PacketInQueue(self.enforcer, self._execute, _fw.hub.spawn, _fw.hub.sleep, time.time,
                                        time.monotonic)  # fmt: skip
        self.worker.start()
        sleep = _fw.hub.sleep
        self._refresher = _fw.hub.spawn(app_tasks.refresh_loop, self.enforcer, self.worker, sleep)
        self._dns_expirer = _fw.hub.spawn(app_tasks.dns_loop, self.enforcer, self._execute, sleep)
        self._retrier = _fw.hub.spawn(app_tasks.retry_loop, self.enforcer, self._execute, sleep)
        self._flow_retrier = _fw.hub.spawn(app_tasks.flow_retry_loop, self.enforcer, self._execute, sleep)
        self._lease_expirer = _fw.hub.spawn(app_tasks.lease_loop, self.enforcer, self._execute, sleep)
        wsgi = kwargs.get("wsgi")
        if wsgi is not None:
            backend = EnforcerBackend(self.enforcer, self.alerts, self._execute, time.time)
            wsgi.register(MudRestController, make_app(backend, self._api_token()))
        LOG.info("mud_ryu %s started on %s; state in %s", __version__, _fw.name, self.settings.state_dir)

    def _migrate_pins(self) -> None:
        """Pins stored before CAs were named by their SPKI get it now; a failure leaves them legacy (matching no
        signer, so never wider) and is logged: the controller still starts."""
        try:
            anchors = load_anchor_files(self.settings.trust_anchors)
            migration, pin_alerts = pin_migration.migrate(self.trust_store, anchors)
        except (ReasonError, OSError) as error:
            LOG.error("signer pin migration failed: %s; legacy pins match no signer", error)
            return
        if migration.migrated or migration.unresolved:
            LOG.warning("signer pins given their CA's SPKI: %d; left unresolved: %d",
                        len(migration.migrated), len(migration.unresolved))  # fmt: skip
        self.out.execute(pin_alerts)

    def _flush_rows(self) -> None:
        """Commit the device rows the last event-loop turn changed (one transaction). A store that fails keeps
        them waiting and is tried again a second later; the enforcer goes on (its trust store decides at start)."""
        try:
            self.store.flush()
        except StoreError as error:
            LOG.error("device rows not saved (%s): retrying in 1 s", error)
            _fw.hub.spawn_after(1.0, self._flush_rows)

    def _api_token(self) -> str | None:
        path = self.settings.api_token_file
        if not path:
            LOG.info("no api_token_file: the REST API refuses approve/revoke/forget")
            return None
        token = Path(path).read_text().strip()
        if not token:
            raise ValueError(f"api_token_file {path} is empty")
        return token

    def stop(self) -> None:
        self.worker.stop()
        super().stop()
        self.enforcer.save_dns(time.time(), force=True)
        self.enforcer.save_leases(time.time(), force=True)
        self.store.close()
        self.trust_store.close()
        for optional in (self.dns_store, self.lease_store):
            if optional is not None:
                optional.close()

    # ---- resolver worker
    def _on_resolution(self, result: WireResult) -> None:
        LOG.info("MUD URL %s: %s %s", printable(result.url), result.outcome.value, printable(result.reason))
        self._execute(self.enforcer.resolved(result, time.time()))

    def _on_names(self, result: WireNames) -> None:
        LOG.info("resolved %d profile DNS names through the configured resolvers", len(result.answers))
        self._execute(self.enforcer.dns_resolved(result.answers, time.time()))

    # ---- switch life
    @_on(_ev.EventOFPSwitchFeatures, _CONFIG)
    def _switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        peer = ":".join(map(str, dp.address)) if dp.address else "?"
        self.connected[dp.id] = peer
        self.datapaths[dp.id] = dp
        self._setup[dp.id] = {"ports": [], "metered": None, "ports_done": False}
        LOG.info("switch connected dpid=%s from %s (n_tables=%d)", format_dpid(dp.id), peer, ev.msg.n_tables)
        dp.send_msg(parser.OFPPortDescStatsRequest(dp, 0))
        dp.send_msg(parser.OFPMeterFeaturesStatsRequest(dp, 0))
        _fw.hub.spawn(app_tasks.check_fail_mode, dp.id, self._record_alert)

    @_on(_ev.EventOFPPortDescStatsReply, _MAIN)
    def _port_desc(self, ev: Any) -> None:
        setup = self._setup.get(ev.msg.datapath.id)
        if setup is None:
            return
        for port in ev.msg.body:
            if port.port_no < ofproto.OFPP_MAX and not _port_down(port):
                setup["ports"].append(port.port_no)
        if not ev.msg.flags & ofproto.OFPMPF_REPLY_MORE:
            setup["ports_done"] = True
            self._maybe_reconcile(ev.msg.datapath.id)

    @_on(_ev.EventOFPMeterFeaturesStatsReply, _MAIN)
    def _meter_features(self, ev: Any) -> None:
        setup = self._setup.get(ev.msg.datapath.id)
        if setup is None:
            return
        features = ev.msg.body[0] if ev.msg.body else None
        setup["metered"] = bool(
            features and features.max_meter >= 2 and features.band_types & (1 << ofproto.OFPMBT_DROP)
        )
        if not setup["metered"]:
            LOG.warning("dpid=%s has no usable OpenFlow meters: punts are not rate-limited by the switch",
                        format_dpid(ev.msg.datapath.id))  # fmt: skip
        self._maybe_reconcile(ev.msg.datapath.id)

    def _maybe_reconcile(self, dpid: int) -> None:
        setup = self._setup.get(dpid)
        if setup is None or not setup["ports_done"] or setup["metered"] is None:
            return
        del self._setup[dpid]
        self.enforcer.switch_up(dpid, setup["ports"], setup["metered"])
        if setup["metered"]:
            self.out.send(dpid, self.out.meter_mods(setup["ports"]))
        dp = self.datapaths[dpid]
        self._flow_stats[dpid] = []
        dp.send_msg(
            parser.OFPFlowStatsRequest(
                dp, 0, ofproto.OFPTT_ALL, ofproto.OFPP_ANY, ofproto.OFPG_ANY, APP_ID << APP_SHIFT, APP_MASK,
                parser.OFPMatch(),
            )
        )  # fmt: skip

    @_on(_ev.EventOFPFlowStatsReply, _MAIN)
    def _flow_stats_reply(self, ev: Any) -> None:
        dpid = ev.msg.datapath.id
        entries = self._flow_stats.get(dpid)
        if entries is None:
            return
        entries.extend(ev.msg.body)
        if ev.msg.flags & ofproto.OFPMPF_REPLY_MORE:
            return
        del self._flow_stats[dpid]
        held = [(stats_key(e), e) for e in entries if (e.cookie & APP_MASK) == APP_ID << APP_SHIFT]
        self._execute(self.enforcer.reconcile(dpid, held, time.time()))

    @_on(_ev.EventOFPStateChange, [_MAIN, _DEAD])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == _DEAD and dp.id is not None:
            self.connected.pop(dp.id, None)
            self.datapaths.pop(dp.id, None)
            self._setup.pop(dp.id, None)
            self.enforcer.switch_down(dp.id)
            self.out.switch_gone(dp.id)
            LOG.warning("switch disconnected dpid=%s", format_dpid(dp.id))

    @_on(_ev.EventOFPPortStatus, _MAIN)
    def _port_status(self, ev: Any) -> None:
        dpid, port = ev.msg.datapath.id, ev.msg.desc
        if port.port_no >= ofproto.OFPP_MAX:
            return
        now = time.time()
        if ev.msg.reason == ofproto.OFPPR_DELETE or _port_down(port):
            self._execute(self.enforcer.port_down(dpid, port.port_no, now))
        else:
            # The port's meter before the punt flows that use it: a switch refuses a flow naming a missing meter.
            if self.enforcer.switches.get(dpid) and self.enforcer.switches[dpid].metered:
                self.out.send(dpid, self.out.meter_mods([port.port_no]))
            self._execute(self.enforcer.port_up(dpid, port.port_no))

    @_on(_ev.EventOFPBarrierReply, _MAIN)
    def _barrier_reply(self, ev: Any) -> None:
        dpid = ev.msg.datapath.id
        held, confirms, refused = self.out.barrier_answered(dpid, ev.msg.xid)
        if refused:
            # Not confirmed: the switch does not hold what these devices' records would say. Meters first (a
            # refused flow may name a meter the switch lost), then the enforcer resends after a backoff.
            meters = {r.meter for r in refused if r.meter is not None}
            if meters and self.enforcer.switches.get(dpid):
                self.out.send(dpid, self.out.meter_mods(sorted(m - PORT_METER_BASE for m in meters
                                                               if m >= PORT_METER_BASE)))  # fmt: skip
            macs = [mac for mac, _ in confirms]
            self._execute(self.enforcer.flows_refused(dpid, refused, macs, self._refusal_reason(dpid), time.time()))
            confirms = ()
        if held is not None:
            # Open vSwitch answers the barrier once its tables changed, but revalidates its datapath caches a
            # moment later: a packet sent at once could still meet a cached drop. Release after a short settle.
            _fw.hub.spawn_after(DNS_RELEASE_SETTLE_S, self.out.release, held)
        if confirms:
            self.enforcer.confirmed(mac for mac, _ in confirms)
            stamp = time.monotonic()  # system-wide clock: benchmarks compare it with when they sent the frame
            for mac, state in confirms:
                device = self.enforcer.devices.get(mac)
                if device is not None:
                    LOG.info(
                        "confirmed mac=%s dpid=%s port=%d state=%s url=%s monotonic=%.6f", mac,
                        format_dpid(device.dpid), device.port, state, printable(device.url or "-"), stamp,
                    )  # fmt: skip

    @_on(_ev.EventOFPErrorMsg, _MAIN)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        if msg.type == ofproto.OFPET_METER_MOD_FAILED and msg.code == ofproto.OFPMMFC_METER_EXISTS:
            return  # the ADD half of an idempotent meter setup
        dpid = msg.datapath.id
        rule = self.out.flow_error(dpid, msg.xid)
        if rule is not None:
            # Tied to its flow-mod: the update's final barrier reports it to the enforcer (not confirmed, retried).
            self._last_error[dpid] = f"error type={msg.type} code={msg.code}"
            LOG.error("switch dpid=%s refused a flow (type=%d code=%d): table=%s priority=%d cookie=%#x",
                      format_dpid(dpid), msg.type, msg.code, rule.table, rule.priority, rule.cookie)  # fmt: skip
            return
        LOG.error("switch dpid=%s error type=%d code=%d", format_dpid(dpid), msg.type, msg.code)

    def _refusal_reason(self, dpid: int) -> str:
        return self._last_error.pop(dpid, "error")

    # ---- packets
    @_on(_ev.EventOFPPacketIn, _MAIN)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dpid = msg.datapath.id
        in_port = msg.match.get("in_port")
        data = bytes(msg.data or b"")
        if in_port is None or len(data) < 14:
            return
        now = time.monotonic()
        parts = parse_cookie(msg.cookie)
        # One bucket per port and kind of copy: a flood of one kind (a device's DNS queries, whose held answers all
        # come in on the resolver's port) must not starve another (the DHCP acknowledgements on that port).
        if not self._punt_limit.take((dpid, in_port, parts.kind, parts.sub), now):
            self._dropped_punts += 1  # the switch meter should have caught it; count, do not queue
            return
        # Worked through off the framework's queue (mud_ryu.edge.packet_in): the connection stays responsive.
        self.packet_ins.put(PacketIn(dpid, in_port, msg.cookie, data))

    def _record_alert(self, alert: Alert) -> None:
        """An alert the edge raised itself (already logged by its raiser): into the history the API serves."""
        self.alerts.append((time.time(), alert))


def _optional_store(kind: type[_S], path: str) -> _S | None:
    try:
        return kind.open(path)
    except ReasonError as error:
        LOG.error("%s unavailable (%s): %s; kept in memory only", kind.WHAT, error.reason, error.message)
        return None


def _port_down(port: Any) -> bool:
    return bool(port.state & ofproto.OFPPS_LINK_DOWN or port.config & ofproto.OFPPC_PORT_DOWN)
