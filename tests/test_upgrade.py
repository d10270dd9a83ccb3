"""Dialect upgrade: every UNSW pre-RFC profile converts to a valid RFC 8520 file, rewrites are
reported, and the conversion never adds access."""

from __future__ import annotations

import json
import pathlib

import pytest

from mud_ryu import cli
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile import upgrade as dialect_upgrade
from mud_ryu.mudfile.model import Forwarding

CORPUS = pathlib.Path(__file__).parent / "fixtures" / "corpus"
UNSW = sorted((CORPUS / "iot-onboarding+mudfiles").glob("unsw__*.json"))


def test_there_are_28_unsw_profiles() -> None:
    assert len(UNSW) == 28


@pytest.mark.parametrize("path", UNSW, ids=lambda p: p.name)
def test_unsw_profile_upgrades_to_a_valid_file(path: pathlib.Path) -> None:
    original = path.read_bytes()
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.parse(original)
    assert info.value.finding.reason == "pre-rfc-dialect"
    converted, notes = dialect_upgrade.upgrade(original)
    parsed = mudfile.parse(converted)
    assert notes and notes[0].startswith("'ietf-access-control-list:access-lists'")
    # Same policy size or smaller (only never-matching ACEs may go), every ACE still an accept.
    old = json.loads(original)["ietf-access-control-list:access-lists"]["acl"]
    old_aces = sum(len(acl["aces"]["ace"]) for acl in old)
    dropped = sum(int(n.split("(x")[1].rstrip(")")) if "(x" in n else 1 for n in notes if "dropped" in n)
    assert parsed.mud.ace_count == old_aces - dropped
    assert all(ace.forwarding is Forwarding.ACCEPT for acl in parsed.mud.from_device for ace in acl.aces)


def test_specific_rewrites() -> None:
    data = (CORPUS / "iot-onboarding+mudfiles" / "unsw__samsungsmartcamMud.json").read_bytes()
    converted, notes = dialect_upgrade.upgrade(data)
    tree = json.loads(converted)
    acls = {acl["name"]: acl for acl in tree["ietf-access-control-list:acls"]["acl"]}
    assert acls["from-ethernet-samsungsmartcam"]["type"] == "eth-acl-type"
    assert acls["from-ipv4-samsungsmartcam"]["type"] == "mixed-eth-ipv4-acl-type"
    ethertypes = {
        ace["matches"]["eth"]["ethertype"]
        for acl in acls.values()
        for ace in acl["aces"]["ace"]
        if "eth" in ace.get("matches", {})
    }
    # EAPOL and an 802.3 length next to local-networks (IP addresses) can never match: dropped, never widened.
    assert ethertypes == {0x0800}
    assert {n.split(": ", 1)[1] for n in notes if "dropped" in n} == {
        "ethertype 0x888e is not IP but the ACE matches local-networks, it can never match",
        "ethertype 0x0006 is not IP but the ACE matches local-networks, it can never match",
    }
    ranges = [
        ace["matches"][l4][leaf]
        for acl in acls.values()
        for ace in acl["aces"]["ace"]
        for l4 in ("tcp", "udp")
        for leaf in ("source-port", "destination-port")
        if "lower-port" in ace["matches"].get(l4, {}).get(leaf, {})
    ]
    assert ranges and all("operator" not in r for r in ranges)
    assert any("0x0006" in n and "802.3" in n for n in notes)
    model = mudfile.parse(converted).mud
    ports = {
        ace.matches.tcp.src_port
        for acl in model.to_device + model.from_device
        for ace in acl.aces
        if ace.matches.tcp is not None and ace.matches.tcp.src_port is not None
    }
    assert any(p.operator == "range" and (p.lower, p.upper) == (30000, 49000) for p in ports)


def test_bare_addresses_get_host_prefix_and_wrong_family_ace_is_dropped() -> None:
    data = (CORPUS / "iot-onboarding+mudfiles" / "unsw__augustdoorbellcamMud.json").read_bytes()
    converted, notes = dialect_upgrade.upgrade(data)
    text = converted.decode()
    assert '"fdc1:1bdc:1e84:0:0:0:0:1/128"' in text and '"192.168.1.1"' not in text
    assert any("'from-ipv6-augustdoorbellcam-2' dropped" in n for n in notes)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "json-syntax"),
        ((CORPUS / "iot-onboarding+mudmaker" / "my-controller.json").read_bytes(), "upgrade-not-applicable"),
        (
            b'{"ietf-access-control-list:access-lists": {}, "ietf-access-control-list:acls": {}}',
            "upgrade-not-applicable",
        ),
    ],
)
def test_upgrade_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(mudfile.MudFileError) as info:
        dialect_upgrade.upgrade(data)
    assert info.value.finding.reason == reason


def test_cli_upgrade_to_file_and_stdout(tmp_path: pathlib.Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    src = CORPUS / "iot-onboarding+mudfiles" / "unsw__HueBulbMud.json"
    out = tmp_path / "new.json"
    assert cli.main(["upgrade", str(src), "-o", str(out)]) == 0
    err = capsysbinary.readouterr().err.decode()
    assert "upgrade: 'ietf-access-control-list:access-lists' -> 'ietf-access-control-list:acls'" in err
    assert "upgrade: ethertype '0x0800' -> 2048" in err
    mudfile.load(out)
    assert cli.main(["upgrade", str(src)]) == 0
    assert capsysbinary.readouterr().out == out.read_bytes()


def test_cli_upgrade_failures(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new.json"
    osmud = CORPUS / "osmud+osmud" / "test__lightbulb2000.json"  # older draft: acl-type, not convertible
    assert cli.main(["upgrade", str(osmud), "-o", str(out)]) == 1
    assert "still INVALID: yang-unknown-node" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["upgrade", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
