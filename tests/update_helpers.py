"""Shared values for the update-policy and trust-store tests: gated URLs, signers, event builders."""

from __future__ import annotations

from mud_ryu.fetch.signature import Signer
from mud_ryu.fetch.urlgate import MudUrl, check_mud_url
from mud_ryu.policy.table import Outcome, step
from mud_ryu.policy.types import Announced, DeviceId, Event, PolicySettings, TrustRecord, Verified

ID = DeviceId(1, 3, "02:00:00:00:00:01")
ROOT = "https://mud.example.com/household/toaster/model1945.json"
V2 = "https://mud.example.com/household/toaster/revision2.json"
V3 = "https://mud.example.com/household/toaster/revision3.json"
OTHER_HOST = "https://other.example.com/household/toaster/model1945.json"
OTHER_DIR = "https://mud.example.com/household/fridge/model1945.json"
NEW_HOME = "https://mud.example.com/mudfiles/toasters/model1945/mud.json"
URLS = (ROOT, V2, V3, OTHER_HOST, OTHER_DIR, NEW_HOME)

S1 = Signer("aa11", ("CN=toaster.example,O=Maker", "CN=Maker CA"), "a1" * 32)
# same CA key + subject, a cross-certificate between
S1_CROSS = Signer("aa11", ("CN=toaster.example,O=Maker", "CN=Fluffy", "CN=Maker CA"), "a1" * 32)
S2 = Signer("bb22", ("CN=toaster.example,O=Maker", "CN=Rogue CA"), "b2" * 32)  # same subject, other CA
S3 = Signer("aa11", ("CN=fridge.example,O=Maker", "CN=Maker CA"), "a1" * 32)  # same CA, other subject
TOFU = PolicySettings()


def gated(raw: str) -> MudUrl:
    return check_mud_url(raw)


def ann(url: str, now: float) -> Announced:
    return Announced(gated(url), now)


def ver(url: str, sha: str, signer: Signer | None, now: float, file_url: str | None = None) -> Verified:
    return Verified(gated(url), sha, signer, gated(file_url or url), now)


def run(events: list[Event], settings: PolicySettings = TOFU, record: TrustRecord | None = None) -> list[Outcome]:
    rec = record or TrustRecord(ID)
    out: list[Outcome] = []
    for event in events:
        outcome = step(settings, rec, event)
        out.append(outcome)
        rec = outcome.record
    return out


def trusted(signer: Signer | None = S1, settings: PolicySettings = TOFU) -> TrustRecord:
    """A device enrolled by TOFU at ROOT (digest d1) at t=1."""
    return run([ann(ROOT, 0.0), ver(ROOT, "d1", signer, 1.0)], settings)[-1].record
