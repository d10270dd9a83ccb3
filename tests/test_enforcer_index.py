"""The enforcer's "which devices use which profile where" index and its cached id maps, against recomputation.

Random event sequences (announcements good and bad, resolutions that verify or fail, port and switch changes,
releases, learned hosts, operator revoke/forget, restarts, on two switches) are driven through the real Enforcer;
after every step the index must equal one rebuilt from the device map, ``profile_in_use`` must answer exactly as
the full scan over the devices it replaced, the devices an answer for a URL concerns (``wanting``) must be those a
scan finds, and the cached id maps must equal the store's.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mud_ryu.compiler.pipeline import QUARANTINE_PROFILE_ID
from mud_ryu.discovery.scan import Announcement, NoUrl
from mud_ryu.enforcer import operator as operator_actions
from mud_ryu.enforcer.core import Enforcer
from mud_ryu.enforcer.network import wants
from mud_ryu.enforcer.state import Effect, FlowUpdate, Profile
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.wire import WireResult
from tests.enforcer_lab import BULB, BULB2, LAPTOP, NOW, URL, URL2, Lab
from tests.mudfiles import ip_mud_file

DPIDS = (1, 2)
MACS = (BULB, BULB2, LAPTOP)
URLS = (URL, URL2, "http://mud.test/refused.json")
PORTS = (1, 2, 3)

Step = tuple[object, ...]
announces = st.tuples(st.just("announce"), st.sampled_from(DPIDS), st.sampled_from(PORTS), st.sampled_from(MACS),
                      st.sampled_from(URLS))  # fmt: skip
resolves = st.tuples(st.just("resolve"), st.sampled_from(URLS[:2]), st.booleans())
# An announcement answered at once by a verified file: the shortest way to an enforced device (the states where the
# index keys on URLs), so random sequences reach them often rather than by luck.
admits = st.tuples(st.just("admit"), st.sampled_from(DPIDS), st.sampled_from(PORTS), st.sampled_from(MACS),
                   st.sampled_from(URLS[:2]))  # fmt: skip
steps = st.one_of(
    admits,
    admits,
    announces,
    announces,
    resolves,
    st.tuples(st.just("port_down"), st.sampled_from(DPIDS), st.sampled_from(PORTS)),
    st.tuples(st.just("port_up"), st.sampled_from(DPIDS), st.sampled_from(PORTS)),
    st.tuples(st.just("release"), st.sampled_from(DPIDS), st.sampled_from(PORTS), st.sampled_from(MACS)),
    st.tuples(st.just("learned"), st.sampled_from(DPIDS), st.sampled_from(PORTS), st.sampled_from(MACS)),
    st.tuples(st.just("switch_down"), st.sampled_from(DPIDS)),
    st.tuples(st.just("switch_up"), st.sampled_from(DPIDS)),
    st.tuples(st.just("revoke"), st.sampled_from(MACS)),
    st.tuples(st.just("forget"), st.sampled_from(MACS)),
    st.tuples(st.just("restart")),
)


def _answer(url: str, ok: bool) -> WireResult:
    body = ip_mud_file(url) if ok else b""
    sha = hashlib.sha256(body).hexdigest() if ok else None
    outcome = Outcome.FRESH if ok else Outcome.FIRST_CONTACT_FAILED
    return WireResult(1, url, outcome, "" if ok else "fetch:bad-status", "test", None, None, sha, None, body)


def _confirm(enforcer: Enforcer, effects: list[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, FlowUpdate):
            enforcer.confirmed(effect.confirms)


def _run(lab: Lab, step: Step, now: float) -> None:
    enforcer = lab.enforcer
    kind, *args = step
    effects: list[Effect] = []
    if kind in ("announce", "admit"):
        dpid, port, mac, url = args
        assert isinstance(dpid, int) and isinstance(port, int) and isinstance(mac, str) and isinstance(url, str)
        effects = enforcer.discovered(dpid, port, Announcement("dhcpv4", mac, None, url, msg_type=3, chaddr=mac), now)
        if kind == "admit":
            _confirm(enforcer, effects)
            effects = enforcer.resolved(_answer(url, True), now)
    elif kind == "resolve":
        url, ok = args
        assert isinstance(url, str) and isinstance(ok, bool)
        effects = enforcer.resolved(_answer(url, ok), now)
    elif kind == "port_down":
        dpid, port = args
        assert isinstance(dpid, int) and isinstance(port, int)
        effects = enforcer.port_down(dpid, port, now)
    elif kind == "port_up":
        dpid, port = args
        assert isinstance(dpid, int) and isinstance(port, int)
        effects = enforcer.port_up(dpid, port)
    elif kind in ("release", "learned"):
        dpid, port, mac = args
        assert isinstance(dpid, int) and isinstance(port, int) and isinstance(mac, str)
        if kind == "release":
            effects = enforcer.discovered(dpid, port, NoUrl("dhcpv4", mac, None, msg_type=7, chaddr=mac), now)
        else:
            effects = enforcer.learned(dpid, port, mac, now)
    elif kind == "switch_down":
        assert isinstance(args[0], int)
        enforcer.switch_down(args[0])
    elif kind == "switch_up":
        assert isinstance(args[0], int)
        enforcer.switch_up(args[0], PORTS, metered=True)
        effects = enforcer.reconcile(args[0], [], now)
    elif kind in ("revoke", "forget"):
        mac = args[0]
        assert isinstance(mac, str)
        action = operator_actions.revoke if kind == "revoke" else operator_actions.forget
        effects = list(action(enforcer, mac, now).effects)
    elif kind == "restart":
        lab.enforcer = Enforcer(lab.settings, lab.store, lab.trust, now)
        for dpid in DPIDS:
            lab.enforcer.switch_up(dpid, PORTS, metered=True)
            _confirm(lab.enforcer, lab.enforcer.reconcile(dpid, [], now))
    _confirm(lab.enforcer, effects)


def _scan(enforcer: Enforcer, dpid: int, profile_id: int) -> Profile | None:
    """What ``FlowBook.profile_in_use`` computes before the index: a scan over every device."""
    if profile_id == QUARANTINE_PROFILE_ID:
        used = any(d.dpid == dpid and d.state == "quarantined" for d in enforcer.devices.values())
        return enforcer.profile_book.quarantine if used else None
    for device in enforcer.devices.values():
        if device.dpid == dpid and device.state == "enforced" and device.url in enforcer.profiles:
            profile = enforcer.profiles[device.url]
            if profile.profile_id == profile_id:
                return profile
    return None


def _check(lab: Lab) -> None:
    enforcer = lab.enforcer
    rebuilt: dict[tuple[int, str, str | None], set[str]] = {}
    for mac, d in enforcer.devices.items():
        if d.state == "quarantined":
            rebuilt.setdefault((d.dpid, "quarantined", None), set()).add(mac)
        elif d.state == "enforced" and d.url is not None:
            rebuilt.setdefault((d.dpid, "enforced", d.url), set()).add(mac)
    assert enforcer.state._users == rebuilt
    for key, macs in rebuilt.items():  # the ports the flood flows read, kept counted
        assert set(enforcer.state._user_ports[key]) == {enforcer.devices[m].port for m in macs}
    for url in {*URLS, *(d.url for d in enforcer.devices.values() if d.url)}:  # whom an answer for a URL concerns
        scan = [d for d in enforcer.devices.values() if d.state != "absent" and wants(d, url)]
        assert sorted(d.mac for d in enforcer.state.wanting(url)) == sorted(d.mac for d in scan)
    ids = lab.store.profile_ids()
    assert enforcer.state.profile_ids == ids
    assert enforcer.state.manufacturer_ids == lab.store.manufacturer_ids()
    for dpid in (*DPIDS, 3):
        for profile_id in (QUARANTINE_PROFILE_ID, *ids.values(), max(ids.values(), default=0) + 1):
            assert enforcer.flows.profile_in_use(dpid, profile_id) is _scan(enforcer, dpid, profile_id)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=4, max_size=30))
def test_index_equals_the_scan_after_every_step(sequence: list[Step]) -> None:
    with tempfile.TemporaryDirectory() as state:
        lab = Lab(Path(state) / "state")
        try:
            for dpid in DPIDS:
                lab.enforcer.switch_up(dpid, PORTS, metered=True)
                _confirm(lab.enforcer, lab.enforcer.reconcile(dpid, [], NOW))
            _check(lab)
            for i, step in enumerate(sequence):
                _run(lab, step, NOW + 7.0 * (i + 1))
                _check(lab)
        finally:
            lab.store.close()
            lab.trust_store.close()


def test_the_scan_sees_devices_the_index_tracks() -> None:
    """The property above is not vacuous: a plain announce + resolve puts a profile in use on its switch."""
    with tempfile.TemporaryDirectory() as state:
        lab = Lab(Path(state) / "state")
        try:
            lab.connect()
            lab.announce(BULB, 1, URL)
            assert lab.enforcer.flows.profile_in_use(1, QUARANTINE_PROFILE_ID) is not None
            lab.resolve(URL, ip_mud_file(URL))
            profile = lab.enforcer.profiles[URL]
            assert lab.enforcer.flows.profile_in_use(1, profile.profile_id) is profile
            assert lab.enforcer.flows.profile_in_use(1, QUARANTINE_PROFILE_ID) is None
            _check(lab)
        finally:
            lab.store.close()
            lab.trust_store.close()
