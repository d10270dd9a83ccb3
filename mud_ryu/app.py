"""The Ryu application: ``ryu-manager mud_ryu.app``.

This is the controller edge. It is one of the two modules that touch the framework (the other
is :mod:`mud_ryu.compat`); everything it does with packets and policy is delegated to the pure
core. For now it reports switch connections and disconnections, with a loud warning when the
switch would fall back to standalone (learning-switch) mode; enforcement lands on top of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from mud_ryu import __version__
from mud_ryu.compat import framework, ofproto

_fw = framework()
_AppBase: Any = _fw.app_base
_Handler = TypeVar("_Handler", bound=Callable[..., None])


def _on(event: Any, states: Any) -> Callable[[_Handler], _Handler]:
    """The framework's ``set_ev_cls``, typed so handlers keep their signatures for mypy."""
    return cast(Callable[[_Handler], _Handler], _fw.handler.set_ev_cls(event, states))


_CONFIG = _fw.handler.CONFIG_DISPATCHER
_MAIN = _fw.handler.MAIN_DISPATCHER
_DEAD = _fw.handler.DEAD_DISPATCHER

LOG = logging.getLogger("mud_ryu.app")


def format_dpid(dpid: int) -> str:
    return f"{dpid:016x}"


class MudApp(_AppBase):  # type: ignore[misc]  # the framework's base class is untyped
    """Enforces MUD policies on the OpenFlow 1.3 switches that connect to this controller."""

    OFP_VERSIONS = [ofproto.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected: dict[int, str] = {}
        LOG.info("mud_ryu %s started on %s", __version__, _fw.name)

    @_on(_fw.ofp_event.EventOFPSwitchFeatures, _CONFIG)
    def _switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        peer = ":".join(map(str, datapath.address)) if datapath.address else "?"
        self.connected[datapath.id] = peer
        LOG.info(
            "switch connected dpid=%s from %s (n_tables=%d)",
            format_dpid(datapath.id), peer, ev.msg.n_tables,
        )

    @_on(_fw.ofp_event.EventOFPStateChange, [_MAIN, _DEAD])
    def _state_change(self, ev: Any) -> None:
        datapath = ev.datapath
        if ev.state == _DEAD and datapath.id is not None:
            self.connected.pop(datapath.id, None)
            LOG.warning("switch disconnected dpid=%s", format_dpid(datapath.id))
