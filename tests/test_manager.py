"""The MUD manager end to end: real HTTPS lab server, real fetcher, real SQLite cache, real signatures.

Time is injected (``now``), so cache validity, backoff and signature validity are exercised without waiting.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mud_ryu.fetch.cache import MudCache
from mud_ryu.fetch.fetcher import Fetcher
from mud_ryu.fetch.manager import ManagerSettings, MudManager, MudRequest, SignaturePolicy
from mud_ryu.fetch.netguard import parse_networks
from mud_ryu.fetch.refresh import Outcome
from mud_ryu.fetch.signature import load_trust_anchors
from mud_ryu.fetch.types import FetchLimits, FetchOptions
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import ParsedMud
from tests import sigvectors
from tests.https_fixtures import Lab, loopback_resolver, run_https_lab
from tests.mudfiles import SigningPki, mud_file

NOW = sigvectors.T0.timestamp()  # the test PKI is valid a year either side
HOUR = 3600.0
LIVE = ("bulb.json", "bulb.p7s", "unsigned.json", "mismatch.json", "crosssig.json", "crosssig.p7s", "html.json")


def _live(name: str, content_type: str) -> dict[str, object]:
    return {"kind": "static", "live": True, "body_file": name, "headers": [["Content-Type", content_type]]}


SITE = {f"/{name}": _live(name, "application/mud+json") for name in LIVE if name.endswith(".json")}
SITE.update({f"/{name}": _live(name, "application/pkcs7-signature") for name in LIVE if name.endswith(".p7s")})
SITE["/down.json"] = {"kind": "status", "status": 503}


@dataclass
class World:
    lab: Lab
    root: Path
    pki: SigningPki

    def write(self, name: str, data: bytes) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.root / name)

    def publish(self, name: str, *, signature: str | None = "bulb.p7s", info: str = "", url: str = "") -> bytes:
        """Serve a MUD file at /name naming its own URL (or ``url``) and, if given, sign it into /signature."""
        sig_url = self.lab.url(f"/{signature}") if signature and not signature.startswith("https:") else signature
        body = mud_file(url or self.lab.url(f"/{name}"), sig_url, systeminfo=info)
        self.write(name, body)
        if signature and sig_url != signature:
            self.write(signature, self.pki.sign(body))
        return body

    def gets(self, path: str) -> int:
        return sum(1 for r in self.lab.requests_log() if r["path"] == path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mud-site")
    for name in LIVE:
        (root / name).write_bytes(b"placeholder")
    with run_https_lab(SITE, root) as lab:
        yield World(lab, root, SigningPki.create())


def _manager(
    world: World,
    tmp_path: Path,
    policy: SignaturePolicy = SignaturePolicy.REQUIRED,
    anchors: bytes | None = None,
    require_match: bool = True,
) -> MudManager:
    fetcher = Fetcher(
        FetchOptions(
            limits=FetchLimits(deadline_s=5.0),
            ca_bundle=world.lab.ca_pem_path,
            allowed_networks=parse_networks(["127.0.0.1"]),
        ),
        resolver=loopback_resolver({"mud.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}),
    )
    cache = MudCache.open(tmp_path / "state" / "mud-cache.sqlite3")
    trust = load_trust_anchors(anchors if anchors is not None else world.pki.anchors_pem)
    settings = ManagerSettings(signature_policy=policy, trust_anchors=trust, require_matching_mud_url=require_match)
    return MudManager(fetcher, cache, settings)


def test_signed_file_fresh_then_cached_then_renewed(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="v1")
    url = world.lab.url("/bulb.json")
    manager = _manager(world, tmp_path)
    first = manager.resolve(MudRequest(url), NOW)
    assert first.outcome is Outcome.FRESH, first.reason
    assert first.mud is not None and first.mud.mud.systeminfo == "v1"
    assert first.signer is not None and first.signer.subject_chain[0].startswith("CN=mud-signer.example")
    assert first.expires_at == NOW + 48 * HOUR and not first.alert
    fetched = world.gets("/bulb.json")
    assert manager.resolve(MudRequest(url), NOW + HOUR).outcome is Outcome.CACHED
    assert world.gets("/bulb.json") == fetched  # no I/O while fresh
    renewed = manager.resolve(MudRequest(url), NOW + 49 * HOUR)
    assert renewed.outcome is Outcome.RENEWED and renewed.expires_at == NOW + 97 * HOUR
    last = [r for r in world.lab.requests_log() if r["path"] == "/bulb.json"][-1]
    assert "If-None-Match" in last["headers"] or "if-none-match" in {k.lower() for k in last["headers"]}


def test_cache_survives_restart_and_is_reverified(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="restart")
    url = world.lab.url("/bulb.json")
    assert _manager(world, tmp_path).resolve(MudRequest(url), NOW).outcome is Outcome.FRESH
    fetched = world.gets("/bulb.json")
    again = _manager(world, tmp_path).resolve(MudRequest(url), NOW + HOUR)  # a new process, same state dir
    assert again.outcome is Outcome.CACHED and again.mud is not None
    assert again.signer is not None
    assert world.gets("/bulb.json") == fetched


def test_cache_row_rewritten_on_disk_is_not_trusted(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="genuine")
    url = world.lab.url("/bulb.json")
    _manager(world, tmp_path).resolve(MudRequest(url), NOW)
    # An attacker with write access to the state dir swaps the body and fixes up the hash column.
    forged = mud_file(url, world.lab.url("/bulb.p7s"), systeminfo="forged")
    with sqlite3.connect(tmp_path / "state" / "mud-cache.sqlite3") as db:
        changed = db.execute("UPDATE mud_entry SET body=?, sha256=?", (forged, hashlib.sha256(forged).hexdigest()))
        assert changed.rowcount == 1
    again = _manager(world, tmp_path).resolve(MudRequest(url), NOW + HOUR)
    assert again.outcome is Outcome.FRESH  # dropped and fetched again
    assert again.mud is not None and again.mud.mud.systeminfo == "genuine"


def test_failed_refresh_keeps_last_verified_file(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="good")
    url = world.lab.url("/bulb.json")
    manager = _manager(world, tmp_path)
    assert manager.resolve(MudRequest(url), NOW).outcome is Outcome.FRESH
    # The server now serves a different file without re-signing it (the old signature stays).
    world.write("bulb.json", mud_file(url, world.lab.url("/bulb.p7s"), systeminfo="widened"))
    kept = manager.resolve(MudRequest(url), NOW + 49 * HOUR)
    assert kept.outcome is Outcome.KEPT_LAST and kept.alert
    assert kept.reason == "signature:digest-mismatch"
    assert kept.mud is not None and kept.mud.mud.systeminfo == "good"
    assert kept.retry_at is not None and kept.retry_at > NOW + 49 * HOUR
    # During the backoff nothing is fetched and the old file stays in force.
    fetched = world.gets("/bulb.json")
    waiting = manager.resolve(MudRequest(url), NOW + 49 * HOUR + 1)
    assert waiting.outcome is Outcome.BACKOFF and not waiting.alert
    assert waiting.mud is not None and waiting.mud.mud.systeminfo == "good"
    assert world.gets("/bulb.json") == fetched
    # Once re-signed, the next attempt after the backoff picks it up and clears the failure.
    world.publish("bulb.json", info="v2")
    assert kept.retry_at is not None
    new = manager.resolve(MudRequest(url), kept.retry_at + 1)
    assert new.outcome is Outcome.FRESH and new.mud is not None and new.mud.mud.systeminfo == "v2"


def test_first_contact_failure_then_backoff_then_force(world: World, tmp_path: Path) -> None:
    manager = _manager(world, tmp_path)
    url = world.lab.url("/down.json")
    failed = manager.resolve(MudRequest(url), NOW)
    assert (failed.outcome, failed.reason, failed.mud) == (Outcome.FIRST_CONTACT_FAILED, "fetch:bad-status", None)
    assert failed.alert
    fetched = world.gets("/down.json")
    waiting = manager.resolve(MudRequest(url), NOW + 1)
    assert (waiting.outcome, waiting.mud) == (Outcome.BACKOFF, None)
    assert world.gets("/down.json") == fetched
    forced = manager.resolve(MudRequest(url, force=True), NOW + 2)
    assert forced.outcome is Outcome.FIRST_CONTACT_FAILED
    assert world.gets("/down.json") == fetched + 1


@pytest.mark.parametrize(
    ("policy", "outcome", "reason"),
    [
        (SignaturePolicy.REQUIRED, Outcome.FIRST_CONTACT_FAILED, "signature:missing"),
        (SignaturePolicy.IF_PRESENT, Outcome.FRESH, ""),
        (SignaturePolicy.OFF, Outcome.FRESH, ""),
    ],
)
def test_signature_policy_for_unsigned_files(
    world: World, tmp_path: Path, policy: SignaturePolicy, outcome: Outcome, reason: str
) -> None:
    world.publish("unsigned.json", signature=None)
    result = _manager(world, tmp_path, policy).resolve(MudRequest(world.lab.url("/unsigned.json")), NOW)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.signer is None


def test_signed_file_is_checked_even_if_present_policy(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json")
    other_ca = sigvectors.ca_pem(sigvectors.make_ca("Someone Else's CA"))
    result = _manager(world, tmp_path, SignaturePolicy.IF_PRESENT, anchors=other_ca).resolve(
        MudRequest(world.lab.url("/bulb.json")), NOW
    )
    assert result.outcome is Outcome.FIRST_CONTACT_FAILED
    assert result.reason.startswith("signature:")


def test_expired_signature_is_refused(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json")
    result = _manager(world, tmp_path).resolve(MudRequest(world.lab.url("/bulb.json")), NOW + 2 * 365 * 24 * HOUR)
    assert result.outcome is Outcome.FIRST_CONTACT_FAILED
    assert result.reason == "signature:expired"


def test_signature_on_another_host_is_refused(world: World, tmp_path: Path) -> None:
    world.publish("crosssig.json", signature=world.lab.url("/crosssig.p7s", host="other.test"))
    result = _manager(world, tmp_path).resolve(MudRequest(world.lab.url("/crosssig.json")), NOW)
    assert result.reason == "signature-fetch:cross-host"
    assert world.gets("/crosssig.p7s") == 0


def test_file_naming_another_url_is_refused(world: World, tmp_path: Path) -> None:
    world.publish("mismatch.json", url=world.lab.url("/bulb.json"))
    result = _manager(world, tmp_path).resolve(MudRequest(world.lab.url("/mismatch.json")), NOW)
    assert (result.outcome, result.reason) == (Outcome.FIRST_CONTACT_FAILED, "mud:mud-url-mismatch")


def test_html_served_as_mud_is_refused_by_the_validator(world: World, tmp_path: Path) -> None:
    world.write("html.json", b"<html><body>Welcome</body></html>")
    result = _manager(world, tmp_path).resolve(MudRequest(world.lab.url("/html.json")), NOW)
    assert result.outcome is Outcome.FIRST_CONTACT_FAILED
    assert result.reason.startswith("mud:")


def test_bad_url_is_refused_without_io(world: World, tmp_path: Path) -> None:
    before = len(world.lab.requests_log())
    result = _manager(world, tmp_path).resolve(MudRequest("http://mud.test/bulb.json"), NOW)
    assert (result.outcome, result.reason) == (Outcome.FIRST_CONTACT_FAILED, "url:not-https")
    assert len(world.lab.requests_log()) == before


def test_many_devices_one_url_fetch_once(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="shared")
    url = world.lab.url("/bulb.json")
    manager = _manager(world, tmp_path)
    before = world.gets("/bulb.json")
    results = []
    lock = threading.Lock()

    def device() -> None:
        r = manager.resolve(MudRequest(url), NOW)
        with lock:
            results.append(r.outcome)

    threads = [threading.Thread(target=device) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o.value for o in results) == sorted(["fresh"] + ["cached"] * 7)
    assert world.gets("/bulb.json") == before + 1


def test_relative_mud_signature_resolves_against_the_mud_url(world: World, tmp_path: Path) -> None:
    url = world.lab.url("/bulb.json")
    body = mud_file(url, "bulb.p7s", systeminfo="relative signature")  # the draft's SHOULD: a relative reference
    world.write("bulb.json", body)
    world.write("bulb.p7s", world.pki.sign(body))
    result = _manager(world, tmp_path).resolve(MudRequest(url), NOW)
    assert result.outcome is Outcome.FRESH, result.reason
    assert result.signer is not None


DAY = 24 * HOUR
SIGNER_ENDS = (sigvectors.T0 + sigvectors.ONE_YEAR).timestamp()  # the test signer's notAfter


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "state" / "mud-cache.sqlite3")


def test_unsigned_entry_left_by_an_if_present_run_is_not_served_under_required(world: World, tmp_path: Path) -> None:
    world.publish("unsigned.json", signature=None)
    url = world.lab.url("/unsigned.json")
    assert _manager(world, tmp_path, SignaturePolicy.IF_PRESENT).resolve(MudRequest(url), NOW).outcome is Outcome.FRESH
    strict = _manager(world, tmp_path)  # restarted with signatures required
    again = strict.resolve(MudRequest(url), NOW + HOUR)  # the entry is still fresh: without the check, CACHED
    assert (again.outcome, again.reason, again.mud) == (Outcome.FIRST_CONTACT_FAILED, "signature:missing", None)
    cache = MudCache.open(tmp_path / "state" / "mud-cache.sqlite3")
    assert [(u, r) for u, _, r, _ in cache.set_aside_entries()] == [(url, "signature:missing")]
    assert cache.get(url) is None


@pytest.mark.parametrize("policy", [SignaturePolicy.REQUIRED, SignaturePolicy.IF_PRESENT])
def test_row_edited_to_drop_its_signature_is_set_aside_and_refetched(
    world: World, tmp_path: Path, policy: SignaturePolicy
) -> None:
    world.publish("bulb.json", info="signed")
    url = world.lab.url("/bulb.json")
    _manager(world, tmp_path, policy).resolve(MudRequest(url), NOW)
    with _db(tmp_path) as db:
        assert db.execute("UPDATE mud_entry SET signature = NULL, signer = NULL").rowcount == 1
    fetched = world.gets("/bulb.json")
    again = _manager(world, tmp_path, policy).resolve(MudRequest(url), NOW + HOUR)
    assert again.outcome is Outcome.FRESH and again.signer is not None  # the file names a signature: re-checked
    assert world.gets("/bulb.json") == fetched + 1
    reasons = [r for _, _, r, _ in MudCache.open(tmp_path / "state" / "mud-cache.sqlite3").set_aside_entries()]
    assert reasons == ["signature:missing"]


def test_the_signer_served_is_the_one_verification_found_not_the_stored_column(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="who")
    url = world.lab.url("/bulb.json")
    genuine = _manager(world, tmp_path).resolve(MudRequest(url), NOW).signer
    forged = json.dumps({"ca_key_id": "00", "ca_spki_sha256": "0" * 64, "subject_chain": ["CN=someone else"]})
    with _db(tmp_path) as db:
        assert db.execute("UPDATE mud_entry SET signer = ?", (forged,)).rowcount == 1
    cached = _manager(world, tmp_path).resolve(MudRequest(url), NOW + HOUR)
    assert cached.outcome is Outcome.CACHED and cached.signer == genuine


def test_a_signer_that_expires_ages_the_cached_file_until_it_is_signed_again(world: World, tmp_path: Path) -> None:
    url = world.lab.url("/bulb.json")
    ca = sigvectors.make_ca("Long-lived CA", not_after=sigvectors.T0 + 5 * sigvectors.ONE_YEAR)
    body = mud_file(url, world.lab.url("/bulb.p7s"), systeminfo="ageing")
    world.write("bulb.json", body)
    world.write("bulb.p7s", sigvectors.sign_detached(body, sigvectors.make_signer(ca)))  # ends a year after T0
    anchors = sigvectors.ca_pem(ca)
    manager = _manager(world, tmp_path, anchors=anchors)
    before = SIGNER_ENDS - HOUR
    assert manager.resolve(MudRequest(url), before).outcome is Outcome.FRESH
    # Two hours later the entry is still fresh (48 h), but its signer is not: no CACHED, a refresh is tried; the
    # server still serves the same file and signature, so the last verified file is kept, with the aged reason.
    aged = manager.resolve(MudRequest(url), before + 2 * HOUR)
    assert (aged.outcome, aged.reason) == (Outcome.KEPT_LAST, "signature:expired") and aged.alert
    assert aged.mud is not None and aged.mud.mud.systeminfo == "ageing"
    assert aged.retry_at is not None
    waiting = manager.resolve(MudRequest(url), before + 2 * HOUR + 1)  # backoff: same reason, no new alert
    assert (waiting.outcome, waiting.reason, waiting.alert) == (Outcome.BACKOFF, "signature:expired", False)
    # another try (another process), the same signature
    down = _manager(world, tmp_path, anchors=anchors).resolve(MudRequest(url), aged.retry_at + 1)
    assert (down.outcome, down.reason) == (Outcome.KEPT_LAST, "signature:expired")
    # The manufacturer signs the same bytes again with a renewed certificate: the next attempt renews the entry.
    renewed = sigvectors.make_signer(ca, not_before=_utc(before), not_after=_utc(before + 2 * 365 * DAY))
    world.write("bulb.p7s", sigvectors.sign_detached(body, renewed))
    assert down.retry_at is not None
    back = manager.resolve(MudRequest(url), down.retry_at + 1)
    assert (back.outcome, back.reason) == (Outcome.RENEWED, "")
    assert back.signer is not None and back.mud is not None and back.mud.mud.systeminfo == "ageing"
    assert manager.resolve(MudRequest(url), down.retry_at + 2).outcome is Outcome.CACHED


def test_a_cached_file_whose_signature_never_verified_is_set_aside(world: World, tmp_path: Path) -> None:
    world.publish("bulb.json", info="anchor")
    url = world.lab.url("/bulb.json")
    _manager(world, tmp_path).resolve(MudRequest(url), NOW)
    other = sigvectors.ca_pem(sigvectors.make_ca("Replacement CA"))  # the operator replaced the anchor
    result = _manager(world, tmp_path, anchors=other).resolve(MudRequest(url), NOW + HOUR)
    assert result.outcome is Outcome.FIRST_CONTACT_FAILED and result.reason == "signature:untrusted-chain"
    reasons = [r for _, _, r, _ in MudCache.open(tmp_path / "state" / "mud-cache.sqlite3").set_aside_entries()]
    assert reasons == ["signature:untrusted-chain"]


@pytest.mark.parametrize("require_match", [True, False])
@pytest.mark.parametrize("suffix", ["?x", "#frag"])
def test_a_file_whose_mud_url_fails_the_gate_is_invalid(
    world: World, tmp_path: Path, require_match: bool, suffix: str
) -> None:
    url = world.lab.url("/mismatch.json")
    body = mud_file(url + suffix, world.lab.url("/bulb.p7s"))
    world.write("mismatch.json", body)
    world.write("bulb.p7s", world.pki.sign(body))
    result = _manager(world, tmp_path, require_match=require_match).resolve(MudRequest(url), NOW)
    assert (result.outcome, result.reason, result.mud) == (Outcome.FIRST_CONTACT_FAILED, "mud:bad-mud-url", None)


def test_an_aged_entry_that_no_longer_validates_answers_instead_of_raising(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = world.lab.url("/bulb.json")
    ca = sigvectors.make_ca("Long-lived CA", not_after=sigvectors.T0 + 5 * sigvectors.ONE_YEAR)
    body = mud_file(url, world.lab.url("/bulb.p7s"), systeminfo="stricter")
    world.write("bulb.json", body)
    world.write("bulb.p7s", sigvectors.sign_detached(body, sigvectors.make_signer(ca)))
    anchors = sigvectors.ca_pem(ca)
    before = SIGNER_ENDS - HOUR
    assert _manager(world, tmp_path, anchors=anchors).resolve(MudRequest(url), before).outcome is Outcome.FRESH
    real = mudfile.parse

    def stricter(data: bytes) -> ParsedMud:  # an upgrade whose validator refuses the cached file
        if b"stricter" in data:
            raise MudFileError("match-protocol-mismatch", "/x", "refused now")
        return real(data)

    monkeypatch.setattr(mudfile, "parse", stricter)
    result = _manager(world, tmp_path, anchors=anchors).resolve(MudRequest(url), before + 2 * HOUR)
    assert (result.outcome, result.reason, result.mud) == (
        Outcome.FIRST_CONTACT_FAILED, "mud:match-protocol-mismatch", None)  # fmt: skip
