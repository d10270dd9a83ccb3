"""``mud-ryu compile`` end to end: a MUD JSON file in, the complete flow set out."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mud_ryu.cli import main

MUD_DOC = {
    "ietf-mud:mud": {
        "mud-version": 1,
        "mud-url": "https://lighting.example.com/lightbulb2000",
        "last-update": "2024-01-01T00:00:00+00:00",
        "cache-validity": 48,
        "is-supported": True,
        "systeminfo": "The BMS Example Light Bulb",
        "from-device-policy": {"access-lists": {"access-list": [{"name": "mud-out"}]}},
        "to-device-policy": {"access-lists": {"access-list": [{"name": "mud-in"}]}},
    },
    "ietf-access-control-list:acls": {
        "acl": [
            {
                "name": "mud-out",
                "type": "ipv4-acl-type",
                "aces": {
                    "ace": [
                        {
                            "name": "cl0-frdev",
                            "matches": {
                                "ipv4": {"protocol": 6, "ietf-acldns:dst-dnsname": "service.bms.example.com"},
                                "tcp": {
                                    "destination-port": {"operator": "eq", "port": 443},
                                    "ietf-mud:direction-initiated": "from-device",
                                },
                            },
                            "actions": {"forwarding": "accept"},
                        }
                    ]
                },
            },
            {
                "name": "mud-in",
                "type": "ipv4-acl-type",
                "aces": {
                    "ace": [
                        {
                            "name": "cl0-todev",
                            "matches": {
                                "ipv4": {"protocol": 6, "ietf-acldns:src-dnsname": "service.bms.example.com"},
                                "tcp": {
                                    "source-port": {"operator": "eq", "port": 443},
                                    "ietf-mud:direction-initiated": "from-device",
                                },
                            },
                            "actions": {"forwarding": "accept"},
                        }
                    ]
                },
            },
        ]
    },
}
BASE = ["--mac", "00:00:5e:00:53:01", "--device-port", "1", "--uplink-port", "2"]


@pytest.fixture
def mud_path(tmp_path: Path) -> Path:
    path = tmp_path / "bulb.json"
    path.write_text(json.dumps(MUD_DOC))
    return path


def test_ovs_ofctl_output(mud_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "compile",
            str(mud_path),
            *BASE,
            "--resolve",
            "service.bms.example.com=192.0.2.7,2001:db8::7",
            "--controller",
            "urn:ietf:params:mud:dns=10.0.0.53",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0
    lines = out.splitlines()
    assert any("nw_dst=192.0.2.7" in ln and "tcp_dst=443" in ln and "goto_table:4" in ln for ln in lines)
    assert any("nw_src=192.0.2.7" in ln and "tcp_flags=+syn-ack" in ln and "actions=drop" in ln for ln in lines)
    assert any("udp_dst=53" in ln for ln in lines) and "2001:db8::7" not in out  # IPv4 ACL: v4 members only
    assert "no-default-servers" in err  # NTP was not configured
    if shutil.which("ovs-ofctl"):
        proc = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "parse-flows", "/dev/stdin"],
            input=out,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("OFPT_FLOW_MOD") == len(lines)


def test_unresolved_name_gives_no_acl_flows_and_a_warning(mud_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(mud_path), *BASE, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    flows = json.loads(out)["flows"]
    assert not [f for f in flows if "ipv4_dst" in f["match"] or "ipv4_src" in f["match"]]
    assert "unresolved-address-set" in err and "empty-ace" in err


def test_mud_url_override_and_table_format(mud_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(mud_path), *BASE, "--format", "json", "--mud-url", "https://x.example/y"]) == 0
    assert json.loads(capsys.readouterr().out)["mud_url"] == "https://x.example/y"
    assert main(["compile", str(mud_path), *BASE, "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("TABLE") and "classify_src" in out


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--mac", "nope", "--device-port", "1", "--uplink-port", "2"], "bad-device"),
        ([*BASE, "--resolve", "no-equals-sign"], "bad-argument"),
    ],
)
def test_errors_exit_2(mud_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], reason: str) -> None:
    assert main(["compile", str(mud_path), *argv]) == 2
    assert capsys.readouterr().err.startswith(f"ERROR {reason}: ")


def test_bad_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compile", str(bad), *BASE]) == 2
    assert capsys.readouterr().err.startswith("ERROR ")
    assert main(["compile", str(tmp_path / "missing.json"), *BASE]) == 2
