"""RFC 8520 abstractions live in the enforcer: a device of a model (or manufacturer) that an ACE names joins the
allowed set when it is classified, without recompiling or re-sending the naming profile's rules."""

from __future__ import annotations

import json
from pathlib import Path

from mud_ryu.compiler.pipeline import CookieKind, parse_cookie
from mud_ryu.enforcer.core import FlowUpdate
from tests.enforcer_lab import BULB, BULB2, IPS, LAPTOP, Lab
from tests.mudfiles import ip_mud_file
from tests.packets import Packet

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "usnistgov+nist-mud"
MODEL_TEST = CORPUS / "test__unittest__mud-model-test__mudfile-model-test.json"
A_URL = "https://model-test.nist.local/super1"
TOOTHBRUSH = "https://toothbrush.nist.local/super1"


def _toothbrush() -> bytes:
    """A toothbrush whose to-device policy lets model-test devices reach it on UDP 8008."""
    ace = {"name": "from-model-test", "actions": {"forwarding": "accept"},
           "matches": {"ietf-mud:mud": {"model": A_URL}, "ipv4": {"protocol": 17},
                       "udp": {"destination-port": {"operator": "eq", "port": 8008}}}}  # fmt: skip
    tree = {
        "ietf-mud:mud": {
            "mud-version": 1, "mud-url": TOOTHBRUSH, "last-update": "2026-01-01T00:00:00+00:00",
            "cache-validity": 48, "is-supported": True, "systeminfo": "toothbrush",
            "from-device-policy": {"access-lists": {"access-list": []}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": "to-tb"}]}},
        },
        "ietf-access-control-list:acls": {"acl": [{"name": "to-tb", "type": "ipv4-acl-type", "aces": {"ace": [ace]}}]},
    }  # fmt: skip
    return json.dumps(tree).encode()


def test_a_model_joins_live_without_recompiling_the_naming_profile(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    lab.connect()
    lab.announce(BULB, 1, A_URL)
    lab.resolve(A_URL, MODEL_TEST.read_bytes())
    a_profile = lab.enforcer.profiles[A_URL].profile_id
    mark = len(lab.effects)
    # The toothbrush appears later: model-test's rules already name its (pre-allocated) model id.
    lab.announce(BULB2, 2, TOOTHBRUSH)
    lab.resolve(TOOTHBRUSH, _toothbrush())
    lab.announce(LAPTOP, 3, "https://other.nist.local/thing")
    lab.resolve("https://other.nist.local/thing", ip_mud_file("https://other.nist.local/thing"))
    resent = [
        r
        for e in lab.effects[mark:]
        if isinstance(e, FlowUpdate)
        for r in e.adds
        if parse_cookie(r.cookie).owner == a_profile and parse_cookie(r.cookie).kind == int(CookieKind.PROFILE)
    ]
    assert resent == []  # fmt: skip
    to_brush = Packet.udp(1, BULB, BULB2, IPS[BULB], IPS[BULB2], 40000, 8008)
    to_other = Packet.udp(1, BULB, LAPTOP, IPS[BULB], IPS[LAPTOP], 40000, 8008)
    assert lab.sim.is_output(to_brush, 2)
    assert not lab.sim.is_output(to_other, 3)
    lab.store.close()


MYCTL = CORPUS / "test__unittest__mud-mycontrollerclass-test__mudfile-mycontrollerclass-test.json"
MYCTL_URL = "https://mycontrollerclass-test.nist.local/super1"


def test_my_controller_per_url_from_settings(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state", my_controller=("192.0.2.99",),
              my_controller_by_url={MYCTL_URL: ("198.51.100.7",)})  # fmt: skip
    lab.connect()
    lab.announce(BULB, 1, MYCTL_URL)
    lab.resolve(MYCTL_URL, MYCTL.read_bytes())
    to_mine = Packet.udp(1, BULB, "02:00:00:00:00:fe", IPS[BULB], "198.51.100.7", 40000, 8002)
    to_default = Packet.udp(1, BULB, "02:00:00:00:00:fe", IPS[BULB], "192.0.2.99", 40000, 8002)
    assert lab.sim.is_output(to_mine, 5)
    assert not lab.sim.is_output(to_default, 5)  # the per-URL entry replaces the default for this URL
    lab.store.close()
