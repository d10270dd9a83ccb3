"""The Ryu application: ``ryu-manager [--config-file mud.conf] mud_ryu.app``.

The controller edge. It turns OpenFlow events into calls on the pure :class:`~mud_ryu.enforcer.Enforcer` and
carries out the effects it returns (flow updates with barriers, resolution requests to the worker process,
operator alerts). It is one of the two modules that touch the framework (the other is :mod:`mud_ryu.compat`).

Handler work is O(1) per event apart from the enforcer's per-owner diff; fetching, decompressing, validating and
signature checks of MUD files happen in the resolver worker process, never on this event loop.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from mud_ryu import __version__, ofmsg, settings
from mud_ryu.compat import framework, ofproto, parser
from mud_ryu.devicestore import DeviceStore
from mud_ryu.discovery import format_mac, scan_frame
from mud_ryu.dnsframe import scan_dns
from mud_ryu.edgeflows import DNS_METER, DNS_SUB, LEARN_METER, PUNT_SUB, port_meter
from mud_ryu.enforcer import Alert, Effect, Enforcer, FlowUpdate, ResolveRequest
from mud_ryu.enforcer_state import PacketOut, ResolveNames
from mud_ryu.flowkey import stats_key
from mud_ryu.pipeline import APP_ID, APP_MASK, APP_SHIFT, CookieKind, parse_cookie
from mud_ryu.rate_limit import TokenBuckets
from mud_ryu.resolve_wire import WireNames, WireResult
from mud_ryu.rest_backend import EnforcerBackend
from mud_ryu.rest_wsgi import make_app
from mud_ryu.trustgate import TrustGate
from mud_ryu.truststore import TrustStore
from mud_ryu.update_policy import UpdatePolicy
from mud_ryu.worker_client import WorkerClient

_fw = framework()
_AppBase: Any = _fw.app_base
_Handler = TypeVar("_Handler", bound=Callable[..., None])


def _on(event: Any, states: Any) -> Callable[[_Handler], _Handler]:
    """The framework's ``set_ev_cls``, typed so handlers keep their signatures for mypy."""
    return cast(Callable[[_Handler], _Handler], _fw.handler.set_ev_cls(event, states))


_CONFIG = _fw.handler.CONFIG_DISPATCHER
_MAIN = _fw.handler.MAIN_DISPATCHER
_DEAD = _fw.handler.DEAD_DISPATCHER
_ev = _fw.ofp_event

LOG = logging.getLogger("mud_ryu.app")
REFRESH_INTERVAL_S = 300.0  # the worker's cache decides whether a URL is actually fetched again
ALERT_HISTORY = 1000
DNS_RELEASE_SETTLE_S = 0.05


# The operator API listens on loopback unless the operator passes --wsapi-host (Ryu's own default is 0.0.0.0).
if "wsapi_host" in _fw.conf:  # os-ken without its WSGI module registers no such option
    _fw.conf.set_default("wsapi_host", "127.0.0.1")
_route = cast(Callable[..., Callable[[_Handler], _Handler]], _fw.wsgi.route) if _fw.wsgi else None
_ControllerBase: Any = _fw.wsgi.ControllerBase if _fw.wsgi else object


class MudRestController(_ControllerBase):  # type: ignore[misc]  # the framework's base class is untyped
    """Hands every /mud/v1 request to the framework-free API (:mod:`mud_ryu.rest_api`)."""

    def __init__(self, req: Any, link: Any, data: Any, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self._api = data

    def serve(self, req: Any, **_kwargs: Any) -> Any:
        return req.get_response(self._api)


if _route is not None:  # Ryu's @route, applied after the fact so the class also exists without a WSGI module
    MudRestController.serve = _route(  # type: ignore[method-assign]
        "mud_api", "/mud/v1/{path:.*}", methods=["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"]
    )(MudRestController.serve)


def format_dpid(dpid: int) -> str:
    return f"{dpid:016x}"


def _printable(text: str, limit: int = 255) -> str:
    """Attacker strings (URLs, reasons) go to logs escaped and bounded."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])


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
        # The same for the update policy's trust state (pins, URL history): a corrupt store stops the controller.
        self.trust_store = TrustStore.open(self.settings.state_dir)
        trust = TrustGate(UpdatePolicy(self.settings.policy_settings()), self.trust_store)
        self.enforcer = Enforcer(self.settings, self.store, trust, time.time())
        self.datapaths: dict[int, Any] = {}
        self.connected: dict[int, str] = {}
        self.alerts: collections.deque[tuple[float, Alert]] = collections.deque(maxlen=ALERT_HISTORY)
        self._setup: dict[int, dict[str, Any]] = {}
        self._flow_stats: dict[int, list[Any]] = {}
        self._barriers: dict[tuple[int, int], tuple[tuple[str, str], ...]] = {}
        self._held: dict[tuple[int, int], PacketOut] = {}  # frames released when their barrier is answered
        self._punt_limit = TokenBuckets(rate=50.0, burst=100.0, max_keys=65536)
        self._dropped_punts = 0
        self._alert_limit = TokenBuckets(rate=0.2, burst=5.0, max_keys=65536)
        self._suppressed_alerts = 0
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
        self.worker.start()
        self._refresher = _fw.hub.spawn(self._refresh_loop)
        self._dns_expirer = _fw.hub.spawn(self._dns_loop)
        self._retrier = _fw.hub.spawn(self._retry_loop)
        wsgi = kwargs.get("wsgi")
        if wsgi is not None:
            backend = EnforcerBackend(self.enforcer, self.alerts, self._execute, time.time)
            wsgi.register(MudRestController, make_app(backend, self._api_token()))
        LOG.info("mud_ryu %s started on %s; state in %s", __version__, _fw.name, self.settings.state_dir)

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
        self.store.close()
        self.trust_store.close()

    # ---- sending
    def _send(self, dpid: int, msgs: Iterable[Any]) -> Any:
        dp = self.datapaths.get(dpid)
        if dp is None:
            return None
        for msg in msgs:
            msg.datapath = dp
            dp.send_msg(msg)
        return dp

    def _barrier(self, dpid: int, confirms: tuple[str, ...]) -> None:
        dp = self.datapaths.get(dpid)
        if dp is None:
            return
        msg = parser.OFPBarrierRequest(dp)
        dp.set_xid(msg)
        if confirms:
            # The state each device is in as these flows go out: what this barrier confirms.
            self._barriers[(dpid, msg.xid)] = tuple(
                (mac, d.state if (d := self.enforcer.devices.get(mac)) else "?") for mac in confirms
            )
        dp.send_msg(msg)

    def _execute(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, FlowUpdate):
                self._apply(effect)
            elif isinstance(effect, PacketOut):
                self._packet_out(effect)
            elif isinstance(effect, ResolveNames):
                self.worker.request_names(effect.names)
            elif isinstance(effect, ResolveRequest):
                self.worker.request(effect.url, time.time(), effect.force)
            elif isinstance(effect, Alert):
                self.alerts.append((time.time(), effect))
                if not self._alert_limit.take((effect.code, effect.dpid, effect.port), time.monotonic()):
                    self._suppressed_alerts += 1  # kept in the history, not logged: a flood must not flood the log
                    continue
                LOG.warning(
                    "ALERT %s mac=%s dpid=%s port=%s url=%s: %s", effect.code, effect.mac, format_dpid(effect.dpid),
                    effect.port, _printable(effect.url), _printable(effect.message),
                )  # fmt: skip

    def _packet_out(self, out: PacketOut) -> None:
        """Release a held frame once the switch has *answered* a barrier behind the flows sent before it (not merely
        ordered after it): only then is the new policy in place for the traffic the frame will cause."""
        dp = self.datapaths.get(out.dpid)
        if dp is None:
            return
        msg = parser.OFPBarrierRequest(dp)
        dp.set_xid(msg)
        self._held[(out.dpid, msg.xid)] = out
        dp.send_msg(msg)

    def _release(self, out: PacketOut) -> None:
        dp = self.datapaths.get(out.dpid)
        if dp is not None:
            actions = [parser.OFPActionOutput(out.port)]
            dp.send_msg(parser.OFPPacketOut(dp, ofproto.OFP_NO_BUFFER, ofproto.OFPP_CONTROLLER, actions, out.data))

    def _apply(self, update: FlowUpdate) -> None:
        """Adds, barrier, deletes, barrier: make-before-break (see :mod:`mud_ryu.enforcer`)."""
        if self._send(update.dpid, (ofmsg.flow_mod(r) for r in update.adds)) is None:
            return
        if update.deletes or update.stale:
            self._barrier(update.dpid, ())
            self._send(update.dpid, (ofmsg.delete_strict(r) for r in update.deletes))
            self._send(update.dpid, (_delete_entry(e) for e in update.stale))
        self._barrier(update.dpid, update.confirms)
        LOG.debug("dpid=%s +%d -%d flows", format_dpid(update.dpid), len(update.adds),
                  len(update.deletes) + len(update.stale))  # fmt: skip

    # ---- resolver worker
    def _on_resolution(self, result: WireResult) -> None:
        LOG.info("MUD URL %s: %s %s", _printable(result.url), result.outcome.value, _printable(result.reason))
        self._execute(self.enforcer.resolved(result, time.time()))

    def _dns_loop(self) -> None:
        """Expire DNS-learned addresses when their (clamped) TTL runs out."""
        while True:
            due = self.enforcer.dns.next_expiry()
            now = time.time()
            if due is not None and due <= now:
                self._execute(self.enforcer.dns_expire(now))
                continue
            _fw.hub.sleep(min(5.0, due - now) if due is not None else 5.0)

    def _retry_loop(self) -> None:
        while True:
            _fw.hub.sleep(10.0)
            self._execute(self.enforcer.retry_lost(time.time()))

    def _on_names(self, result: WireNames) -> None:
        LOG.info("resolved %d profile DNS names through the configured resolvers", len(result.answers))
        self._execute(self.enforcer.dns_resolved(result.answers, time.time()))

    def _refresh_loop(self) -> None:
        while True:
            _fw.hub.sleep(REFRESH_INTERVAL_S)
            for url in sorted(self.enforcer.profiles):
                self.worker.request(url, time.time())

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
        _fw.hub.spawn(self._check_fail_mode, dp.id)

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
            self._send(dpid, self._meter_mods(setup["ports"]))
        dp = self.datapaths[dpid]
        self._flow_stats[dpid] = []
        dp.send_msg(
            parser.OFPFlowStatsRequest(
                dp, 0, ofproto.OFPTT_ALL, ofproto.OFPP_ANY, ofproto.OFPG_ANY, APP_ID << APP_SHIFT, APP_MASK,
                parser.OFPMatch(),
            )
        )  # fmt: skip

    def _meter_mods(self, ports: Iterable[int]) -> list[Any]:
        """ADD then MODIFY each meter: ADD fails harmlessly when it exists (a reconnect), MODIFY sets the rate.
        Meters are never deleted: that would delete every flow using them."""
        wanted = [(LEARN_METER, self.settings.learn_rate_pps, self.settings.learn_rate_pps),
                  (DNS_METER, self.settings.learn_rate_pps, self.settings.learn_rate_pps)]  # fmt: skip
        wanted += [(m, self.settings.punt_rate_pps, self.settings.punt_burst) for p in ports if (m := port_meter(p))]
        msgs = []
        for meter_id, rate, burst in wanted:
            bands = [parser.OFPMeterBandDrop(rate=rate, burst_size=burst)]
            flags = ofproto.OFPMF_PKTPS | ofproto.OFPMF_BURST
            for command in (ofproto.OFPMC_ADD, ofproto.OFPMC_MODIFY):
                msgs.append(parser.OFPMeterMod(None, command=command, flags=flags, meter_id=meter_id, bands=bands))
        return msgs

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
            self._execute(self.enforcer.port_up(dpid, port.port_no))
            if self.enforcer.switches.get(dpid) and self.enforcer.switches[dpid].metered:
                self._send(dpid, self._meter_mods([port.port_no]))

    @_on(_ev.EventOFPBarrierReply, _MAIN)
    def _barrier_reply(self, ev: Any) -> None:
        held = self._held.pop((ev.msg.datapath.id, ev.msg.xid), None)
        if held is not None:
            # Open vSwitch answers the barrier once its tables changed, but revalidates its datapath caches a
            # moment later: a packet sent at once could still meet a cached drop. Release after a short settle.
            _fw.hub.spawn_after(DNS_RELEASE_SETTLE_S, self._release, held)
        confirms = self._barriers.pop((ev.msg.datapath.id, ev.msg.xid), None)
        if confirms:
            self.enforcer.confirmed(mac for mac, _ in confirms)
            stamp = time.monotonic()  # system-wide clock: benchmarks compare it with when they sent the frame
            for mac, state in confirms:
                device = self.enforcer.devices.get(mac)
                if device is not None:
                    LOG.info(
                        "confirmed mac=%s dpid=%s port=%d state=%s url=%s monotonic=%.6f", mac,
                        format_dpid(device.dpid), device.port, state, _printable(device.url or "-"), stamp,
                    )  # fmt: skip

    @_on(_ev.EventOFPErrorMsg, _MAIN)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        if msg.type == ofproto.OFPET_METER_MOD_FAILED and msg.code == ofproto.OFPMMFC_METER_EXISTS:
            return  # the ADD half of an idempotent meter setup
        LOG.error("switch dpid=%s error type=%d code=%d", format_dpid(msg.datapath.id), msg.type, msg.code)

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
        if not self._punt_limit.take((dpid, in_port), now):
            self._dropped_punts += 1  # the switch meter should have caught it; count, do not queue
            return
        parts = parse_cookie(msg.cookie)
        if parts.kind == int(CookieKind.DEVICE) and parts.sub == DNS_SUB:
            self._execute(self.enforcer.dns_seen(scan_dns(data), time.time(), data))
        elif parts.kind == int(CookieKind.FORWARD) and parts.sub == PUNT_SUB:
            self._execute(self.enforcer.discovered(dpid, in_port, scan_frame(data), time.time()))
        else:
            self._execute(self.enforcer.learned(dpid, in_port, format_mac(data[6:12]), time.time()))

    # ---- R1: a managed bridge must not fall back to a learning switch
    def _check_fail_mode(self, dpid: int) -> None:
        green_subprocess = __import__("eventlet.green.subprocess", fromlist=["run"])
        argv = ["ovs-vsctl", "--timeout=3", "--format=json", "--columns=name,fail_mode,datapath_id", "list", "Bridge"]
        try:
            done = green_subprocess.run(argv, capture_output=True, timeout=5, check=False)
            rows = json.loads(done.stdout or b"{}").get("data", [])
        except (OSError, ValueError, green_subprocess.TimeoutExpired):
            LOG.info("dpid=%s: fail-mode not checked (no local OVSDB); make sure it is 'secure'", format_dpid(dpid))
            return
        for name, fail_mode, datapath_id in rows:
            if isinstance(datapath_id, str) and int(datapath_id, 16) == dpid:
                mode = fail_mode if isinstance(fail_mode, str) else "standalone"  # OVS's default is standalone
                if mode != "secure":
                    LOG.error(
                        "BRIDGE %s (dpid=%s) IS IN fail-mode=%s: if this controller is unreachable for ~15 s Open "
                        "vSwitch deletes every MUD flow and becomes a learning switch. Set: ovs-vsctl set-fail-mode "
                        "%s secure", name, format_dpid(dpid), mode, name,
                    )  # fmt: skip
                    alert = Alert("fail-mode-standalone", "", dpid, 0, "", f"bridge {name} is {mode}")
                    self.alerts.append((time.time(), alert))
                return


def _port_down(port: Any) -> bool:
    return bool(port.state & ofproto.OFPPS_LINK_DOWN or port.config & ofproto.OFPPC_PORT_DOWN)


def _delete_entry(entry: Any) -> Any:
    """Delete exactly one entry a FLOW_STATS reply reported (its own match, priority and cookie)."""
    return parser.OFPFlowMod(
        datapath=None, cookie=entry.cookie, cookie_mask=0xFFFFFFFFFFFFFFFF, table_id=entry.table_id,
        command=ofproto.OFPFC_DELETE_STRICT, priority=entry.priority, buffer_id=ofproto.OFP_NO_BUFFER,
        out_port=ofproto.OFPP_ANY, out_group=ofproto.OFPG_ANY, match=entry.match, instructions=[],
    )  # fmt: skip
