"""mudfile.parse/load: the model it builds, the MUD rules, and the hostile inputs of THREATS.md 8-10."""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import pytest

from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile import yangcheck
from mud_ryu.mudfile.model import Direction, Forwarding, PortMatch
from tests.hostile_mud import ACLS, HOSTILE, MUD, base_doc, dumps, first_ace

CORPUS = pathlib.Path(__file__).parent / "fixtures" / "corpus"


def reason_of(doc: Any) -> str:
    data = doc if isinstance(doc, bytes) else dumps(doc)
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.parse(data)
    return info.value.finding.reason


def test_base_document_model() -> None:
    parsed = mudfile.parse(dumps(base_doc()))
    mud = parsed.mud
    assert parsed.warnings == ()
    assert (mud.mud_version, mud.mud_url, mud.cache_validity, mud.is_supported) == (
        1,
        "https://things.example.com/lamp.json",
        48,
        True,
    )
    assert [a.name for a in mud.from_device] == ["fr"] and [a.name for a in mud.to_device] == ["to"]
    cloud, dns = mud.from_device[0].aces
    assert cloud.forwarding is Forwarding.ACCEPT
    assert cloud.matches.ipv4 is not None and cloud.matches.ipv4.dst_dnsname == "cloud.example.com"
    assert cloud.matches.ipv4.protocol == 6
    assert cloud.matches.tcp is not None
    assert cloud.matches.tcp.dst_port == PortMatch("eq", port=443)
    assert cloud.matches.tcp.direction_initiated is Direction.FROM_DEVICE
    assert dns.matches.mud is not None and dns.matches.mud.controller == "urn:ietf:params:mud:dns"
    assert mud.ace_count == 3


def test_normalisation() -> None:
    doc = base_doc()
    doc[ACLS]["acl"][0]["type"] = "ietf-access-control-list:mixed-eth-ipv4-acl-type"
    ace = first_ace(doc)
    ace["matches"]["ipv4"] = {"protocol": 6, "destination-ipv4-network": "10.1.2.3/8"}
    ace["matches"]["eth"] = {"ethertype": "ipv4", "destination-mac-address": "AA:BB:CC:DD:EE:FF"}
    ace["matches"]["tcp"]["destination-port"] = {"lower-port": 1000, "upper-port": 2000}
    ace["actions"]["forwarding"] = "ietf-access-control-list:accept"
    doc[ACLS]["acl"][1]["aces"]["ace"][0]["matches"]["ipv6"] = doc[ACLS]["acl"][1]["aces"]["ace"][0]["matches"].pop(
        "ipv4"
    )
    doc[ACLS]["acl"][1]["type"] = "ipv6-acl-type"
    doc[ACLS]["acl"][1]["aces"]["ace"][0]["matches"]["ipv6"]["source-ipv6-network"] = "2001:DB8:0:0::1/32"
    mud = mudfile.parse(dumps(doc)).mud
    first = mud.from_device[0]
    assert first.type == "mixed-eth-ipv4-acl-type"
    m = first.aces[0].matches
    assert m.ipv4 is not None and m.ipv4.dst_network == "10.0.0.0/8"
    assert m.eth is not None and m.eth.ethertype == 0x0800 and m.eth.dst_mac == "aa:bb:cc:dd:ee:ff"
    assert m.tcp is not None and m.tcp.dst_port == PortMatch("range", lower=1000, upper=2000)
    to = mud.to_device[0].aces[0].matches.ipv6
    assert to is not None and to.version == 6 and to.src_network == "2001:db8::/32"


def test_nist_abstractions_and_extension_warning() -> None:
    parsed = mudfile.load(
        CORPUS / "usnistgov+nist-mud" / "test__unittest__mud-quarantine-test__mudfile-quarantine-test.json"
    )
    assert [w.reason for w in parsed.warnings] == ["unknown-node-stripped"]
    assert parsed.warnings[0].path == "/ietf-mud:mud/nist-mud:quarantined-device-policy"
    mfg = mudfile.load(
        CORPUS
        / "usnistgov+nist-mud"
        / "test__unittest__mud-local-and-same-mfg-test__mudfile-local-and-same-mfg-test.json"
    ).mud
    flags = {
        (ace.matches.mud.local_networks, ace.matches.mud.same_manufacturer)
        for acl in mfg.from_device
        for ace in acl.aces
        if ace.matches.mud is not None
    }
    assert (True, False) in flags and (False, True) in flags


def test_unsupported_leaves_are_reported_not_dropped() -> None:
    doc = base_doc()
    first_ace(doc)["matches"]["ipv4"]["ttl"] = 3
    first_ace(doc)["matches"]["tcp"]["flags"] = "syn"
    m = mudfile.parse(dumps(doc)).mud.from_device[0].aces[0].matches
    assert m.ipv4 is not None and m.ipv4.unsupported == ("ttl",)
    assert m.tcp is not None and m.tcp.unsupported == ("flags",)


def test_reject_is_drop_with_warning() -> None:
    doc = base_doc()
    first_ace(doc)["actions"]["forwarding"] = "reject"
    parsed = mudfile.parse(dumps(doc))
    assert parsed.mud.from_device[0].aces[0].forwarding is Forwarding.REJECT
    assert not Forwarding.REJECT.allows
    assert [(w.reason, w.path) for w in parsed.warnings] == [
        ("reject-as-drop", f"/{ACLS}/acl/0/aces/ace/0/actions/forwarding")
    ]


def test_other_warnings() -> None:
    doc = base_doc()
    doc[ACLS]["acl"].append(
        {
            "name": "unused",
            "aces": {"ace": [{"name": "any", "matches": {}, "actions": {"forwarding": "accept"}}]},
        }
    )
    doc[MUD]["from-device-policy"]["access-lists"]["access-list"].append({"name": "unused"})
    doc[MUD]["acme-ext:thing"] = {"x": 1}
    reasons = [w.reason for w in mudfile.parse(dumps(doc)).warnings]
    assert reasons == ["unknown-node-stripped", "ace-matches-any"]
    doc[MUD]["from-device-policy"]["access-lists"]["access-list"].pop()
    assert "acl-unreferenced" in [w.reason for w in mudfile.parse(dumps(doc)).warnings]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_rejected_with_its_reason(name: str) -> None:
    data, reason = HOSTILE[name]
    assert reason_of(data) == reason


def test_hostile_reasons_are_distinct() -> None:
    reasons = [reason for _data, reason in HOSTILE.values()]
    assert len(reasons) == len(set(reasons))


def test_error_paths_point_at_the_node() -> None:
    doc = base_doc()
    first_ace(doc, acl=1)["matches"]["ipv4"]["ietf-acldns:dst-dnsname"] = "x.example.com"
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.parse(dumps(doc))
    assert info.value.finding.reason == "dnsname-wrong-direction"
    assert info.value.finding.path == f"/{ACLS}/acl/1/aces/ace/0/matches/ipv4/ietf-acldns:dst-dnsname"


def _mixed_doc() -> dict[str, Any]:
    """A file with an ipv4 and an ipv6 ACL: RFC 8519's `when` on /acls/acl/type then passes for
    every ACE, so the per-ACL type check of mud_ryu.mudfile.semantic is what catches a mismatch."""
    doc = base_doc()
    v6 = copy.deepcopy(doc[ACLS]["acl"][1])
    v6["name"] = "to6"
    v6["type"] = "ipv6-acl-type"
    v6["aces"]["ace"][0]["matches"]["ipv6"] = v6["aces"]["ace"][0]["matches"].pop("ipv4")
    doc[ACLS]["acl"].append(v6)
    doc[MUD]["to-device-policy"]["access-lists"]["access-list"].append({"name": "to6"})
    return doc


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d[MUD].update({"mud-version": 2}), "mud-version-unsupported"),
        (lambda d: d[MUD].update({"mud-signature": "http://x.example.com/s.p7s"}), "mud-url-not-https"),
        (lambda d: d[MUD].update({"mud-url": "https://x.example.com/" + "a" * 300}), "mud-url-too-long"),
        (lambda d: d[MUD].update({"cache-validity": 0}), "yang-out-of-range"),
        (lambda d: d[MUD].update({"ietf-mud:cache-validity": 2}), "yang-duplicate-node"),
        (lambda d: d[MUD].update({"last-update": "yesterday"}), "yang-pattern"),
        (lambda d: d[MUD].update({"extensions": ["x" * 41]}), "yang-length"),
        (lambda d: d.update({"ietf-mud:whatever": 1}), "yang-unknown-node"),
        (lambda d: d.update({"unqualified": 1}), "yang-unknown-node"),
        (lambda d: first_ace(d)["matches"]["ipv4"].update({"ietf-acldns:dst-dnsname": "10.0.0.1"}), "dnsname-invalid"),
        (lambda d: first_ace(d)["actions"].update({"forwarding": "permit"}), "yang-type"),
        (lambda d: first_ace(d).pop("actions"), "yang-missing-mandatory"),
        (lambda d: d[ACLS]["acl"][0]["aces"]["ace"].append(first_ace(d)), "yang-not-unique"),
        (
            lambda d: first_ace(d)["matches"]["tcp"].update({"destination-port": {"lower-port": 9, "upper-port": 1}}),
            "yang-must",
        ),
        (
            lambda d: first_ace(d)["matches"].update({"eth": {"ethertype": "arp"}}),
            "acl-type-mismatch",  # eth in an ipv4 ACL while no ACL of the file is eth-typed: RFC 8519 `when`
        ),
        (lambda d: d[ACLS]["acl"][0].update({"type": "mixed-eth-ipv6-acl-type"}), "acl-type-mismatch"),
        (lambda d: first_ace(d)["matches"].update({"egress-interface": "eth0"}), "yang-dangling-reference"),
    ],
)
def test_rules(change: Any, reason: str) -> None:
    doc = base_doc()
    change(doc)
    assert reason_of(doc) == reason


def test_per_acl_type_check_in_mixed_file() -> None:
    doc = _mixed_doc()
    assert mudfile.parse(dumps(doc)).mud.to_device[1].type == "ipv6-acl-type"
    first_ace(doc)["matches"]["ipv6"] = first_ace(doc)["matches"].pop("ipv4")
    assert reason_of(doc) == "acl-type-mismatch"


def test_ethertype_must_agree_with_ip_version() -> None:
    doc = base_doc()
    doc[ACLS]["acl"][0]["type"] = "mixed-eth-ipv4-acl-type"
    first_ace(doc)["matches"]["eth"] = {"ethertype": "ipv6"}
    assert reason_of(doc) == "match-protocol-mismatch"


def test_icmp_protocol_per_version() -> None:
    doc = base_doc()
    first_ace(doc)["matches"].pop("tcp")
    first_ace(doc)["matches"]["icmp"] = {"type": 8}
    first_ace(doc)["matches"]["ipv4"]["protocol"] = 58
    assert reason_of(doc) == "match-protocol-mismatch"
    first_ace(doc)["matches"]["ipv4"]["protocol"] = 1
    assert mudfile.parse(dumps(doc)).mud.from_device[0].aces[0].matches.icmp is not None


def test_caps_are_limits_not_truncation() -> None:
    doc = base_doc()
    aces = [
        {"name": f"a{i}", "matches": {"ipv4": {"protocol": 17}}, "actions": {"forwarding": "accept"}}
        for i in range(mudfile.MAX_ACES - 1)
    ]
    doc[ACLS]["acl"][0]["aces"]["ace"] = aces
    assert mudfile.parse(dumps(doc)).mud.ace_count == mudfile.MAX_ACES
    aces.append({"name": "one-more", "matches": {}, "actions": {"forwarding": "drop"}})
    assert reason_of(doc) == "too-many-aces"


def test_load(tmp_path: pathlib.Path) -> None:
    assert mudfile.load(CORPUS / "iot-onboarding+mudmaker" / "my-controller.json").mud.model_name == "my-controller"
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.load(tmp_path / "absent.json")
    assert info.value.finding.reason == "file-unreadable"
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (mudfile.MAX_FILE_BYTES + 1))
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.load(big)
    assert info.value.finding.reason == "file-too-large"
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.load(tmp_path)
    assert info.value.finding.reason == "file-unreadable"


def test_pre_rfc_dialect_points_to_upgrade() -> None:
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.load(CORPUS / "iot-onboarding+mudfiles" / "unsw__HueBulbMud.json")
    assert info.value.finding.reason == "pre-rfc-dialect"
    assert "mud-ryu upgrade" in info.value.finding.message


def test_schema_is_built_once() -> None:
    assert yangcheck.schema() is yangcheck.schema()


def test_error_is_a_valueerror_with_finding() -> None:
    err = mudfile.MudFileError("x-reason", "/a", "msg")
    assert isinstance(err, ValueError) and err.finding.reason == "x-reason" and str(err.finding) == "x-reason /a: msg"
    assert json.loads(json.dumps(str(err)))


def test_acl_count_cap() -> None:
    doc = base_doc()
    template = doc[ACLS]["acl"][1]
    doc[ACLS]["acl"] += [dict(template, name=f"extra{i}") for i in range(mudfile.MAX_ACLS - 1)]
    assert reason_of(doc) == "too-many-acls"
    doc[ACLS]["acl"].pop()
    assert [w.reason for w in mudfile.parse(dumps(doc)).warnings].count("acl-unreferenced") == mudfile.MAX_ACLS - 2


@pytest.mark.parametrize("url", ["https://[lighting.example.com/x", "https://[::1/x", "https://a]b/x"])
def test_unparsable_mud_url_is_a_finding_not_a_crash(url: str) -> None:
    # Found by the mutation property test: urllib raised ValueError("Invalid IPv6 URL") out of parse().
    doc = base_doc()
    doc[MUD]["mud-url"] = url
    with pytest.raises(mudfile.MudFileError) as info:
        mudfile.parse(dumps(doc))
    assert info.value.finding.reason == "mud-url-not-https"


@pytest.mark.parametrize(
    ("signature", "ok"),
    [
        ("bulb.p7s", True),
        ("sig/bulb.p7s", True),
        ("/abs/bulb.p7s", False),
        ("//other.example/bulb.p7s", False),
        ("http://x.example/s.p7s", False),
    ],
)
def test_mud_signature_may_be_relative(signature: str, ok: bool) -> None:
    # draft-ietf-iotops-mud-acceptable-urls: "The MUD-SIGNATURE attribute ... SHOULD be a relative URI".
    doc = base_doc()
    doc[MUD]["mud-signature"] = signature
    if ok:
        assert mudfile.parse(dumps(doc)).mud.mud_signature == signature
    else:
        with pytest.raises(mudfile.MudFileError):
            mudfile.parse(dumps(doc))
