"""The demo's "attacks" block: the LAN attacks of :mod:`mud_ryu.lab.attack_scenario`, their verdicts and what
counts as a failure (kept apart from :mod:`mud_ryu.lab.demo`, which only assembles the blocks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def failures(run: Mapping[str, Any] | None) -> list[str]:
    if run is None:
        return []
    bad = [f"attack {r['id']} ({r['what']}): expected {r['expected']}, saw {r['observed']}"
           for r in run["attacks"] if r["observed"] != r["expected"]]  # fmt: skip
    dns = run["dns"]
    if dns["forged_bound"] or dns["wrong_port"] < 1 or not dns["control_bound"]:
        bad.append(f"attack forged-dns: {dns}")
    if not run["new_mac_alerted"]:
        bad.append("attack new-mac: no alert")
    port = run["hot_added_port"]
    if not (port["meter_present"] and len(port["punts"]) == 3 and port["enforced"]) or port["switch_errors"]:
        bad.append(f"hot-added port: {port}")
    takeover = run["takeover"]
    if not takeover["alerted"] or takeover["port_after"] != takeover["home_port"]:
        bad.append(f"takeover after release: {takeover}")
    return bad


def report(run: Mapping[str, Any] | None) -> list[str]:
    if run is None:
        return []
    lines = ["", "ATTACKS FROM THE LAN (frames forged with scapy; a catcher on the target's own interface)",
             f"  {'':<4} {'FROM':<9} {'TO':<9} {'EXPECTED':<10} {'OBSERVED':<10} WHAT"]  # fmt: skip
    for r in run["attacks"]:
        ok = "OK" if r["observed"] == r["expected"] else "FAIL"
        lines.append(f"  {ok:<4} {r['from']:<9} {r['to']:<9} {r['expected']:<10} {r['observed']:<10} {r['what']}")
    dns = run["dns"]
    dns_ok = not dns["forged_bound"] and dns["wrong_port"] >= 1 and dns["control_bound"]
    lines.append(f"  {'OK' if dns_ok else 'FAIL':<4} cam forges the resolver's answer from its own port: counted "
                 f"wrong-port ({dns['wrong_port']}), bound nothing; the same answer from the resolver's port "
                 "binds")  # fmt: skip
    lines.append(f"  {'OK' if run['new_mac_alerted'] else 'FAIL':<4} bulb's fresh MAC: quarantined from its first "
                 "frame, alerted (new-mac-on-device-port)")  # fmt: skip
    port = run["hot_added_port"]
    port_ok = port["meter_present"] and len(port["punts"]) == 3 and port["enforced"] and not port["switch_errors"]
    lines.append(f"  {'OK' if port_ok else 'FAIL':<4} a port added after connect: meter first, 3 metered punts, "
                 "its device discovered and enforced, no switch error")  # fmt: skip
    takeover = run["takeover"]
    take_ok = takeover["alerted"] and takeover["port_after"] == takeover["home_port"]
    lines.append(f"  {'OK' if take_ok else 'FAIL':<4} bulb2 released its lease (port up); the laptop announcing its "
                 f"MAC is a spoof: alerted, bulb2 stays on port {takeover['port_after']}")  # fmt: skip
    return lines
