"""The home lab without mud_ryu: topology, real clients on the wire, DHCP, the HTTPS MUD server, probes.

Each lab runs in one sandbox per module-scoped fixture (fresh net/pid/mount namespaces); switches
hold a single ``actions=NORMAL`` flow, so every probe must get through. What the clients put on
the wire is read on the switch ports and run through ``mud_ryu.discovery.scan.scan_frame``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.lab import clients, labctl, labhosts, labmud, sandbox

REPO = str(Path(__file__).resolve().parent.parent)
ENV = {"PYTHONPATH": REPO}
WORK = Path("/tmp/homelab")

needs_sandbox = pytest.mark.skipif(
    sandbox.unavailable_reason() is not None, reason=f"the home lab needs a sandbox: {sandbox.unavailable_reason()}"
)


def _announcement(h: labhosts.LabHost) -> Callable[[bytes], bool]:
    from mud_ryu.discovery.scan import Announcement, NoUrl, scan_frame

    def match(frame: bytes) -> bool:
        result = scan_frame(frame)
        if h.mud_url is None:
            return isinstance(result, NoUrl) and result.src_mac == h.mac
        return isinstance(result, Announcement) and result.src_mac == h.mac

    return match


def _scan(frame: bytes | None) -> dict[str, Any]:
    from mud_ryu.discovery.scan import Announcement, NoUrl, scan_frame

    if frame is None:
        return {"kind": "none"}
    result = scan_frame(frame)
    if isinstance(result, Announcement | NoUrl):
        url = result.url if isinstance(result, Announcement) else None
        return {"kind": type(result).__name__, "protocol": result.protocol, "url": url, "mac": result.src_mac}
    return {"kind": type(result).__name__}


def _fetch(lab: Any, path: str) -> dict[str, Any]:
    """GET https://mud.lab/<path> from the sandbox's root namespace (through the switch)."""
    import ipaddress

    from mud_ryu.fetch.fetcher import Fetcher
    from mud_ryu.fetch.types import FetchError, FetchOptions

    options = FetchOptions(ca_bundle=str(lab.pki.tls_ca), allowed_networks=(ipaddress.ip_network(labhosts.SUBNET),))
    fetcher = Fetcher(options, resolver=lambda host, port: [labhosts.host("mudsrv").ip] if host == "mud.lab" else [])
    accept = "application/pkcs7-signature" if path.endswith(".p7s") else "application/mud+json"
    try:
        res = fetcher.fetch(f"https://{labhosts.MUD_HOST}/{path}", accept=accept)
        return {"ok": True, "body": res.body.hex(), "type": res.content_type, "peer": res.peer}
    except FetchError as exc:
        return {"ok": False, "reason": exc.reason, "detail": exc.detail}
    finally:
        fetcher.close()


def home_job(payload: Any) -> dict[str, Any]:
    """Runs inside the sandbox."""
    from mud_ryu.fetch import signature
    from mud_ryu.lab.homelab import HomeLab
    from mud_ryu.mudfile import reader as mudfile

    out: dict[str, Any] = {"wire": {}, "leases": {}, "timings": {}}
    with HomeLab.start(Path(payload or WORK)) as lab:
        out["timings"]["start_s"] = lab.timings["start_s"]
        out["flows"] = lab.dump_flows("s1")
        for h in labhosts.HOSTS:
            if h.client is labhosts.Client.NONE:
                continue
            t0 = time.monotonic()
            with lab.capture(h.name) as cap:
                lab.announce(h.name)
                frame = cap.wait_for(_announcement(h), timeout=15)
            out["wire"][h.name] = {**_scan(frame), "seconds": time.monotonic() - t0}
        for h in labhosts.HOSTS:
            if h.dhcp or h.client is labhosts.Client.DHCLIENT6:
                t0 = time.monotonic()
                out["leases"][h.name] = lab.wait_lease(h.name, timeout=20)
                out["timings"][f"lease_{h.name}_s"] = time.monotonic() - t0
        out["host_addr"] = {h.name: lab.host(h.name).cmd(f"ip -4 -o addr show dev {h.name}-eth0").split()[3:4]
                            for h in labhosts.HOSTS if h.dhcp}  # fmt: skip

        t0 = time.monotonic()
        fetched = {p: _fetch(lab, p) for p in ("bulb.json", "bulb.p7s", "cam.json", "missing.json")}
        out["timings"]["fetch_s"] = time.monotonic() - t0
        body, sig = bytes.fromhex(fetched["bulb.json"]["body"]), bytes.fromhex(fetched["bulb.p7s"]["body"])
        anchors = signature.load_trust_anchors(lab.pki.signing_ca.read_bytes())
        out["signer"] = str(signature.verify_detached(body, sig, anchors, datetime.now(UTC)))
        out["parsed_url"] = mudfile.parse(body).mud.mud_url
        out["fetched"] = {k: {kk: vv for kk, vv in v.items() if kk != "body"} for k, v in fetched.items()}
        lab.mud_server_down()
        out["fetch_down"] = _fetch(lab, "bulb.json")
        lab.mud_server_up()
        out["fetch_up"] = _fetch(lab, "bulb.json")["ok"]

        t0 = time.monotonic()
        probes = [(p.src, p.dst_ip, p.proto, p.port) for p in labmud.PROBES]
        out["control"] = lab.probe_many(probes)
        out["timings"]["probes_s"] = time.monotonic() - t0
        out["refused"] = lab.probe("bulb", lab.ip("internet"), "tcp", 9)
        lab.port_down("bulb")
        out["while_down"] = lab.probe("bulb", lab.ip("internet"), "tcp", 443)
        lab.port_up("bulb")
        # The link is back, but the neighbour entry may still say FAILED from the outage: poll, bounded.
        deadline = time.monotonic() + 15
        out["after_up"] = lab.probe("bulb", lab.ip("internet"), "tcp", 443)
        while out["after_up"] != "allowed" and time.monotonic() < deadline:
            out["after_up"] = lab.probe("bulb", lab.ip("internet"), "tcp", 443)

        lab.release("bulb")
        out["bulb_after_release"] = lab.lease("bulb")
        lab.release("cam")
        out["cam_after_release"] = lab.lease("cam")
    return out


def two_switch_job(payload: Any) -> dict[str, Any]:
    """Runs inside the sandbox: ryu-manager with Ryu's simple_switch_13 as the controller (not mud_ryu),
    the two-switch topology, a device moved from s2 to s1."""
    from mud_ryu.lab.homelab import HomeLab

    work = Path(payload or WORK)
    out: dict[str, Any] = {}
    settings = labctl.lab_settings(trust_anchor=work / "pki/mud-signing-ca.pem", tls_ca=work / "pki/tls-ca.pem",
                                   state_dir=work / "state", topo="two_switch")  # fmt: skip
    t0 = time.monotonic()
    ctl = labctl.start_controller(work / "ctl", settings, ofp_port=6653, app="ryu.app.simple_switch_13")
    out["controller_listen_s"] = time.monotonic() - t0
    with ctl, HomeLab.start(work, controller_port=6653, topo="two_switch") as lab:
        out["start_s"] = lab.timings["start_s"]
        out["table_miss"] = {sw: lab.wait_flows(sw, 1) for sw in ("s1", "s2")}
        out["connected_s"] = time.monotonic() - t0
        bulb2 = labhosts.host("bulb2")
        with lab.capture("bulb2") as cap:
            lab.announce("bulb2")
            out["wire_s2"] = _scan(cap.wait_for(_announcement(bulb2), timeout=15))
        out["lease_s2"] = lab.wait_lease("bulb2")
        out["probe_s2"] = lab.probe("bulb2", lab.ip("internet"), "tcp", 443)
        out["moved_to"] = lab.move("bulb2", "s1", 12, reannounce=False)
        # simple_switch_13's learned flows never time out: s1 still sends bulb2's MAC to the trunk. Forget it,
        # as a controller reacting to the move would (that reaction is mud_ryu's job, not the lab's).
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", "s1", f"dl_dst={bulb2.mac}"], check=True)
        with lab.capture("bulb2") as cap:
            lab.announce("bulb2")
            out["wire_s1"] = _scan(cap.wait_for(_announcement(bulb2), timeout=15))
            out["capture_if"] = cap.ifname
        out["lease_s1"] = lab.wait_lease("bulb2")
        out["probe_s1"] = lab.probe("bulb2", lab.ip("internet"), "tcp", 443)
        out["ports"] = {sw: subprocess.run(["ovs-vsctl", "list-ports", sw], capture_output=True, text=True,
                                           check=True).stdout.split() for sw in ("s1", "s2")}  # fmt: skip
        out["ofport"] = subprocess.run(["ovs-vsctl", "get", "Interface", "s1-eth12", "ofport"], capture_output=True,
                                       text=True, check=True).stdout.strip()  # fmt: skip
        out["mac_learned_on_s1"] = any("02:00:00:00:00:16" in f for f in lab.dump_flows("s1"))
    out["controller_rc"] = ctl.proc.returncode
    out["conf"] = (work / "ctl" / "mud.conf").read_text()
    return out


@pytest.fixture(scope="module")
def home() -> dict[str, Any]:
    before = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    result = sandbox.run_callable("tests.test_homelab:home_job", None, env=ENV, timeout=180)
    after = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert isinstance(result, dict)
    result["links_before_after"] = (_names(before), _names(after))
    return result


def _names(ip_link: str) -> list[str]:
    return sorted(line.split(":")[1].strip().split("@")[0] for line in ip_link.splitlines() if ":" in line)


@pytest.fixture(scope="module")
def two_switch() -> dict[str, Any]:
    result = sandbox.run_callable("tests.test_homelab:two_switch_job", None, env=ENV, timeout=180)
    assert isinstance(result, dict)
    return result


MUD_CLIENTS = [h for h in labhosts.HOSTS if h.client is not labhosts.Client.NONE]
PROTOCOL = {labhosts.Client.UDHCPC: "dhcpv4", labhosts.Client.DHCLIENT: "dhcpv4",
            labhosts.Client.DHCLIENT6: "dhcpv6", labhosts.Client.LLDPD: "lldp"}  # fmt: skip


@needs_sandbox
@pytest.mark.parametrize("h", MUD_CLIENTS, ids=lambda h: h.name)
def test_each_real_client_puts_its_mud_url_on_the_wire(home: dict[str, Any], h: labhosts.LabHost) -> None:
    wire = home["wire"][h.name]
    assert wire["mac"] == h.mac and wire["protocol"] == PROTOCOL[h.client]
    if h.mud_url is None:
        assert wire["kind"] == "NoUrl"  # laptop: plain DHCP, no option 161
    else:
        assert (wire["kind"], wire["url"]) == ("Announcement", h.mud_url)


@needs_sandbox
def test_dhcp_clients_get_their_table_addresses(home: dict[str, Any]) -> None:
    expected = {h.name: h.ip for h in labhosts.HOSTS if h.dhcp}
    assert {k: v for k, v in home["leases"].items() if k in expected} == expected
    assert home["host_addr"] == {name: [f"{ip}/24"] for name, ip in expected.items()}
    assert home["leases"]["sensor6"] == labhosts.host("sensor6").ip6  # DHCPv6 lease from dnsmasq


@needs_sandbox
def test_release_clears_the_lease(home: dict[str, Any]) -> None:
    assert home["bulb_after_release"] == "" and home["cam_after_release"] == ""


@needs_sandbox
def test_switch_has_only_the_normal_flow(home: dict[str, Any]) -> None:
    assert home["flows"] == ["priority=0 actions=NORMAL"]


@needs_sandbox
def test_root_namespace_fetches_a_signed_mud_file_through_the_switch(home: dict[str, Any]) -> None:
    fetched = home["fetched"]
    assert fetched["bulb.json"] == {"ok": True, "type": "application/mud+json", "peer": labhosts.host("mudsrv").ip}
    assert fetched["bulb.p7s"]["ok"] and fetched["bulb.p7s"]["type"] == "application/pkcs7-signature"
    assert home["parsed_url"] == labhosts.mud_url("bulb")
    assert home["signer"].startswith("CN=mud_ryu lab MUD signer")
    assert fetched["missing.json"] == {"ok": False, "reason": "bad-status", "detail": "404"}


@needs_sandbox
def test_mud_server_goes_down_and_comes_back(home: dict[str, Any]) -> None:
    assert home["fetch_down"]["reason"] == "connect-failed"
    assert home["fetch_up"] is True


@needs_sandbox
def test_every_expected_probe_gets_through_without_an_enforcer(home: dict[str, Any]) -> None:
    # The control run: with NORMAL forwarding each probe of the expectation table reaches a listener, so
    # a "blocked" under mud_ryu is the policy's doing.
    assert home["control"] == ["allowed"] * len(labmud.PROBES)
    assert home["refused"] == "refused"  # no listener on tcp/9: RST, never read as blocked


@needs_sandbox
def test_unplugged_port_blocks_and_replugging_restores(home: dict[str, Any]) -> None:
    assert (home["while_down"], home["after_up"]) == ("blocked", "allowed")


@needs_sandbox
def test_nothing_leaks_onto_the_host(home: dict[str, Any], two_switch: dict[str, Any]) -> None:
    before, after = home["links_before_after"]
    assert before == after
    assert not any(name.startswith(("s1-", "s2-", "bulb", "mgmt")) for name in after)


@needs_sandbox
def test_two_switch_topology_with_a_remote_controller(two_switch: dict[str, Any]) -> None:
    assert two_switch["table_miss"] == {sw: ["priority=0 actions=CONTROLLER:65535"] for sw in ("s1", "s2")}
    assert two_switch["wire_s2"]["url"] == labhosts.mud_url("bulb")
    assert (two_switch["lease_s2"], two_switch["probe_s2"]) == ("10.0.0.22", "allowed")  # across the trunk
    assert two_switch["controller_rc"] == -15  # stopped by SIGTERM, by its PID


@needs_sandbox
def test_device_moves_to_another_switch_and_reannounces(two_switch: dict[str, Any]) -> None:
    assert two_switch["moved_to"] == ["s1", 12] and two_switch["capture_if"] == "s1-eth12"
    assert two_switch["wire_s1"]["url"] == labhosts.mud_url("bulb")
    assert (two_switch["lease_s1"], two_switch["probe_s1"]) == ("10.0.0.22", "allowed")
    assert "s1-eth12" in two_switch["ports"]["s1"] and "s2-eth5" not in two_switch["ports"]["s2"]
    assert two_switch["ofport"] == "12"


@needs_sandbox
def test_controller_conf_names_the_lab_material(two_switch: dict[str, Any]) -> None:
    conf = two_switch["conf"]
    assert conf.startswith("[mud]\n")
    assert "static_hosts = mud.lab=10.0.0.2\n" in conf and "uplink_ports = 1:20,2:20\n" in conf
    assert "signature_policy = required\n" in conf


# --- host side: no sandbox needed -----------------------------------------------------------------


def test_lab_mud_files_validate_and_verify(tmp_path: Path) -> None:
    from mud_ryu.fetch import signature
    from mud_ryu.lab import labpki
    from mud_ryu.mudfile import reader as mudfile

    now = datetime.now(UTC)
    pki = labpki.create(tmp_path / "pki", labhosts.MUD_HOST, now)
    files = labmud.write_files(tmp_path / "mud", pki.signer, now)
    anchors = signature.load_trust_anchors(pki.signing_ca.read_bytes())
    assert set(files) == {"bulb", "cam", "sensor6", "hub"} and not (tmp_path / "mud" / "missing.json").exists()
    for profile, path in files.items():
        parsed = mudfile.parse(path.read_bytes())
        assert parsed.mud.mud_url == labhosts.mud_url(profile) and parsed.warnings == ()
        assert parsed.mud.mud_signature == f"https://mud.lab/{profile}.p7s"
        signature.verify_detached(path.read_bytes(), path.with_suffix(".p7s").read_bytes(), anchors, now)
    with pytest.raises(signature.SignatureError):
        signature.verify_detached(files["bulb"].read_bytes() + b" ", files["bulb"].with_suffix(".p7s").read_bytes(),
                                  anchors, now)  # fmt: skip


def test_probe_table_allows_only_what_each_profile_names() -> None:
    allowed = {(p.src, p.proto, p.port) for p in labmud.PROBES if p.expected == "allowed"}
    assert allowed == {("bulb", "tcp", 443), ("bulb2", "tcp", 443), ("cam", "tcp", 443), ("cam", "tcp", 8883),
                       ("sensor6", "udp", 123), ("hub", "tcp", 443)}  # fmt: skip
    inbound = [p for p in labmud.PROBES if p.src == "internet"]
    assert {p.dst for p in inbound} == {"bulb", "bulb2", "cam", "sensor6", "hub", "broken"}
    assert all(p.expected == "blocked" for p in inbound)
    assert all(p.expected == "blocked" for p in labmud.probes_for("broken"))
    assert labmud.profile_of("bulb2") == labmud.profile_of("bulb") == "bulb"  # shared profile


def test_host_table_is_consistent() -> None:
    macs = [h.mac for h in labhosts.ALL_HOSTS]
    ips = [h.ip for h in labhosts.ALL_HOSTS]
    assert len(set(macs)) == len(macs) and len(set(ips)) == len(ips)
    for topo in labhosts.TOPOLOGIES:
        places = list(labhosts.placement(topo).values())
        assert len(set(places)) == len(places)  # one host per switch port
    assert [h.name for h in labhosts.HOSTS if h.root_ns] == ["mgmt"]


def test_client_command_lines() -> None:
    files = clients.ClientFiles.for_host(Path("/w"), "bulb")
    argv = clients.client_argv(labhosts.host("bulb"), files, "bulb-eth0")
    assert argv[:2] == ["busybox", "udhcpc"] and argv[-2:] == ["-x", '161:"https://mud.lab/bulb.json"']
    assert 'send dhcp6.mud-url "https://mud.lab/sensor6.json";' in (clients.config_for(labhosts.host("sensor6")) or "")
    assert clients.lldpd_config("h:/") == "configure lldp custom-tlv oui 00,00,5e subtype 1 oui-info 68,3a,2f\n"
    with pytest.raises(ValueError):
        clients.dhclient_config('https://x/"; evil', v6=False)


def test_ryu_manager_argv_and_conf() -> None:
    argv = labctl.ryu_manager_argv(Path("/w/mud.conf"), ofp_port=6653, wsapi_port=8080)
    assert argv[0].endswith("ryu-manager") and argv[-1] == "mud_ryu.app"
    assert argv[argv.index("--ofp-listen-host") + 1] == "127.0.0.1" and "--config-file" in argv
    settings = labctl.lab_settings(trust_anchor=Path("/a.pem"), tls_ca=Path("/t.pem"), state_dir=Path("/s"))
    assert settings["uplink_ports"] == [] and settings["allowed_networks"] == ["10.0.0.0/24"]
    with pytest.raises(ValueError):
        labctl.render_conf({"state_dir": "x\ny = 1"})


def test_lab_refuses_to_start_outside_a_sandbox(tmp_path: Path) -> None:
    from mud_ryu.lab.homelab import HomeLab, LabError

    with pytest.raises(LabError) as err, HomeLab.start(tmp_path):
        pass
    assert err.value.reason == "not_sandboxed"
