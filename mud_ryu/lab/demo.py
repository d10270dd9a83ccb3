"""``make demo``: the MUD enforcer running in the home lab, proven with real traffic.

Inside a private sandbox (fresh net/pid/mount namespaces; nothing on the host changes): a userspace Open vSwitch
in ``fail-mode=secure``, ``ryu-manager mud_ryu.app`` with the lab's settings, and a Mininet home network whose
devices announce their MUD URLs with real clients (busybox udhcpc and isc dhclient over DHCPv4, dhclient -6 over
DHCPv6, lldpd over LLDP), a dnsmasq DHCP server, an HTTPS MUD server with a lab CA serving signed MUD files, a
laptop with no MUD URL, a device whose MUD server is down, and an "internet" host. The demo then shows, for every
device, how its URL was learned, its signer and the flows installed, and every probe (TCP connects, UDP, pings,
in both directions) with its expected and observed verdict; then a spoofed announcement, a DHCP release and a
controller kill -9 + restart; then the MUD URL update policy: first use, a firmware update, a rollback, a restart,
an operator approval over the REST API, a URL under another CA and one on another host; then DNS names kept current
through a rotating A record; then every RFC 8520 abstraction with the NIST corpus files (same-manufacturer,
manufacturer, model, local-networks, controller, and my-controller set and cleared over the REST API); then the
attacks a device or host on the LAN may try (frames forged with scapy, caught on the target's own interface), each
expected blocked, each with a control that arrives. Exit status 0 iff every observed verdict and every check is as
expected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mud_ryu.lab import demo_attacks, sandbox

T = TypeVar("T")

CHECKS: tuple[tuple[str, str, object], ...] = (
    ("spoof_alerted", "a DHCP announcement with bulb's MAC from laptop's port raises an alert", True),
    ("spoof_left_flows_alone", "... and changes no flow (no rebinding)", True),
    ("bulb_after_spoof", "bulb still reaches internet:443 after the spoof", "allowed"),
    ("bulb2_flows_after_release", "bulb2's DHCPRELEASE removes its flows", []),
    ("during_outage_bulb_443", "controller killed (-9): bulb -> internet:443 still allowed", "allowed"),
    ("during_outage_bulb_22", "controller killed (-9): bulb -> internet:22 still blocked", "blocked"),
    ("flows_missing_after_restart", "restarted controller: every flow still in the table", []),
    ("monitor_deleted", "ovs-ofctl monitor saw no flow deleted across the restart", []),
    ("bulb_after_restart", "after restart: bulb -> internet:443 allowed", "allowed"),
    ("bulb_22_after_restart", "after restart: bulb -> internet:22 blocked", "blocked"),
)


def run_demo(timeout: float = 400.0) -> dict[str, Any]:
    result = sandbox.run_callable("mud_ryu.lab.scenarios:home", {"restart": True}, timeout=timeout)
    policy = sandbox.run_callable("mud_ryu.lab.policy_scenario:update_policy", None, timeout=timeout)
    dns = sandbox.run_callable("mud_ryu.lab.dns_scenario:dns_rotation", None, timeout=timeout)
    abstractions = sandbox.run_callable("mud_ryu.lab.abstractions_scenario:abstractions", None, timeout=timeout)
    attacks = sandbox.run_callable("mud_ryu.lab.attack_scenario:lan_attacks", None, timeout=timeout)
    assert isinstance(result, dict) and isinstance(policy, dict) and isinstance(dns, dict)
    assert isinstance(abstractions, dict) and isinstance(attacks, dict)
    result["attacks"] = attacks
    result["policy"] = policy
    result["dns"] = dns
    result["abstractions"] = abstractions
    return result


def _ping_ok(result: Mapping[str, Any]) -> bool:
    lines = result["checks"].get("ping_through_restart") or [""]
    return " 0% packet loss" in lines[0]


def failures(result: Mapping[str, Any]) -> list[str]:
    """Everything that is not as expected (empty: the demo passed)."""
    bad = [f"probe {p['src']} -> {p['dst']} {p['proto']}/{p['port']}: expected {p['expected']}, saw {p['observed']}"
           for p in result["probes"] if p["observed"] != p["expected"]]  # fmt: skip
    bad += [f"trace {t['flow']}: expected {t['expected']}, saw {t['observed']}"
            for t in result.get("traces", []) if t["observed"] != t["expected"]]  # fmt: skip
    checks = result["checks"]
    bad += [f"check {key}: {what} (got {checks.get(key)!r})" for key, what, want in CHECKS if checks.get(key) != want]
    if not _ping_ok(result):
        bad.append("check ping_through_restart: traffic lost packets across the controller restart")
    if not str(checks.get("reconcile_line", "")).endswith(" 0 to add, 0 stale"):
        bad.append(f"check reconcile: {checks.get('reconcile_line')!r}")
    policy = result.get("policy", {"steps": [], "unauthorised_status": 401})
    for step in policy["steps"]:
        if step["observed"] != step["expected"] or step["state"] != step["expected_state"] or not step["alert_seen"]:
            bad.append(f"update policy step {step['step']!r}: expected {step['expected']} {step['expected_state']}, "
                       f"saw {step['observed']} {step['state']}")  # fmt: skip
    dns = result.get("dns")
    if dns is not None:
        if dns["failures"] or dns["rounds"] != 120 or len(dns["addresses_seen"]) != 2:
            bad.append(f"DNS rotation: {len(dns['failures'])} of {dns['rounds']} lookups unusable")
        if dns["before_device_lookup"][-1] != "blocked" or dns["other_host_during"] != "blocked":
            bad.append("DNS: an address was reachable that no answer had named")
        if "allowed" not in dns["before_device_lookup"][:-1]:
            bad.append("DNS: the name was not resolved proactively when the profile loaded")
        if dns["old_blocked_after_s"] is None:
            bad.append("DNS: an address the resolver stopped giving never expired")
    if policy["unauthorised_status"] != 401:
        bad.append(f"REST: a state change without the token got {policy['unauthorised_status']}, not 401")
    bad += _abstraction_failures(result.get("abstractions"))
    bad += demo_attacks.failures(result.get("attacks"))
    return bad


def _abstraction_failures(run: Mapping[str, Any] | None) -> list[str]:
    if run is None:
        return []
    bad = [f"abstractions: {p['src']} -> {p['dst']} {p['proto']}/{p['port']}: expected {p['expected']}, saw "
           f"{p['observed']}" for p in run["probes"] if p["observed"] != p["expected"]]  # fmt: skip
    bad += [f"my-controller ({s['phase']}) -> {s['dst']}: expected {s['expected']}, saw {s['observed']}"
            for s in run["my_controller"] if s["observed"] != s["expected"]]  # fmt: skip
    if run["join"]["bulb_profile_touched"]:
        bad.append("abstractions: a same-manufacturer device joining touched the first device's profile flows")
    if any(d["state"] != "enforced" for d in run["devices"]):
        bad.append("abstractions: not every corpus device was enforced")
    if run["unauthorised_status"] != 401:
        bad.append(f"REST: my-controller without the token got {run['unauthorised_status']}, not 401")
    return bad


def _short_signer(signer: str) -> str:
    return signer.split(",", 1)[0] if signer else "-"


def report(result: Mapping[str, Any]) -> str:
    lines = [
        "mud_ryu demo: ryu-manager mud_ryu.app + userspace Open vSwitch (fail-mode=secure) + Mininet home lab",
        "",
        f"{'DEVICE':<8} {'LEARNED':<8} {'MUD URL':<30} {'STATE':<12} {'SIGNER':<26} {'FLOWS dev+profile':>17}  REASON",
    ]
    for d in result["devices"]:
        flows = f"{d['device_flows']}+{d['profile_flows']}"
        lines.append(f"{d['device']:<8} {d['via']:<8} {d['url']:<30} {d['state']:<12} {_short_signer(d['signer']):<26}"
                     f" {flows:>17}  {d['reason']}")  # fmt: skip
    lines += ["", f"{'FROM':<9} {'TO':<9} {'PROBE':<10} {'EXPECTED':<8} {'OBSERVED':<8} {'':<8} WHY"]
    for p in result["probes"]:
        probe = f"{p['proto']}/{p['port']}" if p["port"] else p["proto"]
        verdict = "OK" if p["observed"] == p["expected"] else "MISMATCH"
        lines.append(f"{p['src']:<9} {p['dst']:<9} {probe:<10} {p['expected']:<8} {p['observed']:<8} {verdict:<8} "
                     f"{p['reason']}")  # fmt: skip
    for t in result.get("traces", []):
        verdict = "OK" if t["observed"] == t["expected"] else "MISMATCH"
        lines.append(f"  ofproto/trace {t['flow']}: expected {t['expected']}, observed {t['observed']}  {verdict}")
    checks = result["checks"]
    lines += ["", "CHECKS"]
    for key, what, want in CHECKS:
        lines.append(f"  {'OK' if checks.get(key) == want else 'FAIL':<5} {what}")
    lines.append(f"  {'OK' if _ping_ok(result) else 'FAIL':<5} 60 pings laptop -> internet across the restart: "
                 f"{(checks.get('ping_through_restart') or ['-'])[0]}")  # fmt: skip
    lines.append(f"  {'OK' if not failures(result) else '    '}  {checks.get('reconcile_line', '-')}")
    policy = result.get("policy")
    if policy is not None:
        lines += ["", "UPDATE POLICY (bulb, bulb2; real announcements, traffic and the REST API)",
                  f"  {'STEP':<70} {'TRAFFIC (bulb -> internet)':<36} {'STATE':<12} REASON"]  # fmt: skip
        for step in policy["steps"]:
            traffic = " ".join(f"{port}:{verdict}" for port, verdict in step["observed"].items())
            ok_step = step["observed"] == step["expected"] and step["state"] == step["expected_state"]
            reason = step.get("alert_reason") or step.get("decision") or ""
            lines.append(f"  {'OK' if ok_step else 'FAIL':<4} {step['step']:<65} {traffic:<36} {step['state']:<12} "
                         f"{reason}")  # fmt: skip
        lines.append(f"  {'OK' if policy['unauthorised_status'] == 401 else 'FAIL':<4} REST revoke with a wrong token: "
                     f"{policy['unauthorised_status']} {policy['unauthorised']}")  # fmt: skip
    dns = result.get("dns")
    if dns is not None:
        lines += ["", "DNS NAMES (cloudy.json allows tcp/443 to api.vendor.example; its A record rotates every 3 s)",
                  "  before the device's own lookup (resolved by the controller at profile load): "
                  f"10.0.0.11 {dns['before_device_lookup'][0]}, 10.0.0.12 {dns['before_device_lookup'][1]}, "
                  f"the internet host's own address {dns['before_device_lookup'][2]}",
                  f"  {dns['rounds']} lookups + connects at 100 ms over {', '.join(dns['addresses_seen'])}: "
                  f"{len(dns['failures'])} unusable answers; other host {dns['other_host_during']}",
                  f"  {dns['old_address']} no longer answered: blocked {dns['old_blocked_after_s']} s after its last "
                  "answer (TTL 3 s + expiry tick)"]  # fmt: skip
    lines += _abstraction_report(result.get("abstractions"))
    lines += demo_attacks.report(result.get("attacks"))
    ok = sum(p["observed"] == p["expected"] for p in result["probes"])
    lines += ["", f"{ok}/{len(result['probes'])} probes as expected; all devices enforced "
                  f"{checks.get('enforced_all_s', '?')} s after their clients started"]  # fmt: skip
    bad = failures(result)
    lines.append("RESULT: PASS" if not bad else "RESULT: FAIL\n  " + "\n  ".join(bad))
    return "\n".join(lines)


def _abstraction_report(run: Mapping[str, Any] | None) -> list[str]:
    if run is None:
        return []
    lines = ["", "RFC 8520 ABSTRACTIONS (NIST corpus files, served from their own *.nist.local authorities)",
             f"  {'DEVICE':<11} {'LEARNED':<7} {'MUD URL':<50} {'STATE':<9} ABSTRACTION"]  # fmt: skip
    by_mac = {d["mac"]: d for d in run["devices"]}
    for role in run["roles"]:
        device = next((d for d in by_mac.values() if d["url"] == role["url"]), {"via": "-", "state": "missing"})
        lines.append(f"  {role['device']:<11} {device['via']:<7} {role['url']:<50} {device['state']:<9} "
                     f"{role['abstraction']}")  # fmt: skip
    lines.append(f"  {'FROM':<9} {'TO':<10} {'PROBE':<9} {'EXPECTED':<8} {'OBSERVED':<8} {'':<8} WHY")
    for p in run["probes"]:
        verdict = "OK" if p["observed"] == p["expected"] else "MISMATCH"
        lines.append(f"  {p['src']:<9} {p['dst']:<10} {p['proto'] + '/' + str(p['port']):<9} {p['expected']:<8} "
                     f"{p['observed']:<8} {verdict:<8} {p['reason']}")  # fmt: skip
    join = run["join"]
    lines.append(f"  {'OK' if not join['bulb_profile_touched'] else 'FAIL':<4} bulb2 (same manufacturer) joined: "
                 f"{join['events']} flow events, none on bulb's profile")  # fmt: skip
    for step in run["my_controller"]:
        ok = "OK" if step["observed"] == step["expected"] else "FAIL"
        lines.append(f"  {ok:<4} my-controller over REST, {step['phase']}: doorlock -> {step['dst']} udp/8002 "
                     f"{step['observed']}")  # fmt: skip
    return lines


def run_and_report(run: Callable[[], T], render: Callable[[T], str], passed: Callable[[T], bool]) -> int:
    """A demo's command line: 2 without a sandbox, 1 when the run fails or any verdict is off, else 0."""
    reason = sandbox.unavailable_reason()
    if reason is not None:
        print(f"demo needs a sandbox: {reason}", file=sys.stderr)
        return 2
    try:
        result = run()
    except sandbox.SandboxError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(render(result))
    return 0 if passed(result) else 1


def main() -> int:
    return run_and_report(run_demo, report, lambda result: not failures(result))


if __name__ == "__main__":
    sys.exit(main())
