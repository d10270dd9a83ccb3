"""``mud-ryu compile``: the complete OpenFlow 1.3 flow set for one device on a lab switch.

Prints exactly what would be installed (pipeline, classification, the profile's ACL rules,
static forwarding) so a MUD file can be reviewed, diffed or loaded with
``ovs-ofctl -O OpenFlow13 add-flows BR -`` without running a controller.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mud_ryu.compiler.flowrule import FlowRule

NAME = "compile"
HELP = "compile a MUD file into the OpenFlow 1.3 flows for one device (ovs-ofctl, json or table)"
EXIT_ERROR = 2


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in values or ():
        key, sep, addrs = item.rpartition("=")
        if not sep or not key or not addrs:
            raise ValueError(f"{flag} expects KEY=IP[,IP], got {item!r}")
        out[key] = out.get(key, ()) + tuple(a.strip() for a in addrs.split(",") if a.strip())
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="MUD file (JSON)")
    parser.add_argument("--mac", required=True, help="the device's MAC address")
    parser.add_argument("--device-port", type=int, required=True, metavar="N", help="OpenFlow port of the device")
    parser.add_argument("--uplink-port", type=int, required=True, metavar="M", help="OpenFlow port to the network")
    parser.add_argument("--format", choices=("ovs-ofctl", "json", "table"), default="ovs-ofctl")
    parser.add_argument("--resolve", action="append", metavar="NAME=IP[,IP]", help="addresses of a DNS name")
    parser.add_argument(
        "--controller",
        action="append",
        metavar="URI=IP[,IP]",
        help="members of a controller class (e.g. urn:ietf:params:mud:dns=192.0.2.53)",
    )
    parser.add_argument("--my-controller", action="append", metavar="IP", help="a my-controller address")
    parser.add_argument("--local-network", action="append", metavar="CIDR", help="a local network")
    parser.add_argument("--mud-url", help="use this MUD URL (profile identity) instead of the file's")


def _rule_json(rule: FlowRule) -> dict[str, object]:
    return {
        "table": rule.table,
        "priority": rule.priority,
        "cookie": f"0x{rule.cookie:016x}",
        "match": {k: list(v) if isinstance(v, tuple) else v for k, v in rule.match},
        "actions": [{"output": a.port, "max_len": a.max_len} for a in rule.actions],
        "write_metadata": [f"0x{v:x}" for v in rule.write_metadata] if rule.write_metadata else None,
        "goto": rule.goto,
        "meter": rule.meter,
    }


def _table(rules: Sequence[FlowRule]) -> str:
    from mud_ryu.openflow.ofctl_text import render_flow

    lines = [f"{'TABLE':<13}{'PRIO':>6}  {'COOKIE':<18}  FLOW"]
    for r in rules:
        text = render_flow(r).split(",", 3)[3]  # drop table/priority/cookie, shown in columns
        lines.append(f"{r.table:<13}{r.priority:>6}  0x{r.cookie:016x}  {text}")
    return "\n".join(lines) + "\n"


def _error(reason: str, message: str) -> int:
    print(f"ERROR {reason}: {message}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from mud_ryu.compiler.compile import CompileError, build_switch
    from mud_ryu.compiler.context import DeviceSpec, NetworkContext
    from mud_ryu.mudfile.reader import MudFileError, load
    from mud_ryu.openflow.ofctl_text import render_flows

    try:
        dns = _pairs(args.resolve, "--resolve")
        controllers = _pairs(args.controller, "--controller")
    except ValueError as exc:
        return _error("bad-argument", str(exc))
    try:
        parsed = load(args.file)
    except MudFileError as exc:
        return _error(exc.finding.reason, f"{exc.finding.path}: {exc.finding.message}")
    mud = parsed.mud if not args.mud_url else dataclasses.replace(parsed.mud, mud_url=args.mud_url)
    ctx = NetworkContext(
        dns=dns,
        controllers=controllers,
        my_controller={mud.mud_url: tuple(args.my_controller or ())},
        local_networks=tuple(args.local_network or ()),
    )
    dev = DeviceSpec(mac=args.mac, device_port=args.device_port, uplink_port=args.uplink_port)
    try:
        result = build_switch(mud, dev, ctx)
    except CompileError as exc:
        return _error(exc.reason, f"{exc.path}: {exc.message}" if exc.path else exc.message)
    for w in (*parsed.warnings, *result.warnings):
        print(f"WARNING {w}", file=sys.stderr)
    if args.format == "json":
        doc = {"mud_url": mud.mud_url, "flows": [_rule_json(r) for r in result.rules]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.format == "table":
        sys.stdout.write(_table(result.rules))
    else:
        sys.stdout.write(render_flows(result.rules))
    return 0
