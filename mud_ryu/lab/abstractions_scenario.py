"""RFC 8520's abstractions live in the lab with the NIST corpus files (sandbox job of the e2e tests and ``make demo``).

Nine devices announce the MUD URLs of the NIST test files (`tests/fixtures/corpus/usnistgov+nist-mud/`, served
byte for byte from their own authorities by the lab's HTTPS server, which answers for every ``*.nist.local`` name
with one certificate) over DHCPv4, DHCPv6 and LLDP, and ``ryu-manager mud_ryu.app`` enforces them:

* ``same-manufacturer``: bulb and bulb2 are two models of one manufacturer (``same-manufacturer-test.nist.local``;
  bulb2's file is the corpus file under a second model URL, the only change), cam is another manufacturer whose
  file says the same thing. bulb2 joins after bulb is enforced, and bulb's flows are not touched by it.
* ``manufacturer`` / ``model``: hub (mfg-test) and sensor6 (model-test) reach the toothbrush (a lab file: its
  to-device policy admits exactly those two) on UDP 8008; nobody else does, and hub's TCP 8010 is for a hairbrush.
* ``local-networks``: configured as 10.0.0.16/28 (the devices' and laptop's addresses): laptop may open broken's
  TCP 80 (local-networks-test), the internet host (10.0.0.10, same subnet, outside the setting) may not.
* ``controller``: ``https://controller.nist.local`` configured as 10.0.0.11: speaker (controllerclass-test) reaches
  it on TCP 80 and not the internet host's own address.
* ``my-controller``: doorlock (mycontrollerclass-test) reaches 10.0.0.12 on UDP 8002 only while an operator entry
  set over the REST API names it; deleting the entry closes it again.

Every destination has a listener for the probed port (so ``blocked`` means the switch dropped it, never that
nothing listened), and every verdict is observed with real packets.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mud_ryu.compiler.pipeline import CookieKind, parse_cookie
from mud_ryu.lab import labctl, labhosts, labpki, netns
from mud_ryu.lab.homelab import HomeLab, poll
from mud_ryu.lab.scenarios import OFP_PORT, _confirmed, _ready_for_devices, _wait

REPO = Path(__file__).resolve().parent.parent.parent
CORPUS = REPO / "tests" / "fixtures" / "corpus" / "usnistgov+nist-mud"
API_PORT = 8080
ALLOWED, BLOCKED = "allowed", "blocked"
LOCAL_NETWORKS = "10.0.0.16/28"  # the devices and the laptop; not the servers, not the internet host
CONTROLLER_URI = "https://controller.nist.local"
CONTROLLER_IP = "10.0.0.11"  # extra addresses of the internet host
MY_CONTROLLER_IP = "10.0.0.12"

SAME_MFG = "https://same-manufacturer-test.nist.local/super1"
SAME_MFG_2 = "https://same-manufacturer-test.nist.local/super2"
OTHER_MFG = "https://same-mfg-scale-test.nist.local/super1"
MFG = "https://mfgtest.nist.local/super1"
MODEL = "https://model-test.nist.local/super1"
TOOTHBRUSH = "https://toothbrush.nist.local/super1"
LOCAL = "https://local-networks-test.nist.local/super1"
CONTROLLER = "https://controller-class-test.nist.local/super1"
MY_CONTROLLER = "https://mycontrollerclass-test.nist.local/super1"


@dataclass(frozen=True, slots=True)
class Role:
    device: str
    url: str
    source: str  # the corpus file served for the URL, or what the lab wrote
    abstraction: str


ROLES: tuple[Role, ...] = (
    Role("bulb", SAME_MFG, "test__unittest__mud-same-manufacturer-test__mudfile-same-manufacturer-test.json",
         "same-manufacturer"),
    Role("bulb2", SAME_MFG_2, "lab: the same file under a second model URL", "same-manufacturer"),
    Role("cam", OTHER_MFG, "test__unittest__mud-same-mfg-scale-test__mudfile-same-mfg-scale-test.json",
         "same-manufacturer (another manufacturer)"),
    Role("hub", MFG, "test__unittest__mud-mfg-test__mudfile-mfg-test.json", "manufacturer"),
    Role("sensor6", MODEL, "test__unittest__mud-model-test__mudfile-model-test.json", "model"),
    Role("toothbrush", TOOTHBRUSH, "lab: admits manufacturer mfgtest and model model-test", "manufacturer/model"),
    Role("broken", LOCAL, "test__unittest__mud-local-networks-test__mudfile-local-networks-test.json",
         "local-networks"),
    Role("speaker", CONTROLLER, "test__unittest__mud-controllerclass-test__mudfile-controllerclass-test.json",
         "controller"),
    Role("doorlock", MY_CONTROLLER,
         "test__unittest__mud-mycontrollerclass-test__mudfile-mycontrollerclass-test.json", "my-controller"),
)  # fmt: skip
AUTHORITIES = tuple(sorted({urlsplit(r.url).hostname or "" for r in ROLES}))


@dataclass(frozen=True, slots=True)
class Probe:
    src: str  # a lab host name
    dst: str  # a lab host name, or one of the internet host's extra addresses
    proto: str
    port: int
    expected: str
    reason: str

    @property
    def dst_ip(self) -> str:
        return self.dst if self.dst[0].isdigit() else labhosts.host(self.dst).ip


PROBES: tuple[Probe, ...] = (
    Probe("bulb", "bulb2", "tcp", 8080, ALLOWED, "same-manufacturer: same authority, another model"),
    Probe("bulb2", "bulb", "tcp", 8080, ALLOWED, "same-manufacturer, the other way"),
    Probe("cam", "bulb", "tcp", 8080, BLOCKED, "same-manufacturer: cam's manufacturer is another authority"),
    Probe("bulb", "cam", "tcp", 8080, BLOCKED, "same-manufacturer: cam is not bulb's manufacturer"),
    Probe("bulb", "internet", "tcp", 443, BLOCKED, "same-manufacturer-test allows nothing else"),
    Probe("hub", "toothbrush", "udp", 8008, ALLOWED, "manufacturer toothbrush.nist.local (mfg-test); the "
          "toothbrush admits manufacturer mfgtest.nist.local"),
    Probe("hub", "bulb", "udp", 8008, BLOCKED, "manufacturer: bulb is not made by toothbrush.nist.local"),
    Probe("hub", "toothbrush", "tcp", 8010, BLOCKED, "manufacturer: tcp/8010 is for hairbrush.nist.local only"),
    Probe("sensor6", "toothbrush", "udp", 8008, ALLOWED, "model https://toothbrush.nist.local/super1 (model-test)"),
    Probe("sensor6", "bulb", "udp", 8008, BLOCKED, "model: bulb is not that model"),
    Probe("laptop", "toothbrush", "udp", 8008, BLOCKED, "the toothbrush admits only that manufacturer and model"),
    Probe("laptop", "broken", "tcp", 80, ALLOWED, f"local-networks ({LOCAL_NETWORKS}) may open the device's tcp/80"),
    Probe("internet", "broken", "tcp", 80, BLOCKED, "local-networks: 10.0.0.10 is outside the configured prefix"),
    Probe("broken", "laptop", "tcp", 80, BLOCKED, "local-networks: the device may not open local tcp/80"),
    Probe("speaker", CONTROLLER_IP, "tcp", 80, ALLOWED, f"controller {CONTROLLER_URI} = {CONTROLLER_IP} (configured)"),
    Probe("speaker", "internet", "tcp", 80, BLOCKED, "controller: the internet host's own address is not it"),
)  # fmt: skip

# my-controller over the REST API: (phase, destination, expected)
MY_CONTROLLER_PROBES: tuple[tuple[str, str, str], ...] = (
    ("no entry", MY_CONTROLLER_IP, BLOCKED),
    ("operator entry: 10.0.0.12", MY_CONTROLLER_IP, ALLOWED),
    ("operator entry: 10.0.0.12", CONTROLLER_IP, BLOCKED),
    ("entry deleted", MY_CONTROLLER_IP, BLOCKED),
)
# Listeners, so that "blocked" can only mean the switch dropped it: host -> (tcp, udp) (address, port) pairs. UDP on
# the multi-homed internet host binds each address: a socket on 0.0.0.0 would answer from the primary address.
LISTENERS: dict[str, tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]] = {
    "internet": ((("0.0.0.0", 80),), tuple((a, 8002) for a in ("10.0.0.10", CONTROLLER_IP, MY_CONTROLLER_IP))),
    "toothbrush": ((("0.0.0.0", 8010),), (("0.0.0.0", 8008),)),
    "bulb": ((), (("0.0.0.0", 8008),)),
    "broken": ((("0.0.0.0", 80),), ()),
    "laptop": ((("0.0.0.0", 80),), ()),
}


def toothbrush_file() -> bytes:
    """The toothbrush's file: UDP 8008 with devices of manufacturer mfgtest.nist.local or model model-test only."""

    def ace(name: str, peer: dict[str, str], udp: dict[str, object]) -> dict[str, object]:
        return {"name": name, "matches": {"ietf-mud:mud": peer, "ipv4": {"protocol": 17}, "udp": udp},
                "actions": {"forwarding": "accept"}}  # fmt: skip

    port = {"operator": "eq", "port": 8008}
    peers = ({"manufacturer": "mfgtest.nist.local"}, {"model": MODEL})
    tree = {
        "ietf-mud:mud": {
            "mud-version": 1, "mud-url": TOOTHBRUSH, "last-update": "2026-11-01T00:00:00+00:00",
            "cache-validity": 48, "is-supported": True, "systeminfo": "mud_ryu lab toothbrush",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "tb-fr"}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": "tb-to"}]}},
        },
        "ietf-access-control-list:acls": {"acl": [
            {"name": "tb-fr", "type": "ipv4-acl-type", "aces": {"ace": [
                ace(f"peer{i}-fr", p, {"source-port": port}) for i, p in enumerate(peers)]}},
            {"name": "tb-to", "type": "ipv4-acl-type", "aces": {"ace": [
                ace(f"peer{i}-to", p, {"destination-port": port}) for i, p in enumerate(peers)]}},
        ]},
    }  # fmt: skip
    return json.dumps(tree, indent=2).encode()


def second_model_file() -> bytes:
    """The corpus same-manufacturer file under a second model URL of the same authority (nothing else changed)."""
    tree = json.loads((CORPUS / ROLES[0].source).read_bytes())
    tree["ietf-mud:mud"]["mud-url"] = SAME_MFG_2
    return json.dumps(tree, indent=2).encode()


def write_files(mud_dir: Path) -> None:
    """Each URL's file at ``<mud_dir>/<authority>/<last segment>`` (the lab server's virtual hosts)."""
    for role in ROLES:
        if role.url == TOOTHBRUSH:
            body = toothbrush_file()
        elif role.url == SAME_MFG_2:
            body = second_model_file()
        else:
            body = (CORPUS / role.source).read_bytes()
        parts = urlsplit(role.url)
        target = mud_dir / (parts.hostname or "") / parts.path.rsplit("/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


def settings_for(workdir: Path, pki: labpki.LabPki, token_file: Path) -> dict[str, str | bool | list[str]]:
    settings = labctl.lab_settings(trust_anchor=pki.signing_ca, tls_ca=pki.tls_ca, state_dir=workdir / "state")
    mudsrv = labhosts.host("mudsrv").ip
    settings["static_hosts"] = [f"{labhosts.MUD_HOST}={mudsrv}", *(f"{a}={mudsrv}" for a in AUTHORITIES)]
    settings["signature_policy"] = "if-present"  # the NIST test files are unsigned
    settings["local_networks"] = [LOCAL_NETWORKS]
    settings["controllers"] = [f"{CONTROLLER_URI}={CONTROLLER_IP}"]
    settings["api_token_file"] = str(token_file)
    return settings


def _monitor() -> subprocess.Popen[bytes]:
    """``ovs-ofctl monitor`` on s1: every flow change from now on (not the initial table)."""
    return subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "monitor", "s1", "watch:!initial"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _touched_profile(events: list[str], profile_id: int) -> list[str]:
    """Monitor events on flows of ``profile_id`` (its PROFILE and ADDRESS_SET cookies)."""
    kinds = {int(CookieKind.PROFILE), int(CookieKind.ADDRESS_SET)}
    out = []
    for line in events:
        if "event=" not in line or "cookie=" not in line:
            continue
        value = int(line.split("cookie=", 1)[1].split()[0].rstrip(","), 16)
        parts = parse_cookie(value)
        if parts.owner == profile_id and parts.kind in kinds:
            out.append(line)
    return out


def _flow_to(lab: HomeLab, address: str, port: int) -> bool:
    """s1 holds a flow to exactly ``address`` and destination ``port`` (ovs-ofctl prints tp_dst or udp_dst)."""
    wanted = re.compile(rf"\bnw_dst={re.escape(address)}[, ].*\b(tp|udp)_dst={port}\b")
    return any(wanted.search(ln) for ln in lab.dump_flows("s1"))


def abstractions(payload: Any) -> dict[str, Any]:
    del payload
    workdir = Path("/tmp/mud-abstractions")
    workdir.mkdir(parents=True, exist_ok=True)
    pki = labpki.create(workdir / "pki", labhosts.MUD_HOST, datetime.now(UTC), AUTHORITIES)
    token = secrets.token_hex(16)
    token_file = workdir / "api.token"
    token_file.write_text(token + "\n")
    out: dict[str, Any] = {"roles": [dataclasses.asdict(r) for r in ROLES], "probes": [], "my_controller": []}
    ctl = labctl.start_controller(workdir / "ctl", settings_for(workdir, pki, token_file), ofp_port=OFP_PORT,
                                  wsapi_port=API_PORT)  # fmt: skip
    try:
        with (
            HomeLab.start(workdir, controller_port=OFP_PORT, pki=pki, topo="abstractions") as lab,
            ExitStack() as stack,
        ):
            write_files(lab.mud_dir)
            inet = lab.host("internet")
            for address in (CONTROLLER_IP, MY_CONTROLLER_IP):
                inet.cmd(f"ip addr add {address}/24 dev internet-eth0")
            for name, (tcp, udp) in LISTENERS.items():
                ns = netns.Netns(name, lab.host(name).pid)
                stack.enter_context(netns.serving(ns, list(tcp), list(udp), lifetime=600))
            _ready_for_devices(lab, ctl, ("s1",))
            api = _Api(token)
            _enforce_all(lab, ctl, api, out)
            _probe(lab, out)
            _my_controller(lab, api, out)
            out["devices"] = api.get("/devices").get("devices", [])
    finally:
        ctl.stop()
    return out


class _Api:
    def __init__(self, token: str) -> None:
        self.token = token

    def get(self, path: str) -> dict[str, Any]:
        return labctl.rest(API_PORT, path, self.token)

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
        return labctl.rest(API_PORT, path, self.token, method, body)


def _enforce_all(lab: HomeLab, ctl: labctl.ControllerProcess, api: _Api, out: dict[str, Any]) -> None:
    """bulb first; then, while ovs-ofctl monitor watches, bulb2 (same manufacturer) joins; then everyone else."""
    first = ROLES[0]
    lab.announce(first.device, first.url)
    _wait(lambda: _confirmed(ctl, labhosts.host(first.device).mac, "enforced"), "bulb enforced", ctl=ctl)
    bulb_view = api.get(f"/devices/{labhosts.host(first.device).mac}")
    monitor = _monitor()
    try:
        lab.announce("bulb2", SAME_MFG_2)
        bulb2 = labhosts.host("bulb2").mac
        _wait(lambda: _confirmed(ctl, bulb2, "enforced"), "bulb2 enforced", ctl=ctl)
    finally:
        monitor.terminate()
        events = monitor.communicate(timeout=10)[0].decode(errors="replace").splitlines()
    profile_id = int(bulb_view.get("profile_id") or 0)
    out["join"] = {"bulb_profile_id": profile_id, "events": len(events),
                   "bulb_profile_touched": _touched_profile(events, profile_id)}  # fmt: skip
    for role in ROLES[2:]:
        lab.announce(role.device, role.url)
    lab.announce("laptop")  # no MUD URL (default policy allow): the local peer of the local-networks probes
    for role in ROLES[2:]:
        mac = labhosts.host(role.device).mac
        _wait(lambda mac=mac: _confirmed(ctl, mac, "enforced"), f"{role.device} enforced", ctl=ctl)  # type: ignore[misc]
    for name in (*(r.device for r in ROLES), "laptop"):
        if labhosts.host(name).dhcp:
            lab.wait_lease(name)


def _probe(lab: HomeLab, out: dict[str, Any]) -> None:
    observed = lab.probe_many([(p.src, p.dst_ip, p.proto, p.port) for p in PROBES])
    for p, seen in zip(PROBES, observed, strict=True):
        out["probes"].append({"src": p.src, "dst": p.dst, "proto": p.proto, "port": p.port, "expected": p.expected,
                              "observed": seen, "reason": p.reason})  # fmt: skip


def _my_controller(lab: HomeLab, api: _Api, out: dict[str, Any]) -> None:
    def probe(phase: str) -> None:
        for when, dst, expected in MY_CONTROLLER_PROBES:
            if when == phase:
                seen = lab.probe_many([("doorlock", dst, "udp", 8002)])[0]
                out["my_controller"].append({"phase": phase, "dst": dst, "expected": expected, "observed": seen})

    probe("no entry")
    put = api.call("PUT", "/my-controller", {"url": MY_CONTROLLER, "addresses": [MY_CONTROLLER_IP]})
    out["put"] = put
    poll(lambda: _flow_to(lab, MY_CONTROLLER_IP, 8002), "my-controller flows on s1", 15.0, 0.05)
    out["listed"] = api.get("/my-controller")
    probe("operator entry: 10.0.0.12")
    deleted = api.call("DELETE", f"/my-controller?url={quote(MY_CONTROLLER, safe='')}")
    out["delete"] = deleted
    poll(lambda: not _flow_to(lab, MY_CONTROLLER_IP, 8002), "my-controller flows gone from s1", 15.0, 0.05)
    probe("entry deleted")
    out["unauthorised_status"] = labctl.rest(API_PORT, "/my-controller", "wrong-token", "PUT",
                                             {"url": MY_CONTROLLER, "addresses": ["0.0.0.0/0"]})["_status"]  # fmt: skip
