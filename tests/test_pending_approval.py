"""Approving exactly what was reviewed (issue 12 item 5): an approval names the pending URL and its file digest as
``device MAC`` shows them; a device that replaces its pending change gets ``pending-changed`` instead of the
approval, and may replace it at most once per ``min_pending_interval`` (each replacement alerted).

The enforcer with real stores on the table simulator (tests/enforcer_lab.py), through operator_actions and through
the REST handler over the real backend; the clock is the ``now`` each event is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.api.backend import EnforcerBackend
from mud_ryu.api.handlers import handle
from mud_ryu.discovery.scan import Announcement
from mud_ryu.enforcer import operator as operator_actions
from mud_ryu.enforcer.core import Alert, Effect, ResolveRequest
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.wire import WireResult
from mud_ryu.policy.types import Pending
from tests.enforcer_lab import BULB, DPID, NOW, PEER_PORT, Lab, alerts
from tests.mudfiles import ip_mud_file

V1 = "https://mud.test/bulb/v1.json"
V2 = "https://mud.test/bulb/v2.json"
OTHER_HOST = "https://evil.test/bulb/v2.json"
OTHER_HOST2 = "https://evil.test/bulb/v3.json"
VENDOR = Signer("aa" * 20, ("CN=bulb signer,O=Vendor", "CN=Vendor CA"))
STRANGER = Signer("bb" * 20, ("CN=bulb signer,O=Vendor", "CN=Another CA"))
V2_FILE = ip_mud_file(V2, port=8883)
V2_SHA = hashlib.sha256(V2_FILE).hexdigest()
TOKEN = "pending-token"


def _lab(state: Path, min_pending_interval: float) -> Lab:
    lab = Lab(state, min_pending_interval=min_pending_interval)
    lab.connect()
    lab.announce(BULB, 1, V1)
    lab.resolve(V1, ip_mud_file(V1, port=443), signer=VENDOR)
    assert _allows(lab, 443)
    return lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    running = _lab(tmp_path / "state", min_pending_interval=60.0)
    yield running
    running.store.close()


def _allows(lab: Lab, port: int) -> bool:
    return lab.sim.is_output(lab.tcp(BULB, 1, port), PEER_PORT)


def _say(lab: Lab, url: str, now: float) -> list[Effect]:
    return lab.apply(lab.enforcer.discovered(DPID, 1, Announcement("dhcpv4", BULB, None, url, msg_type=3), now))


def _serve(lab: Lab, url: str, body: bytes, signer: Signer, now: float = NOW) -> list[Effect]:
    result = WireResult(1, url, Outcome.FRESH, "", "test", None, None, hashlib.sha256(body).hexdigest(), signer, body)
    return lab.apply(lab.enforcer.resolved(result, now))


def _pending(lab: Lab) -> Pending | None:
    return lab.trust.record(lab.trust.store.records()[0].identity).pending


def _refused_file(lab: Lab) -> None:
    """V2 fetched and refused (another CA): pending, needs approval, named by the digest of the file refused."""
    _say(lab, V2, NOW)
    _serve(lab, V2, V2_FILE, STRANGER)
    assert not _allows(lab, 8883)


def _backend(lab: Lab) -> EnforcerBackend:
    def execute(effects: Iterable[Effect]) -> None:
        lab.apply(list(effects))

    return EnforcerBackend(lab.enforcer, [], execute, lambda: NOW)


# ---- the digest shown and named -----------------------------------------------------------------------------------


def test_device_shows_the_digest_of_the_refused_file_and_keeps_it(lab: Lab, tmp_path: Path) -> None:
    _refused_file(lab)
    detail = _backend(lab).device(BULB)
    assert detail is not None and detail.pending is not None
    assert (detail.pending.url, detail.pending.status, detail.pending.sha256) == (V2, "needs-approval", V2_SHA)
    _say(lab, V2, NOW + 1)  # the same URL again, quarantined: the digest shown stays
    assert _pending(lab) == Pending(V2, "needs-approval", "signer-changed", NOW, V2_SHA)
    lab.store.close()
    restarted = Lab(tmp_path / "state")  # ... and survives a restart (trust.sqlite3)
    assert _pending(restarted) == Pending(V2, "needs-approval", "signer-changed", NOW, V2_SHA)
    restarted.store.close()


def test_the_url_and_digest_shown_are_approved_and_applied(lab: Lab) -> None:
    _refused_file(lab)
    outcome = operator_actions.approve(lab.enforcer, BULB, V2, V2_SHA.upper(), NOW)  # hex in any case
    assert (outcome.ok, outcome.reason) == (True, "approved") and ResolveRequest(V2, force=True) in outcome.effects
    assert _pending(lab) == Pending(V2, "approved", "approved", NOW, V2_SHA)
    _serve(lab, V2, V2_FILE, STRANGER)
    assert _allows(lab, 8883)


@pytest.mark.parametrize(("url", "sha256"), [(V2, "0" * 64), ("https://mud.test/bulb/v3.json", V2_SHA)])
def test_anything_else_than_the_pending_change_is_pending_changed(lab: Lab, url: str, sha256: str) -> None:
    _refused_file(lab)
    outcome = operator_actions.approve(lab.enforcer, BULB, url, sha256, NOW)
    assert (outcome.ok, outcome.reason, outcome.effects) == (False, "pending-changed", ())
    assert _pending(lab) == Pending(V2, "needs-approval", "signer-changed", NOW, V2_SHA)  # nothing approved


def test_only_the_approved_file_is_applied(lab: Lab) -> None:
    _refused_file(lab)
    assert operator_actions.approve(lab.enforcer, BULB, V2, V2_SHA, NOW).ok
    respun = ip_mud_file(V2, port=22)  # the server now serves another file at the approved URL
    effects = _serve(lab, V2, respun, STRANGER)
    assert not _allows(lab, 22) and not _allows(lab, 8883)
    assert any(isinstance(e, Alert) and e.code == "update-violation" and "unapproved-file" in e.message
               for e in effects)  # fmt: skip
    # Reviewable again, under the digest of what was actually served.
    assert _pending(lab) == Pending(V2, "needs-approval", "unapproved-file", NOW, hashlib.sha256(respun).hexdigest())


def test_a_change_being_fetched_must_be_waited_for(lab: Lab) -> None:
    effects = _say(lab, V2, NOW)  # a small change: the policy fetches it, no digest yet
    assert ResolveRequest(V2) in effects
    assert _pending(lab) == Pending(V2, "fetching", "small-change", NOW)
    outcome = operator_actions.approve(lab.enforcer, BULB, V2, V2_SHA, NOW)
    assert (outcome.ok, outcome.reason) == (False, "pending-fetching")


def test_a_url_refused_unfetched_is_approved_with_the_operators_digest_only(lab: Lab) -> None:
    _say(lab, OTHER_HOST, NOW)  # refused on its URL alone: never fetched, so no digest to show
    detail = _backend(lab).device(BULB)
    assert detail is not None and detail.pending is not None and detail.pending.sha256 is None
    reviewed = ip_mud_file(OTHER_HOST, port=8080)
    assert operator_actions.approve(lab.enforcer, BULB, OTHER_HOST, hashlib.sha256(reviewed).hexdigest(), NOW).ok
    _serve(lab, OTHER_HOST, ip_mud_file(OTHER_HOST, port=22), STRANGER)  # not the file reviewed
    assert not _allows(lab, 22)
    assert operator_actions.approve(lab.enforcer, BULB, OTHER_HOST, hashlib.sha256(reviewed).hexdigest(), NOW,
                                    chosen=True).ok  # fmt: skip
    _serve(lab, OTHER_HOST, reviewed, STRANGER)
    assert _allows(lab, 8080)


def test_a_url_of_the_operators_choosing_says_so(lab: Lab) -> None:
    lab.apply(list(operator_actions.revoke(lab.enforcer, BULB, NOW).effects))
    assert _pending(lab) is None and not _allows(lab, 443)
    v1_sha = hashlib.sha256(ip_mud_file(V1, port=443)).hexdigest()
    refused = operator_actions.approve(lab.enforcer, BULB, V1, v1_sha, NOW)
    assert (refused.ok, refused.reason) == (False, "nothing-to-approve")
    assert operator_actions.approve(lab.enforcer, BULB, V1, v1_sha, NOW, chosen=True).ok
    _serve(lab, V1, ip_mud_file(V1, port=443), VENDOR)
    assert _allows(lab, 443)


# ---- over REST, with the real backend -----------------------------------------------------------------------------


def _post(lab: Lab, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    response = handle("POST", f"/mud/v1/devices/{BULB}/approve", headers, body, _backend(lab), TOKEN)
    return response.status, json.loads(response.body)


def test_rest_400_409_200(lab: Lab) -> None:
    _refused_file(lab)
    response = handle("GET", f"/mud/v1/devices/{BULB}", {}, b"", _backend(lab), TOKEN)
    shown = json.loads(response.body)["pending"]
    assert (shown["url"], shown["sha256"], shown["status"]) == (V2, V2_SHA, "needs-approval")
    for body in (b"", json.dumps({"url": V2}).encode(), json.dumps({"sha256": V2_SHA}).encode()):
        status, document = _post(lab, body)
        assert (status, document["error"]) == (400, "missing-field")
    status, document = _post(lab, json.dumps({"url": V2, "sha256": "0" * 64}).encode())
    assert (status, document["error"]) == (409, "pending-changed")
    status, document = _post(lab, json.dumps({"url": V2, "sha256": "xyz" * 21 + "x"}).encode())
    assert (status, document["error"]) == (400, "bad-field")
    status, document = _post(lab, json.dumps({"url": shown["url"], "sha256": shown["sha256"]}).encode())
    assert (status, document["reason"]) == (200, "approved")


# ---- replacing the pending change: rate limited, alerted ----------------------------------------------------------


def test_a_replacement_inside_the_interval_is_refused_and_alerted(lab: Lab) -> None:
    _say(lab, OTHER_HOST, NOW)  # refused: quarantined, OTHER_HOST pending
    device_row = lab.store.devices()
    effects = _say(lab, OTHER_HOST2, NOW + 59.9)
    assert alerts(effects) == ["pending-rate-limited"]
    alert = next(e for e in effects if isinstance(e, Alert))
    assert alert.url == OTHER_HOST2 and OTHER_HOST in alert.message
    assert not [e for e in effects if isinstance(e, ResolveRequest)]
    assert _pending(lab) is not None and _pending(lab).url == OTHER_HOST  # type: ignore[union-attr]
    assert lab.store.devices() == device_row  # the device stays as it was
    back_in_time = _say(lab, OTHER_HOST2, NOW - 5)  # a clock that went back is no way around it
    assert alerts(back_in_time) == ["pending-rate-limited"]


def test_a_replacement_after_the_interval_is_taken_and_alerted(lab: Lab) -> None:
    _say(lab, OTHER_HOST, NOW)
    effects = _say(lab, OTHER_HOST2, NOW + 60)
    assert alerts(effects) == ["pending-approval", "pending-replaced"]
    replaced = next(e for e in effects if isinstance(e, Alert) and e.code == "pending-replaced")
    assert replaced.url == OTHER_HOST2 and OTHER_HOST in replaced.message and OTHER_HOST2 in replaced.message
    assert _pending(lab) is not None and _pending(lab).url == OTHER_HOST2  # type: ignore[union-attr]
    assert alerts(_say(lab, OTHER_HOST2, NOW + 61)) == ["pending-approval"]  # the same URL again replaces nothing


def test_an_approved_change_cannot_be_swapped_at_once(lab: Lab) -> None:
    _refused_file(lab)
    assert operator_actions.approve(lab.enforcer, BULB, V2, V2_SHA, NOW + 100).ok
    effects = _say(lab, OTHER_HOST, NOW + 110)
    assert alerts(effects) == ["pending-rate-limited"]
    assert _pending(lab) == Pending(V2, "approved", "approved", NOW + 100, V2_SHA)
    _serve(lab, V2, V2_FILE, STRANGER, NOW + 120)  # the approved fetch still applies
    assert _allows(lab, 8883)


def test_a_trusted_device_changing_url_is_not_held_by_the_pending_limit(lab: Lab) -> None:
    effects = _say(lab, V2, NOW)  # trusted: the URL-change rules apply (min_url_change_interval), not this one
    assert ResolveRequest(V2) in effects and "pending-rate-limited" not in alerts(effects)
