"""The MUD URL update policy end to end in the home lab (sandbox job shared by ``make demo`` and the e2e tests).

bulb announces its first URL (trust on first use, signer pinned), then a firmware update to a URL differing in the
last segment under the same signer (applied, traffic changes), then a rollback to the first URL (refused:
quarantined), survives a controller kill -9 + restart still quarantined, is approved by an operator over the REST
API (applied), and finally announces a URL signed by another CA the controller also trusts (refused: signer
changed). bulb2 announces a URL on another host after its first use (refused before any fetch). Every step is
checked with real traffic and over the REST API.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mud_ryu.lab import labctl, labhosts, labmud, labpki
from mud_ryu.lab.homelab import HomeLab
from mud_ryu.lab.scenarios import OFP_PORT, _confirmed, _log, _ready_for_devices, _wait

API_PORT = 8080
V1 = labhosts.mud_url("bulb")
V2 = labhosts.mud_url("bulb-v2")  # same host and path prefix: a small change
OTHER_CA = labhosts.mud_url("bulb-x")  # same prefix, but signed under another (also trusted) CA
OTHER_HOST = "https://other.lab/bulb.json"
INTERNET = labmud.INTERNET


def _api(path: str, token: str, method: str = "GET", body: dict[str, object] | None = None) -> dict[str, Any]:
    return labctl.rest(API_PORT, path, token, method, body)


def _extra_files(mud_dir: Path, pki: labpki.LabPki, other_signer: labpki.Issued, now: datetime) -> None:
    files = {
        "bulb-v2": ((labmud.Service("tcp", 443), labmud.Service("tcp", 8883)), pki.signer),
        "bulb-x": ((labmud.Service("tcp", 22),), other_signer),
    }
    for profile, (services, signer) in files.items():
        labmud.write_signed(mud_dir, profile, labmud.mud_file(profile, services, now), signer)


def update_policy(payload: Any) -> dict[str, Any]:
    del payload
    workdir = Path("/tmp/mud-policy")
    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    pki = labpki.create(workdir / "pki", labhosts.MUD_HOST, now)
    other_ca = labpki.make_ca("Another vendor's MUD CA", now)
    other_signer = labpki.mud_signer(other_ca, "Another vendor's signer", now)
    anchors = workdir / "anchors.pem"
    anchors.write_bytes(pki.signing_ca.read_bytes() + other_ca.cert_pem)  # both CAs are trusted by the controller
    token = secrets.token_hex(16)
    (workdir / "api.token").write_text(token + "\n")
    settings = labctl.lab_settings(trust_anchor=anchors, tls_ca=pki.tls_ca, state_dir=workdir / "state")
    settings["api_token_file"] = str(workdir / "api.token")
    settings["min_url_change_interval"] = "0"  # lab: firmware updates follow each other within seconds
    steps: list[dict[str, Any]] = []
    bulb, bulb2 = labhosts.host("bulb"), labhosts.host("bulb2")
    ctl = labctl.start_controller(workdir / "ctl", settings, ofp_port=OFP_PORT, wsapi_port=API_PORT)
    try:
        with HomeLab.start(workdir, controller_port=OFP_PORT, pki=pki) as lab:
            _extra_files(lab.mud_dir, pki, other_signer, now)
            _ready_for_devices(lab, ctl, ("s1",))

            def step(name: str, expect: dict[int, str], state: str, alert: str | None = None) -> None:
                lab.wait_lease("bulb")  # a re-announcement restarts the client: its address comes back with the lease
                probes = [("bulb", INTERNET, "tcp", port) for port in expect]
                observed = dict(zip(expect, lab.probe_many(probes), strict=True))
                device = _api(f"/devices/{bulb.mac}", token)
                alerts = _api("/alerts?limit=50", token)["alerts"]
                mine = [a for a in alerts if alert is not None and a["code"] == alert and a["mac"] == bulb.mac]
                steps.append({
                    "step": name, "expected": expect, "observed": observed, "state": device.get("state"),
                    "expected_state": state, "url": device.get("url"),
                    "decision": (device.get("last_decision") or {}).get("reason"),
                    "alert": alert, "alert_seen": alert is None or bool(mine),
                    "alert_reason": mine[0]["message"].split(":", 1)[0] if mine else "",
                })  # fmt: skip

            def count(mac: str, state: str) -> int:
                marks = (f"confirmed mac={mac} ", f"state={state} ")
                return len([ln for ln in _log(ctl).splitlines() if all(m in ln for m in marks)])

            lab.announce("bulb")
            _wait(lambda: _confirmed(ctl, bulb.mac, "enforced"), "bulb v1 enforced", ctl=ctl)
            step("first use (TOFU): bulb.json", {443: "allowed", 8883: "blocked"}, "enforced")

            seen = count(bulb.mac, "enforced")
            lab.announce("bulb", V2)
            _wait(lambda: count(bulb.mac, "enforced") > seen, "bulb v2 enforced", ctl=ctl)
            step("firmware update, last segment only, same signer: bulb-v2.json", {443: "allowed", 8883: "allowed"},
                 "enforced")  # fmt: skip

            lab.announce("bulb", V1)
            _wait(lambda: f"ALERT update-violation mac={bulb.mac}" in _log(ctl), "rollback refused", ctl=ctl)
            step("rollback to bulb.json after v2", {443: "blocked", 8883: "blocked"}, "quarantined",
                 "update-violation")  # fmt: skip

            ctl.proc.kill()
            ctl.proc.wait(10)
            ctl = labctl.start_controller(workdir / "ctl2", settings, ofp_port=OFP_PORT, wsapi_port=API_PORT)
            _wait(lambda: "reconcile dpid=" in _log(ctl), "reconciliation after restart", ctl=ctl)
            step("controller kill -9 + restart: still quarantined", {443: "blocked"}, "quarantined")

            # bulb's pending change is the refused rollback (bulb.json); the operator approves bulb-v2.json instead,
            # their own choice, named by the digest of the file accepted for it before (the device's history).
            history = _api(f"/devices/{bulb.mac}", token)["history"]
            v2_sha256 = next(h["sha256"] for h in reversed(history) if h["url"] == V2)
            approved = _api(f"/devices/{bulb.mac}/approve", token, "POST",
                            {"url": V2, "sha256": v2_sha256, "chosen": True})  # fmt: skip
            _wait(lambda: count(bulb.mac, "enforced") > 0, "approved URL enforced", ctl=ctl)
            step(f"operator approves bulb-v2.json over REST ({approved.get('reason')})",
                 {443: "allowed", 8883: "allowed"}, "enforced")  # fmt: skip

            lab.announce("bulb", OTHER_CA)
            _wait(lambda: f"ALERT update-violation mac={bulb.mac}" in _log(ctl), "other CA refused", ctl=ctl)
            step("bulb-x.json: same prefix, signed under another CA", {443: "blocked", 22: "blocked"},
                 "quarantined", "update-violation")  # fmt: skip

            lab.announce("bulb2")
            _wait(lambda: _confirmed(ctl, bulb2.mac, "enforced"), "bulb2 enforced", ctl=ctl)
            quarantined = count(bulb2.mac, "quarantined")
            lab.announce("bulb2", OTHER_HOST)
            _wait(lambda: f"ALERT update-violation mac={bulb2.mac}" in _log(ctl), "other host refused", ctl=ctl)
            _wait(lambda: count(bulb2.mac, "quarantined") > quarantined, "bulb2 quarantine confirmed", ctl=ctl)
            lab.wait_lease("bulb2")
            other = lab.probe_many([("bulb2", INTERNET, "tcp", 443)])[0]
            device2 = _api(f"/devices/{bulb2.mac}", token)
            reasons2 = [a["message"].split(":", 1)[0] for a in _api("/alerts?limit=50", token)["alerts"]
                        if a["code"] == "update-violation" and a["mac"] == bulb2.mac]  # fmt: skip
            steps.append({"step": "bulb2: URL on another host", "expected": {443: "blocked"}, "observed": {443: other},
                          "state": device2.get("state"), "expected_state": "quarantined", "url": device2.get("url"),
                          "decision": (device2.get("last_decision") or {}).get("reason"), "alert": "update-violation",
                          "alert_seen": bool(reasons2), "alert_reason": reasons2[0] if reasons2 else ""})  # fmt: skip
            unauthorised = _api(f"/devices/{bulb2.mac}/revoke", "wrong-token", "POST")
    finally:
        ctl.stop()
    return {"steps": steps, "unauthorised_status": unauthorised["_status"], "unauthorised": unauthorised.get("error")}
