"""DNS names live, end to end in the home lab (sandbox job for the e2e tests and ``make demo``), THREATS.md R15.

bulb's MUD file allows TCP 443 to ``api.vendor.example`` only. The lab DNS server (on mudsrv, the configured
resolver) rotates that name's A record between two addresses of the internet host every few seconds with a short
TTL (the controller's TTL floor is lowered to match, a lab setting). bulb looks the name up before every
connection, every 100 ms: every answer must be usable at once (the controller holds each answer until the flows
for its address are in), the internet host's own address stays unreachable, and an address the resolver no
longer gives stops working once its TTL has run out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mud_ryu.lab import labctl, labhosts, labmud, labpki
from mud_ryu.lab.homelab import HomeLab, poll
from mud_ryu.lab.scenarios import OFP_PORT, _confirmed, _log, _ready_for_devices, _wait

NAME = "api.vendor.example"
ROTATING = ("10.0.0.11", "10.0.0.12")  # extra addresses of the internet host
ROTATE_S = 3.0
TTL = 3
URL = labhosts.mud_url("cloudy")


def cloudy_file(now: datetime) -> bytes:
    """TCP 443 to api.vendor.example, device-initiated, and nothing else (beyond the RFC 8520 DNS/NTP defaults)."""

    def ace(name: str, ip: dict[str, object], tcp: dict[str, object]) -> dict[str, object]:
        return {"name": name, "matches": {"ipv4": ip, "tcp": tcp}, "actions": {"forwarding": "accept"}}

    initiated = {"ietf-mud:direction-initiated": "from-device"}
    tree = {
        "ietf-mud:mud": {
            "mud-version": 1, "mud-url": URL, "mud-signature": "cloudy.p7s",
            "last-update": now.replace(microsecond=0).isoformat(), "cache-validity": 48, "is-supported": True,
            "systeminfo": "mud_ryu lab cloud-connected bulb",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "cloudy-fr"}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": "cloudy-to"}]}},
        },
        "ietf-access-control-list:acls": {"acl": [
            {"name": "cloudy-fr", "type": "ipv4-acl-type", "aces": {"ace": [ace(
                "api-out", {"protocol": 6, "ietf-acldns:dst-dnsname": NAME},
                {"destination-port": {"operator": "eq", "port": 443}, **initiated})]}},
            {"name": "cloudy-to", "type": "ipv4-acl-type", "aces": {"ace": [ace(
                "api-back", {"protocol": 6, "ietf-acldns:src-dnsname": NAME},
                {"source-port": {"operator": "eq", "port": 443}, **initiated})]}},
        ]},
    }  # fmt: skip
    return json.dumps(tree, indent=2).encode()


def dns_rotation(payload: Any) -> dict[str, Any]:
    del payload
    workdir = Path("/tmp/mud-dns")
    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    pki = labpki.create(workdir / "pki", labhosts.MUD_HOST, now)
    resolver = labhosts.host("mudsrv").ip
    settings = labctl.lab_settings(trust_anchor=pki.signing_ca, tls_ca=pki.tls_ca, state_dir=workdir / "state")
    settings["dns_servers"] = [resolver]
    settings["dns_ttl_floor"] = str(float(TTL))  # lab: the rotation is seconds, not minutes
    out: dict[str, Any] = {}
    bulb = labhosts.host("bulb")
    ctl = labctl.start_controller(workdir / "ctl", settings, ofp_port=OFP_PORT)
    try:
        with HomeLab.start(workdir, controller_port=OFP_PORT, pki=pki) as lab:
            labmud.write_signed(lab.mud_dir, "cloudy", cloudy_file(now), pki.signer)
            for address in ROTATING:
                lab.host("internet").cmd(f"ip addr add {address}/24 dev internet-eth0")
            ready, log = workdir / "dns.ready", workdir / "dns.log"
            argv = [sys.executable, "-m", "mud_ryu.lab.dnsserver", "--name", NAME, "--rotate-s", str(ROTATE_S),
                    "--ttl", str(TTL), "--log", str(log), "--ready", str(ready), "--lifetime-s", "120",
                    *[a for address in ROTATING for a in ("--address", address)]]  # fmt: skip
            server = lab.host("mudsrv").popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                poll(ready.exists, "lab DNS server", 10.0)
                _ready_for_devices(lab, ctl, ("s1",))
                lab.announce("bulb", URL)
                _wait(lambda: _confirmed(ctl, bulb.mac, "enforced"), "bulb (cloudy.json) enforced", ctl=ctl)
                lab.wait_lease("bulb")
                _wait(lambda: "profile DNS names through the configured resolvers" in _log(ctl),
                      "proactive resolution of the profile's names", ctl=ctl)  # fmt: skip
                # The controller resolved the name itself when the profile loaded (proactive resolution), so the
                # address the lab resolver gave it is open before the device looks anything up; the internet host's
                # own address never is.
                out["before_device_lookup"] = lab.probe_many(
                    [("bulb", a, "tcp", 443) for a in ROTATING] + [("bulb", labmud.INTERNET, "tcp", 443)]
                )
                probe = lab.host("bulb").popen(
                    [sys.executable, "-m", "mud_ryu.lab.dnsprobe", "--resolver", resolver, "--name", NAME,
                     "--count", "120", "--interval-s", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
                stdout, stderr = probe.communicate(timeout=120)
                rounds = json.loads(stdout or b"[]")
                out["rounds"] = len(rounds)
                out["failures"] = [r for r in rounds if not r["ok"]]
                out["addresses_seen"] = sorted({r["address"] for r in rounds if r["address"]})
                out["other_host_during"] = lab.probe_many([("bulb", labmud.INTERNET, "tcp", 443)])[0]
                # The address the resolver gave first in the final rotation period is the newest; the other one
                # must stop working once its TTL has run out (plus the controller's expiry tick).
                last = rounds[-1]["address"] if rounds else ROTATING[0]
                old = ROTATING[1] if last == ROTATING[0] else ROTATING[0]
                old_last_answer = max((r["t"] for r in rounds if r["address"] == old), default=time.time())
                blocked_at = None
                deadline = time.monotonic() + TTL + 15
                while time.monotonic() < deadline:
                    if lab.probe_many([("bulb", old, "tcp", 443)])[0] == "blocked":
                        blocked_at = time.time()
                        break
                out["old_address"] = old
                out["old_blocked_after_s"] = None if blocked_at is None else round(blocked_at - old_last_answer, 2)
                out["probe_stderr"] = stderr.decode(errors="replace")[-500:]
            finally:
                server.terminate()
                server.wait(10)
    finally:
        ctl.stop()
    return out
