"""A port added after the switch connected gets its discovery punts, on the wire, with and without meter support
(issue 11, item 6), and a flow the switch refuses is tied back by xid, alerted and resent.

The real app (``ryu-manager mud_ryu.app``) talks to :mod:`tests.ofswitch_script`, a scripted switch: Open vSwitch
always offers meters, so only a scripted switch can show the controller a switch without them, or refuse a chosen
flow-mod. The OVS lab (tests/test_e2e_attacks.py) covers the metered case on a real switch.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mud_ryu.compiler.edgeflows import PORT_METER_BASE
from tests.ofswitch_script import (
    BARRIER_REQUEST,
    FLOW_MOD,
    METER_MOD,
    MP_FLOW,
    MULTIPART_REQUEST,
    ScriptedSwitch,
    Sent,
    parse_flow_mod,
)

BIN = Path(sys.executable).parent
NEW_PORT = 7
DPID = 0x5C1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """ryu-manager with mud_ryu.app on loopback: (OpenFlow port, REST port, log)."""
    of_port, api_port = _free_port(), _free_port()
    log = tmp_path / "ryu.log"
    conf = tmp_path / "mud.conf"
    conf.write_text(f"[mud]\nstate_dir = {tmp_path / 'state'}\nuplink_ports = {DPID}:1\n")
    proc = subprocess.Popen(
        [str(BIN / "ryu-manager"), "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(of_port),
         "--wsapi-port", str(api_port), "--config-file", str(conf), "mud_ryu.app"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", of_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)  # polling interval, not a fixed wait
        assert proc.poll() is None, log.read_text()
        yield of_port, api_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        assert "Traceback" not in log.read_text(), log.read_text()


def _set_up(switch: ScriptedSwitch, of_port: int) -> None:
    """Connect, and wait until the app has read the (empty) flow table and confirmed its first update."""
    switch.connect(of_port)

    def reconciled(sent: list[Sent]) -> bool:
        stats = [i for i, m in enumerate(sent) if m.type == MULTIPART_REQUEST and m.body[:2] == MP_FLOW.to_bytes(2)]
        return bool(stats) and any(m.type == BARRIER_REQUEST for m in sent[stats[0]:])

    switch.wait_for(reconciled, 30, "its first update after reading the flow table")


def _punts_of(switch: ScriptedSwitch, port: int) -> list[int]:
    return [i for i, m in enumerate(switch.messages()) if m.type == FLOW_MOD and _in_port(m) == port]


def _in_port(m: Sent) -> int | None:
    return parse_flow_mod(m).in_port


@pytest.mark.parametrize("meters", [True, False], ids=["metered", "no-meters"])
def test_hot_added_port_gets_its_punts(controller: tuple[int, int, Path], meters: bool) -> None:
    of_port, _api, log = controller
    switch = ScriptedSwitch(DPID, [1, 2], meters)
    try:
        _set_up(switch, of_port)
        switch.port_added(NEW_PORT)
        switch.wait_for(lambda _s: len(_punts_of(switch, NEW_PORT)) >= 3, 15, f"punts for port {NEW_PORT}")
        switch.wait_for(lambda s: s[-1].type == BARRIER_REQUEST, 15, "a barrier after the port's flows")
        sent = switch.messages()
        port_flows = [m for m in switch.flow_mods() if m.in_port == NEW_PORT]
        meter = PORT_METER_BASE + NEW_PORT
        if meters:
            # The port's meter goes out before the first flow that names it (a switch refuses a flow whose meter
            # does not exist), and every punt of the port is metered by it.
            first_meter = next(i for i, m in enumerate(sent) if m.type == METER_MOD and _meter_id(m) == meter)
            assert first_meter < _punts_of(switch, NEW_PORT)[0]
            assert {f.meter for f in port_flows} == {meter}
        else:
            # No meters on this switch: none is ever sent, and no flow names one (the switch would refuse it).
            assert not [m for m in sent if m.type == METER_MOD]
            assert all(f.meter is None for f in switch.flow_mods())
            assert "has no usable OpenFlow meters" in log.read_text()
    finally:
        switch.close()


def test_refused_flow_is_alerted_and_resent(controller: tuple[int, int, Path]) -> None:
    """The switch refuses the new port's first punt (unknown meter, as a switch that lost its meters would): the
    error is tied to that flow by its xid, the operator gets a flow-refused alert, and the app sends the meter again
    and then the flow, which the switch now accepts."""
    of_port, api_port, _log = controller
    refused: list[int] = []

    def refuse_first_punt(m: Sent) -> tuple[int, int] | None:
        if m.type == FLOW_MOD and _in_port(m) == NEW_PORT and not refused:
            refused.append(m.xid)
            return (12, 7)  # OFPET_METER_MOD_FAILED, OFPMMFC_UNKNOWN_METER
        return None

    switch = ScriptedSwitch(DPID, [1, 2], True, refuse=refuse_first_punt)
    try:
        _set_up(switch, of_port)
        switch.port_added(NEW_PORT)
        switch.wait_for(lambda _s: bool(refused), 15, f"a punt for port {NEW_PORT}")
        first = refused[0]
        refused_body = next(m.body for m in switch.messages() if m.type == FLOW_MOD and m.xid == first)

        def resent(sent: list[Sent]) -> int | None:
            return next((i for i, m in enumerate(sent) if m.type == FLOW_MOD and m.xid != first
                         and m.body == refused_body), None)  # fmt: skip

        # Resent after the backoff: the same flow-mod again under a new xid, preceded by the port's meter again.
        switch.wait_for(lambda s: resent(s) is not None, 15, "the refused flow again")
        sent = switch.messages()
        at_first = next(i for i, m in enumerate(sent) if m.xid == first and m.type == FLOW_MOD)
        again = resent(sent)
        assert again is not None
        assert any(m.type == METER_MOD and _meter_id(m) == PORT_METER_BASE + NEW_PORT for m in sent[at_first:again])
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/mud/v1/alerts", timeout=10) as answer:
            alerts = json.load(answer)["alerts"]
        assert any(a["code"] == "flow-refused" and a["port"] == NEW_PORT for a in alerts), alerts
    finally:
        switch.close()


def test_ryus_wsgi_server_refuses_an_encoded_slash(controller: tuple[int, int, Path]) -> None:
    _of, api_port, _log = controller

    def request(method: str, path: str) -> tuple[int, dict[str, str]]:
        end = time.monotonic() + 15
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
                connection.request(method, path)
                answer = connection.getresponse()
                return answer.status, json.loads(answer.read())
            except ConnectionRefusedError:  # the WSGI server starts just after the OpenFlow listener
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)  # polling interval, not a fixed wait
            finally:
                connection.close()

    # The raw path reaches the API: %3A decodes to ":" inside its segment (no such device here).
    assert request("GET", "/mud/v1/devices/02%3A00%3A00%3A00%3A00%3A01") == (404, {
        "error": "unknown-device", "message": "no device 02:00:00:00:00:01"})  # fmt: skip
    # Decoded, this would be POST .../revoke (refused for want of a token); raw, it is one segment with a "/".
    status, document = request("POST", "/mud/v1/devices/02:00:00:00:00:01%2Frevoke")
    assert (status, document["error"]) == (400, "encoded-separator")


def _meter_id(m: Sent) -> int:
    return int.from_bytes(m.body[4:8], "big")
