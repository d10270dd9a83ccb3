"""The operator's my-controller entries in the enforcer (RFC 8520 s8): set live, durable, reverting to the settings,
and recompiling only the profiles of that URL that use my-controller -- checked on the simulated switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.pipeline import CookieKind, parse_cookie
from mud_ryu.enforcer import operator as operator_actions
from mud_ryu.enforcer.core import FlowUpdate
from mud_ryu.enforcer.state import Effect
from mud_ryu.guard.floods import FLOOD_COOKIE
from mud_ryu.settings import DefaultPolicy
from tests.enforcer_lab import BULB, BULB2, IPS, Lab
from tests.mudfiles import ip_mud_file
from tests.packets import Packet

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "usnistgov+nist-mud"
MYCTL = CORPUS / "test__unittest__mud-mycontrollerclass-test__mudfile-mycontrollerclass-test.json"
MYCTL_URL = "https://mycontrollerclass-test.nist.local/super1"
PLAIN_URL = "https://plain.nist.local/thing"
PEER_MAC = "02:00:00:00:00:fe"
MINE, OTHER, SETTING, DEFAULT = "198.51.100.12", "198.51.100.13", "198.51.100.7", "192.0.2.99"


def _to(address: str) -> Packet:
    return Packet.udp(1, BULB, PEER_MAC, IPS[BULB], address, 40000, 8002)


def _lab(tmp_path: Path, **options: object) -> Lab:
    """A lab with the my-controller device (BULB, port 1) and a device whose file has no my-controller ACE (BULB2)."""
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, **options)
    lab.connect()
    lab.announce(BULB, 1, MYCTL_URL)
    lab.resolve(MYCTL_URL, MYCTL.read_bytes())
    lab.announce(BULB2, 2, PLAIN_URL)
    lab.resolve(PLAIN_URL, ip_mud_file(PLAIN_URL))
    return lab


def _set(lab: Lab, url: str, addresses: list[str] | None) -> operator_actions.ActionOutcome:
    outcome = operator_actions.set_my_controller(lab.enforcer, url, addresses)
    lab.apply(list(outcome.effects))
    return outcome


def _rules(effects: tuple[Effect, ...]) -> tuple[list[FlowRule], list[FlowRule]]:
    """The profile flows an update sends. The switch's flood flows (floodflows: group frames a to-device ACL
    accepts) follow the profile's rules and may change with them; they are checked to be only those."""
    updates = [e for e in effects if isinstance(e, FlowUpdate)]
    assert all(not u.stale for u in updates)
    adds = [r for u in updates for r in u.adds]
    deletes = [r for u in updates for r in u.deletes]
    assert all(r.table == "forward" for r in adds + deletes if r.cookie == FLOOD_COOKIE)
    return [r for r in adds if r.cookie != FLOOD_COOKIE], [r for r in deletes if r.cookie != FLOOD_COOKIE]


def _mentions(rule: FlowRule, address: str) -> bool:
    return any(value == address or (isinstance(value, tuple) and address in value) for _, value in rule.match)


def _close(lab: Lab) -> None:
    lab.store.close()
    lab.trust_store.close()


def test_set_allows_only_the_new_address_and_sends_only_the_profiles_changed_flows(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    profile_id = lab.enforcer.profiles[MYCTL_URL].profile_id
    plain_before = lab.enforcer.profiles[PLAIN_URL].compiled
    assert not lab.sim.is_output(_to(MINE), 5)  # no entry anywhere: the my-controller ACEs compile to nothing
    table_before = {(r.table, r.priority, r.match) for r in lab.sim.rules()}

    outcome = _set(lab, MYCTL_URL, [MINE])
    assert (outcome.ok, outcome.reason) == (True, "set") and MINE in outcome.message
    adds, deletes = _rules(outcome.effects)
    assert adds and deletes == []  # there was nothing to replace
    for rule in adds:
        cookie = parse_cookie(rule.cookie)
        assert (cookie.kind, cookie.owner) == (int(CookieKind.ADDRESS_SET), profile_id)
        assert _mentions(rule, MINE)
    assert {(r.table, r.priority, r.match) for r in lab.sim.rules() if r.cookie != FLOOD_COOKIE} - table_before == {
        (r.table, r.priority, r.match) for r in adds
    }
    assert lab.sim.is_output(_to(MINE), 5)
    assert not lab.sim.is_output(_to(OTHER), 5)
    assert lab.enforcer.profiles[PLAIN_URL].compiled is plain_before  # no my-controller ACE: not recompiled

    # Changing the entry replaces exactly the address-set flows: the new ones in, then the old ones out.
    outcome = _set(lab, MYCTL_URL, [OTHER])
    adds, deletes = _rules(outcome.effects)
    assert adds and len(deletes) == len(adds)
    assert all(_mentions(r, OTHER) and not _mentions(r, MINE) for r in adds)
    assert all(_mentions(r, MINE) for r in deletes)
    assert {parse_cookie(r.cookie).kind for r in (*adds, *deletes)} == {int(CookieKind.ADDRESS_SET)}
    assert lab.sim.is_output(_to(OTHER), 5) and not lab.sim.is_output(_to(MINE), 5)
    _close(lab)


def test_setting_the_same_addresses_again_sends_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    _set(lab, MYCTL_URL, [MINE])
    again = _set(lab, MYCTL_URL, [MINE, f"{MINE}/32"])  # the same entry once canonical
    assert (again.ok, again.reason, again.effects) == (True, "set", ())
    _close(lab)


def test_an_entry_for_a_profile_without_my_controller_recompiles_nothing(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    before = {url: p.compiled for url, p in lab.enforcer.profiles.items()}
    outcome = _set(lab, PLAIN_URL, [MINE])
    assert (outcome.ok, outcome.reason, outcome.effects) == (True, "set", ())
    assert all(lab.enforcer.profiles[url].compiled is compiled for url, compiled in before.items())
    _close(lab)


def test_clear_reverts_to_the_settings_entry_for_the_url(tmp_path: Path) -> None:
    lab = _lab(tmp_path, my_controller=(DEFAULT,), my_controller_by_url={MYCTL_URL: (SETTING,)})
    assert lab.sim.is_output(_to(SETTING), 5)
    _set(lab, MYCTL_URL, [MINE])
    assert lab.sim.is_output(_to(MINE), 5)
    assert not lab.sim.is_output(_to(SETTING), 5)  # the operator entry replaces the settings for this URL
    outcome = _set(lab, MYCTL_URL, None)
    assert (outcome.ok, outcome.reason) == (True, "cleared") and SETTING in outcome.message
    assert lab.sim.is_output(_to(SETTING), 5)
    assert not lab.sim.is_output(_to(MINE), 5) and not lab.sim.is_output(_to(DEFAULT), 5)
    again = _set(lab, MYCTL_URL, None)
    assert (again.ok, again.reason, again.effects) == (False, "unknown-entry", ())  # settings entries stay
    _close(lab)


def test_clear_reverts_to_the_default_list(tmp_path: Path) -> None:
    lab = _lab(tmp_path, my_controller=(DEFAULT,))
    _set(lab, MYCTL_URL, [MINE])
    assert not lab.sim.is_output(_to(DEFAULT), 5)
    outcome = _set(lab, MYCTL_URL, None)
    assert outcome.reason == "cleared" and DEFAULT in outcome.message
    assert lab.sim.is_output(_to(DEFAULT), 5) and not lab.sim.is_output(_to(MINE), 5)
    _close(lab)


def test_an_entry_survives_a_restart(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    _set(lab, MYCTL_URL, [MINE])
    _close(lab)
    restarted = Lab(tmp_path / "state")  # a new enforcer on the same state directory, a fresh switch
    restarted.connect()
    restarted.bind(BULB, 1, IPS[BULB])  # the fresh switch holds no source binding: the device's next frame binds
    assert restarted.sim.is_output(_to(MINE), 5)
    assert [(e.url, e.addresses, e.source) for e in restarted.enforcer.my_controller_entries()] == [
        (MYCTL_URL, (MINE,), "operator")
    ]
    _set(restarted, MYCTL_URL, [OTHER])  # the restarted enforcer changes it live like the first
    assert restarted.sim.is_output(_to(OTHER), 5) and not restarted.sim.is_output(_to(MINE), 5)
    _close(restarted)


def test_an_entry_for_a_url_no_device_uses_yet_applies_when_one_arrives(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    lab.connect()
    outcome = _set(lab, "HTTPS://MyControllerClass-Test.nist.local:443/super1", [MINE])  # stored canonical
    assert (outcome.ok, outcome.reason, outcome.effects) == (True, "set", ())
    lab.announce(BULB, 1, MYCTL_URL)
    lab.resolve(MYCTL_URL, MYCTL.read_bytes())
    assert lab.sim.is_output(_to(MINE), 5)
    _close(lab)


@pytest.mark.parametrize(
    ("url", "addresses", "reason"),
    [
        ("http://mycontrollerclass-test.nist.local/super1", [MINE], "bad-url:not-https"),
        ("https://mycontrollerclass-test.nist.local/super1?x=1", [MINE], "bad-url:query"),
        ("https://10.0.0.1/super1", [MINE], "bad-url:ip-literal"),
        (MYCTL_URL, [], "bad-field"),
        (MYCTL_URL, [f"198.51.100.{i}" for i in range(17)], "bad-field"),
        (MYCTL_URL, [MINE, 7], "bad-field"),
        (MYCTL_URL, ["controller.example"], "bad-address"),
        (MYCTL_URL, ["198.51.100.12/24"], "bad-address"),  # host bits: refused, not guessed
        (MYCTL_URL, ["198.51.100.256"], "bad-address"),
        (MYCTL_URL, ["fe80::1%eth0"], "bad-address"),
        (MYCTL_URL, ["1" * 65], "bad-address"),
        (MYCTL_URL, ["0.0.0.0/0"], "too-broad"),
        (MYCTL_URL, [MINE, "::/0"], "too-broad"),
    ],
)
def test_refusals_change_nothing(tmp_path: Path, url: str, addresses: list[object], reason: str) -> None:
    lab = _lab(tmp_path, my_controller_by_url={MYCTL_URL: (SETTING,)})
    table = lab.sim.table_hash()
    outcome = operator_actions.set_my_controller(lab.enforcer, url, addresses)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.reason, outcome.effects) == (False, reason, ())
    assert lab.store.my_controllers() == {} and lab.sim.table_hash() == table
    assert [e.source for e in lab.enforcer.my_controller_entries()] == ["settings"]
    _close(lab)


def test_addresses_are_canonical_and_duplicates_collapse(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    outcome = _set(lab, MYCTL_URL, [" 198.51.100.12 ", "198.51.100.12/32", "2001:DB8::0001", "2001:db8:0::1/128",
                                    "10.1.0.0/16"])  # fmt: skip
    assert outcome.ok
    assert lab.store.my_controllers() == {MYCTL_URL: (MINE, "2001:db8::1", "10.1.0.0/16")}
    _close(lab)
