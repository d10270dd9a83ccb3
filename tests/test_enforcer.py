"""The enforcer core driven event by event, its flow updates applied to the OpenFlow table simulator.

Each test asks the simulated switch "does this packet from this port get out of that port?" after the enforcer
reacted to announcements, resolutions, port changes and restarts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mud_ryu.compiler.edgeflows import LEARN_COOKIE
from mud_ryu.discovery.scan import NoUrl
from mud_ryu.enforcer.core import FlowUpdate, ResolveRequest
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.settings import DefaultPolicy, MudSettings
from tests.enforcer_lab import (
    BULB,
    BULB2,
    DPID,
    IPS,
    LAPTOP,
    NOW,
    PEER,
    PEER_MAC,
    PEER_PORT,
    URL,
    URL2,
    Lab,
    alerts,
    device_rules,
)
from tests.mudfiles import ip_mud_file
from tests.packets import ACK, SYN, SYN_ACK, Packet


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    running = Lab(tmp_path / "state")
    running.connect()
    yield running
    running.store.close()


def test_connect_installs_pipeline_punts_and_learning(lab: Lab) -> None:
    dhcp = Packet.udp(1, BULB, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67)
    verdict = lab.sim.process(dhcp)
    assert verdict.to_controller and verdict.outputs == {2, 3, 4, 5}  # punted and still flooded
    # no punts on the uplink port: announcements relayed from another switch are not this switch's business
    relayed = lab.sim.process(Packet.udp(5, BULB, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67))
    assert relayed.path[0][1].cookie == LEARN_COOKIE  # only the learning copy of an unknown source
    unknown = lab.sim.process(lab.tcp(LAPTOP, 3, 80))
    assert unknown.to_controller and PEER_PORT in unknown.outputs  # learning copy, flooded meanwhile


def test_announced_device_is_quarantined_then_enforced(lab: Lab) -> None:
    effects = lab.announce(BULB, 1, URL)
    assert ResolveRequest(URL) in effects
    assert not lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)  # fail closed while its file is fetched
    dhcp = Packet.udp(1, BULB, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67)
    assert lab.sim.is_output(dhcp, PEER_PORT)  # ... but it still gets its lease
    lab.resolve(URL, ip_mud_file(URL))
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    assert lab.sim.is_output(lab.back(BULB, 443, SYN_ACK), 1)
    assert lab.sim.is_output(lab.back(BULB, 443, ACK), 1)
    assert not lab.sim.is_output(lab.tcp(BULB, 1, 22), PEER_PORT)
    assert not lab.sim.is_output(lab.back(BULB, 443, SYN), 1)  # the peer may not initiate (direction-initiated)
    assert not lab.sim.is_output(lab.tcp(BULB, 2, 443), PEER_PORT)  # its MAC from another port: anti-spoofing
    assert lab.store.devices()[0].state == "enforced"


def test_devices_sharing_a_url_share_the_profile(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    before = len(lab.sim)
    effects = lab.announce(BULB2, 2, URL)
    # The file verified a moment ago stands (RECHECK_S): the newcomer gets its own trust decision from it at once,
    # without a resolution whose answer every device on the URL would hear again.
    assert ResolveRequest(URL) not in effects
    added = [r for e in effects if isinstance(e, FlowUpdate) for r in e.adds]
    assert {r.table for r in added} <= {"classify_src", "source_guard", "classify_dst", "forward"}  # device flows
    # 3 classification flows, its port's catch of new MACs, its forwarding, its IPv4 source binding (IP and ARP)
    assert len(lab.sim) == before + 7
    assert lab.sim.is_output(lab.tcp(BULB2, 2, 443), PEER_PORT)
    assert not lab.sim.is_output(lab.tcp(BULB2, 2, 22), PEER_PORT)


def test_unmanaged_host_is_learned_and_allowed(lab: Lab) -> None:
    lab.apply(lab.enforcer.learned(DPID, 3, LAPTOP, NOW))
    verdict = lab.sim.process(lab.tcp(LAPTOP, 3, 22))
    assert not verdict.to_controller and PEER_PORT in verdict.outputs
    lab.apply(lab.enforcer.learned(DPID, PEER_PORT, PEER_MAC, NOW))
    assert lab.sim.process(Packet.tcp(PEER_PORT, PEER_MAC, LAPTOP, PEER, IPS[LAPTOP], 22, 40000, SYN_ACK)).outputs == {
        3
    }


def test_bootstrap_only_default_quarantines_unknown_hosts(tmp_path: Path) -> None:
    strict = Lab(tmp_path / "state", DefaultPolicy.BOOTSTRAP_ONLY)
    strict.connect()
    strict.apply(strict.enforcer.learned(DPID, 3, LAPTOP, NOW))
    assert not strict.sim.is_output(strict.tcp(LAPTOP, 3, 443), PEER_PORT)


def test_first_contact_failure_keeps_quarantine_andalerts(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, None, Outcome.FIRST_CONTACT_FAILED, "fetch:bad-status")
    assert "quarantined" in alerts(lab.effects)
    assert not lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    assert lab.store.devices()[0].reason == "fetch:bad-status"


def test_spoofed_announcement_from_another_port_is_refused(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    table = lab.sim.table_hash()
    effects = lab.announce(BULB, 2, "https://evil.test/open.json")
    assert alerts(effects) == ["spoofed-announcement"]
    assert lab.sim.table_hash() == table
    assert not [e for e in effects if isinstance(e, ResolveRequest)]


def test_device_moves_after_port_down(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.apply(lab.enforcer.port_down(DPID, 1, NOW))
    assert lab.store.devices()[0].state == "absent"
    assert device_rules(lab, BULB) == []  # old location cleaned
    lab.apply(lab.enforcer.port_up(DPID, 1))
    lab.announce(BULB, 2, URL)
    assert lab.sim.is_output(lab.tcp(BULB, 2, 443), PEER_PORT)  # profile known: enforced at once
    assert not lab.sim.is_output(lab.tcp(BULB, 2, 22), PEER_PORT)
    assert not lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)


def test_dhcp_release_removes_the_device_flows(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.apply(lab.enforcer.discovered(DPID, 1, NoUrl("dhcpv4", BULB, None, msg_type=7, chaddr=BULB), NOW))
    assert lab.store.devices()[0].state == "absent"


def test_url_change_keeps_the_old_policy_until_verified(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    effects = lab.announce(BULB, 1, URL2)
    assert ResolveRequest(URL2) in effects
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)  # still the old, verified policy
    lab.resolve(URL2, None, Outcome.FIRST_CONTACT_FAILED, "signature:untrusted-chain")
    assert "kept-last" in alerts(lab.effects)
    assert lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)
    lab.resolve(URL2, ip_mud_file(URL2, port=8883))
    assert lab.sim.is_output(lab.tcp(BULB, 1, 8883), PEER_PORT)
    assert not lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)


def test_new_version_of_a_file_replaces_the_profile_rules(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.resolve(URL, ip_mud_file(URL, port=8443, systeminfo="v2"))
    assert lab.sim.is_output(lab.tcp(BULB, 1, 8443), PEER_PORT)
    assert not lab.sim.is_output(lab.tcp(BULB, 1, 443), PEER_PORT)


def test_restart_reconciles_without_deleting_valid_flows(lab: Lab, tmp_path: Path) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.announce(BULB2, 2, URL)
    lab.apply(lab.enforcer.learned(DPID, 3, LAPTOP, NOW))
    table = lab.sim.table_hash()
    lab.store.close()
    # A new controller process: same state directory, the switch still holds everything.
    restarted = Lab(tmp_path / "state")
    restarted.sim = lab.sim
    effects = restarted.connect()
    updates = [e for e in effects if isinstance(e, FlowUpdate)]
    assert updates and all(not u.adds and not u.deletes and not u.stale for u in updates)
    assert restarted.sim.table_hash() == table
    assert ResolveRequest(URL) in effects  # refreshed in the background, the policy stays meanwhile
    restarted.store.close()


def test_reconcile_deletes_only_what_nothing_wants(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    lab.store.forget(BULB)  # the controller no longer knows the device: its flows are stale now
    lab.enforcer.devices.pop(BULB)
    lab.connect()
    assert device_rules(lab, BULB) == []
    assert lab.sim.process(lab.tcp(BULB, 1, 443)).to_controller  # an unknown source again: learning copy


def test_bad_url_quarantines_with_its_reason(lab: Lab) -> None:
    effects = lab.announce(BULB, 1, "http://mud.test/x.json")
    assert alerts(effects) == ["bad-url"]
    assert not [e for e in effects if isinstance(e, ResolveRequest)]
    assert lab.store.devices()[0].reason == "url:not-https"


def test_device_of_another_switch_is_not_learned_on_an_access_port(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, ip_mud_file(URL))
    other = 0x2
    lab.enforcer.switch_up(other, [1, 5], metered=True)
    lab.enforcer.reconcile(other, [])
    on_access = lab.enforcer.learned(other, 5, BULB, NOW)  # (0x2, 5) is not an uplink in these settings
    assert on_access == []  # seen on an access port of another switch: never learned as an unmanaged host


def test_managed_device_learned_through_an_uplink(tmp_path: Path) -> None:
    two = Lab(tmp_path / "state")
    two.settings = MudSettings(state_dir=str(tmp_path / "state"), uplink_ports=frozenset({(DPID, 5), (2, 5)}))
    two.enforcer.state.settings = two.settings
    two.connect()
    two.announce(BULB, 1, URL)
    two.resolve(URL, ip_mud_file(URL))
    two.enforcer.switch_up(2, [1, 5], metered=True)
    two.enforcer.reconcile(2, [])
    effects = two.enforcer.learned(2, 5, BULB, NOW)
    added = [r for e in effects if isinstance(e, FlowUpdate) for r in e.adds]
    assert {r.table for r in added} == {"classify_src", "forward"} and all(e.dpid == 2 for e in effects
                                                                          if isinstance(e, FlowUpdate))  # fmt: skip
    assert two.enforcer.learned(2, 1, BULB, NOW) == []  # but not from an access port of switch 2
    two.store.close()


def test_backoff_answers_do_not_alert_again(lab: Lab) -> None:
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, None, Outcome.FIRST_CONTACT_FAILED, "fetch:connect-failed")
    before = len(alerts(lab.effects))
    lab.announce(BULB, 1, URL)
    lab.resolve(URL, None, Outcome.BACKOFF, "backoff:fetch:connect-failed")
    assert len(alerts(lab.effects)) == before
    assert lab.store.devices()[0].reason == "backoff:fetch:connect-failed"


def test_a_lost_resolution_is_asked_again_after_the_timeout(lab: Lab) -> None:
    from mud_ryu.discovery.scan import Announcement
    from mud_ryu.enforcer.core import RESOLVE_TIMEOUT_S

    first = lab.announce(BULB, 1, URL)
    assert ResolveRequest(URL) in first
    ann = Announcement("dhcpv4", BULB, None, URL, msg_type=3, chaddr=BULB)
    soon = lab.enforcer.discovered(DPID, 1, ann, NOW + 1)
    assert ResolveRequest(URL) not in soon  # still in flight
    later = lab.enforcer.discovered(DPID, 1, ann, NOW + RESOLVE_TIMEOUT_S + 1)
    assert ResolveRequest(URL) in later  # the worker never answered: ask again


def test_lost_resolutions_are_retried_without_a_new_announcement(lab: Lab) -> None:
    from mud_ryu.enforcer.core import RESOLVE_TIMEOUT_S

    lab.announce(BULB, 1, URL)
    assert lab.enforcer.retry_lost(NOW + 1) == []
    assert lab.enforcer.retry_lost(NOW + RESOLVE_TIMEOUT_S) == [ResolveRequest(URL)]
    assert lab.enforcer.retry_lost(NOW + RESOLVE_TIMEOUT_S + 1) == []  # asked again just now
