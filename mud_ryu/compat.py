"""The one place that imports the controller framework: Ryu 4.34, or os-ken 3.1.x as a fallback.

os-ken (OpenStack's maintained fork) is a mechanical rename of Ryu (``ryu.`` -> ``os_ken.``,
``RyuApp`` -> ``OSKenApp``) with identical OpenFlow parsers, so the rest of mud_ryu can use
whichever is installed through the names exported here. A framework already loaded by its
manager wins; otherwise ``MUD_RYU_FRAMEWORK=os_ken`` (or ``ryu``) forces one, else Ryu is
preferred. This edge module is the only reader of that variable.

The OpenFlow protocol modules (``ofproto``, ``parser``) are light and safe to import from the
core's message renderer; the framework pieces (app base class, events, hub) are loaded only by
:func:`framework`, which only the Ryu app calls.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

_CANDIDATES = ("ryu", "os_ken")


def _choose() -> str:
    # Under `osken-manager` (or `ryu-manager`) the framework is already loaded: use that one,
    # or the manager would not recognise the app class as one of its own.
    for name in _CANDIDATES:
        if f"{name}.base.app_manager" in sys.modules:
            return name
    forced = os.environ.get("MUD_RYU_FRAMEWORK", "").strip()
    if forced:
        if forced not in _CANDIDATES:
            raise ImportError(f"MUD_RYU_FRAMEWORK={forced!r}: expected one of {_CANDIDATES}")
        return forced
    errors = []
    for name in _CANDIDATES:
        try:
            importlib.import_module(f"{name}.ofproto.ofproto_v1_3_parser")
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return name
    raise ImportError("mud_ryu needs Ryu 4.34 or os-ken 3.1.x: " + "; ".join(errors))


FRAMEWORK: str = _choose()
ofproto: ModuleType = importlib.import_module(f"{FRAMEWORK}.ofproto.ofproto_v1_3")
parser: ModuleType = importlib.import_module(f"{FRAMEWORK}.ofproto.ofproto_v1_3_parser")


@dataclass(frozen=True)
class Framework:
    """The framework pieces the Ryu app needs, under framework-neutral names."""

    name: str
    app_base: type[Any]
    ofp_event: ModuleType
    handler: ModuleType
    hub: ModuleType
    wsgi: ModuleType | None
    conf: Any  # the framework's oslo.config ConfigOpts (what ryu-manager's command line and --config-file fill)


def framework() -> Framework:
    """Import the controller framework proper (event loop, app base class)."""
    # app_manager must be imported before controller (os-ken >= 4 requires it; harmless in Ryu)
    app_manager = importlib.import_module(f"{FRAMEWORK}.base.app_manager")
    base = getattr(app_manager, "RyuApp", None) or app_manager.OSKenApp
    try:
        wsgi: ModuleType | None = importlib.import_module(f"{FRAMEWORK}.app.wsgi")
    except ImportError:
        wsgi = None
    return Framework(
        name=FRAMEWORK,
        app_base=base,
        ofp_event=importlib.import_module(f"{FRAMEWORK}.controller.ofp_event"),
        handler=importlib.import_module(f"{FRAMEWORK}.controller.handler"),
        hub=importlib.import_module(f"{FRAMEWORK}.lib.hub"),
        wsgi=wsgi,
        conf=importlib.import_module(f"{FRAMEWORK}.cfg").CONF,
    )


def reserve_xids(datapath: Any, count: int) -> int:
    """Take ``count`` consecutive transaction ids of ``datapath``, as its own ``set_xid`` would one by one, for
    messages encoded without the framework's objects (:mod:`mud_ryu.openflow.wire`); returns the first."""
    first = (datapath.xid + 1) & ofproto.MAX_XID
    datapath.xid = (datapath.xid + count) & ofproto.MAX_XID
    return int(first)


def send_bytes(datapath: Any, data: bytes) -> None:
    """Queue encoded OpenFlow messages (one, or many back to back) on the datapath's send loop: one entry of its
    bounded send queue, where a message object each would take one entry (and a context switch when it is full)."""
    datapath.send(data)

