"""The app's background tasks, each run in its own green thread: the periodic refresh of the files in force, DNS
binding expiry, re-asking lost resolutions, and the fail-mode check of a newly connected bridge (THREATS.md R1).

Split from :mod:`mud_ryu.app`, which spawns them: the framework's ``sleep`` comes in as an argument (only the app
loads the framework), and they log under the app's logger like the rest of the controller edge.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable

from mud_ryu.edge.effects import format_dpid
from mud_ryu.enforcer.core import Alert, Effect, Enforcer
from mud_ryu.fetch.client import WorkerClient

LOG = logging.getLogger("mud_ryu.app")
REFRESH_INTERVAL_S = 300.0  # the worker's cache decides whether a URL is actually fetched again
RETRY_INTERVAL_S = 10.0
FLOW_RETRY_POLL_S = 0.5  # refused flows are resent after 1 s at the earliest (enforcer.refusals.REFUSAL_RETRY_FIRST_S)
DNS_POLL_S = 5.0  # the longest an expiry waits when nothing is due sooner
DNS_SAVE_S = 2.0  # how often changed DNS bindings are saved (enforcer.dns.DNS_SAVE_INTERVAL_S)
LEASE_POLL_S = 2.0  # lease ends are checked, and a changed lease table saved, this often

Sleep = Callable[[float], object]
Execute = Callable[[Iterable[Effect]], None]


def _survived(task: str, step: Callable[[], object]) -> bool:
    """Run one round of a background task; False when it raised. A green thread that dies takes its task with it,
    silently and for good (no more refreshes, retries, or DNS expiry: stale addresses would stay allowed), so a
    round that fails is logged and the task goes on."""
    try:
        step()
    except Exception:
        LOG.exception("%s: a round failed; the task goes on", task)
        return False
    return True


def refresh_loop(enforcer: Enforcer, worker: WorkerClient, sleep: Sleep) -> None:
    """Ask the worker about every file in force each REFRESH_INTERVAL_S (it answers from its cache when fresh)."""

    def ask() -> None:
        for url in sorted(enforcer.profiles):
            worker.request(url, time.time())

    while True:
        sleep(REFRESH_INTERVAL_S)
        _survived("refresh", ask)


def dns_loop(enforcer: Enforcer, execute: Execute, sleep: Sleep) -> None:
    """Expire DNS-learned addresses when their (clamped) TTL runs out; save the bindings for a restart (every
    DNS_SAVE_S at most, when they changed)."""
    while True:
        due = enforcer.dns.next_expiry()
        now = time.time()
        _survived("dns save", functools.partial(enforcer.save_dns, now))
        if due is not None and due <= now:
            if not _survived("dns expiry", functools.partial(_expire, enforcer, execute, now)):
                sleep(DNS_POLL_S)  # not a busy loop when the same round keeps failing
            continue
        sleep(min(DNS_POLL_S, DNS_SAVE_S, due - now) if due is not None else min(DNS_POLL_S, DNS_SAVE_S))


def _expire(enforcer: Enforcer, execute: Execute, now: float) -> None:
    execute(enforcer.dns_expire(now))


def retry_loop(enforcer: Enforcer, execute: Execute, sleep: Sleep) -> None:
    """Ask again for resolutions whose answer never came (see :meth:`Enforcer.retry_lost`)."""
    while True:
        sleep(RETRY_INTERVAL_S)
        _survived("resolution retry", lambda: execute(enforcer.retry_lost(time.time())))


def flow_retry_loop(enforcer: Enforcer, execute: Execute, sleep: Sleep) -> None:
    """Resend flows a switch refused once their backoff is due (see :meth:`Enforcer.retry_refused`)."""
    while True:
        sleep(FLOW_RETRY_POLL_S)
        _survived("flow retry", lambda: execute(enforcer.retry_refused(time.time())))


def lease_loop(enforcer: Enforcer, execute: Execute, sleep: Sleep) -> None:
    """End DHCP leases that were not renewed; save the lease table for a restart (when it changed)."""
    while True:
        sleep(LEASE_POLL_S)
        _survived("lease expiry", lambda: execute(enforcer.lease_expire(time.time())))
        _survived("lease save", lambda: enforcer.save_leases(time.time()))


def check_fail_mode(dpid: int, alert: Callable[[Alert], None]) -> None:
    """R1: a managed bridge must not fall back to a learning switch. Asks the local OVSDB (when there is one) for
    the bridge's fail-mode and alerts unless it is ``secure``."""
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
                alert(Alert("fail-mode-standalone", "", dpid, 0, "", f"bridge {name} is {mode}"))
            return
