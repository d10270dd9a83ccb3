"""The enforcer proven end to end in the home lab: sandbox jobs shared by ``make demo`` and the e2e tests.

Each job runs inside one :mod:`mud_ryu.lab.sandbox` (fresh net/pid/mount namespaces): it creates the lab PKI,
starts ``ryu-manager mud_ryu.app`` with the lab's settings, brings up the Mininet home lab against it, lets the
real clients announce themselves and returns plain JSON: per device how its URL was learned, its state, signer and
flows, and every probe with expected vs observed verdict. The callers (demo: print tables; tests: assert) never
interpret packets themselves.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mud_ryu.compiler.pipeline import CookieKind, parse_cookie
from mud_ryu.enforcer.devicestore import DeviceStore
from mud_ryu.fetch.cache import MudCache
from mud_ryu.lab import labctl, labhosts, labmud, labpki
from mud_ryu.lab.homelab import HomeLab, poll

OFP_PORT = 6653
MUD_DEVICES = ("bulb", "bulb2", "cam", "sensor6", "hub")
ANNOUNCERS = (*MUD_DEVICES, "broken", "laptop")
CONFIRM_TIMEOUT = 60.0  # covers one lost resolution being asked again (enforcer.RESOLVE_TIMEOUT_S)


def _log(ctl: labctl.ControllerProcess) -> str:
    return ctl.log_path.read_text(errors="replace")


def _confirmed(ctl: labctl.ControllerProcess, mac: str, state: str) -> bool:
    return re.search(rf"confirmed mac={re.escape(mac)} .*state={state} ", _log(ctl)) is not None


def _alerted(ctl: labctl.ControllerProcess, code: str, mac: str) -> bool:
    return f"ALERT {code} mac={mac}" in _log(ctl)


def _wait(
    ready: Callable[[], bool], what: str, timeout: float = CONFIRM_TIMEOUT, ctl: labctl.ControllerProcess | None = None
) -> None:
    """Poll; on timeout the error carries the controller's last log lines (the only witness of why)."""
    try:
        poll(ready, what, timeout, 0.05)
    except Exception as exc:
        tail = "\n".join(_log(ctl).splitlines()[-60:]) if ctl is not None else ""
        raise RuntimeError(f"{exc}\n--- controller log tail ---\n{tail}") from exc


def _mud_server_reachable() -> bool:
    """From the sandbox's root namespace (where the controller's worker runs) through the switch to mudsrv:443."""
    try:
        with socket.create_connection((labhosts.host("mudsrv").ip, 443), timeout=0.5):
            return True
    except OSError:
        return False


def _ready_for_devices(lab: HomeLab, ctl: labctl.ControllerProcess, switches: tuple[str, ...]) -> None:
    """The switches hold the controller's flows and the MUD server answers through them: only then may devices
    announce (a first fetch that races the lab's start-up would put them into the worker's 30 s backoff)."""
    for switch in switches:
        lab.wait_flows(switch, minimum=20)
    _wait(_mud_server_reachable, "MUD server reachable from the controller through the switch", 20.0, ctl=ctl)


def _flows_by_owner(lab: HomeLab, switch: str) -> list[dict[str, Any]]:
    """The switch's flows with their cookie split into kind/owner and their packet counts."""
    out = []
    for line in lab.dump_flows(switch, stats=True):
        cookie = re.search(r"cookie=(0x[0-9a-f]+)", line)
        packets = re.search(r"n_packets=(\d+)", line)
        value = int(cookie.group(1), 16) if cookie else 0
        parts = parse_cookie(value)
        out.append({"line": line, "cookie": value, "kind": parts.kind, "owner": parts.owner,
                    "packets": int(packets.group(1)) if packets else 0})  # fmt: skip
    return out


def _no_stats(lab: HomeLab, switch: str) -> list[str]:
    return sorted(lab.dump_flows(switch))


def _device_report(lab: HomeLab, state_dir: Path, name: str, switch: str) -> dict[str, Any]:
    h = labhosts.host(name)
    store = DeviceStore.open(state_dir / "devices.sqlite3")
    try:
        record = next((r for r in store.devices() if r.mac == h.mac), None)
        profile_ids = store.profile_ids()
    finally:
        store.close()
    signer = ""
    if record is not None and record.url:
        with MudCache.open(state_dir / "mud-cache.sqlite3") as cache:
            entry = cache.get(record.url)
            signer = str(entry.signer) if entry is not None and entry.signer is not None else ""
    flows = _flows_by_owner(lab, switch)
    own = [f for f in flows if record is not None and f["owner"] == record.device_id and f["kind"] in (2, 4)]
    profile_id = profile_ids.get(record.url or "") if record is not None else None
    shared = [f for f in flows if profile_id is not None and f["kind"] in (3, 5) and f["owner"] == profile_id]
    return {
        "device": name,
        "mac": h.mac,
        "via": record.via if record else "-",
        "url": record.url if record and record.url else (h.mud_url or "-"),
        "state": record.state if record else "unmanaged",
        "reason": record.reason if record else "",
        "signer": signer,
        "device_flows": len(own),
        "profile_flows": len(shared),
        "profile_id": profile_id,
        "device_flow_packets": sum(f["packets"] for f in own),
    }


def _spoof_dhcp(lab: HomeLab, from_host: str, victim: str) -> None:
    """A DHCPDISCOVER from ``from_host``'s port carrying ``victim``'s MAC (as Ethernet source and chaddr) and
    another MUD URL: THREATS.md row 1 / R5."""
    from mud_ryu.lab import framebuild

    frame = framebuild.dhcp_discover(labhosts.host(victim).mac, "https://mud.lab/evil.json")
    code = (
        "import socket,sys;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);"
        f"s.bind(('{lab.ifname(from_host)}',0));s.send(bytes.fromhex(sys.argv[1]))"
    )
    lab.host(from_host).cmd(f'{sys.executable} -c "{code}" {frame.hex()}')


def home(payload: Any) -> dict[str, Any]:
    """The home lab with the enforcer: discovery over DHCPv4/DHCPv6/LLDP, enforcement, a spoof, a release,
    a controller kill -9 and restart. ``payload``: {"restart": bool} (the demo skips the restart part)."""
    options = payload or {}
    workdir = Path("/tmp/mud-lab")
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    pki = labpki.create(workdir / "pki", labhosts.MUD_HOST, datetime.now(UTC))
    settings = labctl.lab_settings(trust_anchor=pki.signing_ca, tls_ca=pki.tls_ca, state_dir=state_dir)
    result: dict[str, Any] = {"probes": [], "devices": [], "checks": {}}
    ctl = labctl.start_controller(workdir / "ctl", settings, ofp_port=OFP_PORT)
    try:
        with HomeLab.start(workdir, controller_port=OFP_PORT, pki=pki) as lab:
            _ready_for_devices(lab, ctl, ("s1",))
            t0 = time.monotonic()
            for name in (*MUD_DEVICES, "laptop"):
                lab.announce(name)
            for name in MUD_DEVICES:
                mac = labhosts.host(name).mac
                _wait(lambda mac=mac: _confirmed(ctl, mac, "enforced"), f"{name} enforced", ctl=ctl)  # type: ignore[misc]
            result["checks"]["enforced_all_s"] = round(time.monotonic() - t0, 2)
            # "broken" announces while the MUD server is down: first contact fails, it stays quarantined.
            lab.mud_server_down()
            lab.announce("broken")
            broken = labhosts.host("broken").mac
            _wait(lambda: _alerted(ctl, "quarantined", broken), "broken quarantined", ctl=ctl)
            lab.mud_server_up()
            result["checks"]["laptop_lease"] = lab.wait_lease("laptop")
            for name in ("bulb", "bulb2", "cam", "broken"):  # DHCP clients: probe once their address is configured
                lab.wait_lease(name)
            probes = [(p.src, p.dst_ip, p.proto, p.port) for p in labmud.PROBES]
            observed = lab.probe_many(probes)
            for p, seen in zip(labmud.PROBES, observed, strict=True):
                result["probes"].append({"src": p.src, "dst": p.dst, "proto": p.proto, "port": p.port,
                                         "expected": p.expected, "observed": seen, "reason": p.reason})  # fmt: skip
            extra = [
                ("laptop", labmud.INTERNET, "tcp", 22, "allowed", "laptop has no MUD URL: default policy allow"),
                ("internet", labhosts.host("laptop").ip, "tcp", 22, "refused",
                 "laptop is not managed: reachable (no listener there, so the RST proves it)"),
            ]  # fmt: skip
            seen_extra = lab.probe_many([(s, d, pr, po) for s, d, pr, po, _, _ in extra])
            names = {labhosts.host(n).ip: n for n in ("internet", "laptop")}
            for (s, d, pr, po, exp, why), seen in zip(extra, seen_extra, strict=True):
                result["probes"].append({"src": s, "dst": names[d], "proto": pr, "port": po,
                                         "expected": exp, "observed": seen, "reason": why})  # fmt: skip
            result["traces"] = _direction_traces(lab)
            result["devices"] = [_device_report(lab, state_dir, n, "s1") for n in (*ANNOUNCERS,)]
            if options.get("restart", True):
                result["checks"].update(_spoof_release_restart(lab, ctl, workdir, settings))
    finally:
        ctl.stop()
    result["controller_log_tail"] = _log(ctl)[-4000:] if ctl.log_path.exists() else ""
    return result


def _classification_flows(lab: HomeLab, switch: str, mac: str) -> list[str]:
    """``mac``'s classification flows on ``switch``: a device's own (cookie kind DEVICE) that write metadata (a
    learned host on a trusted port writes the trusted bit too, but it is no device classification)."""
    out = []
    for line in lab.dump_flows(switch):
        found = re.search(r"cookie=(0x[0-9a-f]+)", line)
        kind = parse_cookie(int(found.group(1), 16)).kind if found else 0
        if mac in line and "write_metadata" in line and kind == int(CookieKind.DEVICE):
            out.append(line)
    return out


def _trace(switch: str, flow: str) -> str:
    """Open vSwitch's own verdict for a packet (ofproto/trace: the last "Datapath actions:" line)."""
    out = subprocess.run(["ovs-appctl", "ofproto/trace", switch, flow], capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("Datapath actions:")]
    if not lines:
        raise RuntimeError(f"ofproto/trace gave no verdict for {flow}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return lines[-1].split(":", 1)[1].strip()


def _direction_traces(lab: HomeLab) -> list[dict[str, str]]:
    """direction-initiated on the real switch: the internet's SYN from port 443 (which the to-device ACE names) to
    bulb is dropped, its SYN-ACK answering bulb's own connection passes. A listener on the internet host holds
    port 443, so this is asked of OVS's tracer rather than sent."""
    inet, bulb = labhosts.host("internet"), labhosts.host("bulb")
    _, in_port = lab.switch_port("internet")
    base = (f"in_port={in_port},tcp,dl_src={inet.mac},dl_dst={bulb.mac},nw_src={inet.ip},nw_dst={bulb.ip},"
            f"tcp_src=443,tcp_dst=40000")  # fmt: skip
    out = []
    for flags, expected in (("syn", "blocked"), ("syn|ack", "allowed")):
        verdict = _trace("s1", f"{base},tcp_flags={flags}")
        observed = "blocked" if verdict == "drop" else "allowed"
        out.append({"flow": f"internet:443 -> bulb:40000 [{flags}]", "expected": expected, "observed": observed,
                    "datapath": verdict})  # fmt: skip
    return out


def _spoof_release_restart(
    lab: HomeLab, ctl: labctl.ControllerProcess, workdir: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    bulb = labhosts.host("bulb")
    before = _no_stats(lab, "s1")
    _spoof_dhcp(lab, "laptop", "bulb")
    _wait(lambda: _alerted(ctl, "spoofed-announcement", bulb.mac), "spoof alert", ctl=ctl)
    checks["spoof_alerted"] = True
    checks["spoof_left_flows_alone"] = _no_stats(lab, "s1") == before
    checks["bulb_after_spoof"] = lab.probe("bulb", labmud.INTERNET, "tcp", 443)
    # DHCPRELEASE: bulb2's flows go, its record (and trust) stays.
    bulb2 = labhosts.host("bulb2")
    lab.release("bulb2")
    _wait(lambda: _confirmed(ctl, bulb2.mac, "absent"), "bulb2 released", ctl=ctl)
    checks["bulb2_flows_after_release"] = [ln for ln in lab.dump_flows("s1") if bulb2.mac in ln]
    # bulb2 then leaves (unplugged): a released device that goes on sending (IPv6 router solicitations, MLD) is
    # quarantined again until it announces, which would change the flood flows while the restart is checked.
    lab.port_down("bulb2")
    _, bulb2_port = lab.switch_port("bulb2")
    _wait(lambda: not any(f"in_port={bulb2_port}," in ln and "priority=50000" in ln for ln in lab.dump_flows("s1")),
          "bulb2's port down", 20.0, ctl=ctl)  # fmt: skip
    # Controller kill -9: the flows stay (fail-mode secure) and traffic keeps flowing while it is down.
    flows_before = _no_stats(lab, "s1")
    ctl.proc.kill()
    ctl.proc.wait(10)
    checks["during_outage_bulb_443"] = lab.probe("bulb", labmud.INTERNET, "tcp", 443)
    checks["during_outage_bulb_22"] = lab.probe("bulb", labmud.INTERNET, "tcp", 22)
    ping = lab.host("laptop").popen(["ping", "-c", "60", "-i", "0.05", "-W", "1", labmud.INTERNET],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    # "watch:!initial": only changes from now on; a DELETED event would be a valid flow lost to the restart.
    monitor = subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "monitor", "s1", "watch:!initial"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        restarted = labctl.start_controller(workdir / "ctl2", settings, ofp_port=OFP_PORT)
        try:
            _wait(lambda: "reconcile dpid=" in _log(restarted), "reconciliation after restart", ctl=restarted)
            checks["reconcile_line"] = next(ln for ln in _log(restarted).splitlines() if "reconcile dpid=" in ln)
            out, _ = ping.communicate(timeout=30)
            checks["ping_through_restart"] = out.decode(errors="replace").strip().splitlines()[-2:]
            after = _no_stats(lab, "s1")
            # Nothing that was there may be gone; traffic during the window may teach the new controller hosts.
            checks["flows_missing_after_restart"] = sorted(set(flows_before) - set(after))
            checks["flows_added_after_restart"] = sorted(set(after) - set(flows_before))
            checks["bulb_after_restart"] = lab.probe("bulb", labmud.INTERNET, "tcp", 443)
            checks["bulb_22_after_restart"] = lab.probe("bulb", labmud.INTERNET, "tcp", 22)
        finally:
            restarted.stop()
    finally:
        monitor.terminate()
        mon_out, _ = monitor.communicate(timeout=10)
    events = mon_out.decode(errors="replace").splitlines()
    checks["monitor_deleted"] = [ln for ln in events if "event=DELETED" in ln]
    return checks


def two_switch(payload: Any) -> dict[str, Any]:
    """Two switches joined by an uplink: devices on both are enforced at their own switch and reach the internet
    across the other; bulb2 then moves from s2 to s1 (port gone on s2, re-announced on s1)."""
    del payload
    workdir = Path("/tmp/mud-lab2")
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    pki = labpki.create(workdir / "pki", labhosts.MUD_HOST, datetime.now(UTC))
    settings = labctl.lab_settings(
        trust_anchor=pki.signing_ca, tls_ca=pki.tls_ca, state_dir=state_dir, topo="two_switch"
    )
    out: dict[str, Any] = {"probes": [], "checks": {}}
    ctl = labctl.start_controller(workdir / "ctl", settings, ofp_port=OFP_PORT)
    try:
        with HomeLab.start(workdir, controller_port=OFP_PORT, pki=pki, topo="two_switch") as lab:
            _ready_for_devices(lab, ctl, ("s1", "s2"))
            for name in ("bulb", "bulb2", "cam", "laptop"):
                lab.announce(name)
            for name in ("bulb", "bulb2", "cam"):
                mac = labhosts.host(name).mac
                _wait(lambda mac=mac: _confirmed(ctl, mac, "enforced"), f"{name} enforced", ctl=ctl)  # type: ignore[misc]
            for name in ("bulb", "bulb2", "cam"):  # enforced is the policy; a probe also needs the client's address
                lab.wait_lease(name)

            def probes(tag: str) -> None:
                wanted = [(p.src, p.dst_ip, p.proto, p.port, p.expected) for name in ("bulb", "bulb2", "cam")
                          for p in labmud.probes_for(name) if p.proto != "ping"]  # fmt: skip
                seen = lab.probe_many([(s, d, pr, po) for s, d, pr, po, _ in wanted])
                for (s, d, pr, po, exp), obs in zip(wanted, seen, strict=True):
                    out["probes"].append({"phase": tag, "src": s, "dst": d, "proto": pr, "port": po,
                                          "expected": exp, "observed": obs})  # fmt: skip

            probes("before-move")
            bulb2 = labhosts.host("bulb2")
            out["checks"]["bulb2_on_s2_before"] = len([ln for ln in lab.dump_flows("s2") if bulb2.mac in ln])
            lab.move("bulb2", "s1", reannounce=True)
            _wait(lambda: _confirmed(ctl, bulb2.mac, "absent"), "bulb2 gone from s2", ctl=ctl)
            on_s1 = rf"confirmed mac={bulb2.mac} dpid=0000000000000001 .*state=enforced"
            _wait(lambda: re.search(on_s1, _log(ctl)) is not None, "bulb2 enforced on s1", ctl=ctl)
            probes("after-move")
            # On s2 bulb2 may only be a learned host behind the uplink now (no classification flows).
            out["checks"]["bulb2_device_flows_on_s2_after"] = _classification_flows(lab, "s2", bulb2.mac)
            out["checks"]["bulb2_device_flows_on_s1_after"] = len(_classification_flows(lab, "s1", bulb2.mac))
    finally:
        ctl.stop()
    out["controller_log_tail"] = _log(ctl)[-3000:]
    return out
