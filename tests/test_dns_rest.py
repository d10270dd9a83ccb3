"""``GET /mud/v1/dns`` and ``mud-ryu dns`` over the real :class:`~mud_ryu.api.backend.EnforcerBackend`: two profiles
watching one DNS name through an enforcer on the table simulator, answers fed through ``Enforcer.dns_seen`` as the
app feeds them -- the bound address shows up with the time it has left, and spoofed or unsolicited answers bind
nothing but move their counters. Also: the filter, the refused queries, capped strings, the in-memory fake answering
like the real backend, and a device view rendering its flows once."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mud_ryu.api.backend import EnforcerBackend
from mud_ryu.api.codec import MAX_STRING_CHARS
from mud_ryu.api.handlers import handle
from mud_ryu.api.types import DnsNameView
from mud_ryu.cli import main
from mud_ryu.dns.frame import scan_dns
from mud_ryu.dns.types import COUNTERS
from mud_ryu.enforcer.state import Effect
from tests import dns_frames as dns
from tests.api_server import serve_api
from tests.enforcer_lab import BULB, BULB2, IPS, NOW, UPLINK, Lab
from tests.rest_fakes import FakeBackend

URL_A = "https://mud.test/cloudy-a.json"
URL_B = "https://mud.test/cloudy-b.json"
NAME = "api.vendor.example"
SPELLED = "API.Vendor.Example"  # profile B's spelling of the same name: listed once, normalised
OTHER = "updates.vendor.example"
RESOLVER = "10.0.0.53"
PATH = "/mud/v1/dns"
CLOCK = NOW + 100.0  # the backend's clock: 100 s after the answers below
TOKEN = "dns-token"


def _profile(url: str, names: Iterable[str]) -> bytes:
    """Device-initiated TCP 443 to each of ``names`` (dst-dnsname) and the return traffic (src-dnsname)."""
    out, back = [], []
    for i, name in enumerate(names):
        tcp_out = {"destination-port": {"operator": "eq", "port": 443}, "ietf-mud:direction-initiated": "from-device"}
        tcp_back = {"source-port": {"operator": "eq", "port": 443}, "ietf-mud:direction-initiated": "from-device"}
        out.append(
            {
                "name": f"out{i}",
                "actions": {"forwarding": "accept"},
                "matches": {"ipv4": {"protocol": 6, "ietf-acldns:dst-dnsname": name}, "tcp": tcp_out},
            }
        )
        back.append(
            {
                "name": f"back{i}",
                "actions": {"forwarding": "accept"},
                "matches": {"ipv4": {"protocol": 6, "ietf-acldns:src-dnsname": name}, "tcp": tcp_back},
            }
        )
    tree = {"ietf-mud:mud": {"mud-version": 1, "mud-url": url, "last-update": "2026-01-01T00:00:00+00:00",
                             "cache-validity": 48, "is-supported": True, "systeminfo": "cloudy",
                             "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
                             "to-device-policy": {"access-lists": {"access-list": [{"name": "to"}]}}},
            "ietf-access-control-list:acls": {"acl": [
                {"name": "fr", "type": "ipv4-acl-type", "aces": {"ace": out}},
                {"name": "to", "type": "ipv4-acl-type", "aces": {"ace": back}}]}}  # fmt: skip
    return json.dumps(tree).encode()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "state", dns_servers=(RESOLVER,))
    lab.connect()
    lab.announce(BULB, 1, URL_A)
    lab.resolve(URL_A, _profile(URL_A, [NAME, OTHER]))
    lab.announce(BULB2, 2, URL_B)
    lab.resolve(URL_B, _profile(URL_B, [SPELLED]))
    assert lab.enforcer.devices[BULB].state == lab.enforcer.devices[BULB2].state == "enforced"
    yield lab
    lab.store.close()
    lab.trust_store.close()


def _query(txid: int) -> object:
    return scan_dns(dns.query_frame(dns.query(NAME, txid=txid), client_ip=IPS[BULB], resolver_ip=RESOLVER, mac=BULB))


def _answer(address: str, ttl: int, *, txid: int, resolver: str = RESOLVER) -> object:
    body = dns.response(NAME, [dns.a(NAME, address, ttl)], txid=txid)
    return scan_dns(dns.answer_frame(body, client_ip=IPS[BULB], resolver_ip=resolver, mac=BULB))


def _backend(lab: Lab) -> EnforcerBackend:
    def execute(effects: Iterable[Effect]) -> None:
        lab.apply(list(effects))

    return EnforcerBackend(lab.enforcer, [], execute, lambda: CLOCK)


def _get(backend: Any, path: str = PATH, method: str = "GET") -> tuple[int, dict[str, Any]]:
    response = handle(method, path, {}, b"", backend, TOKEN)
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return response.status, document


def _counters(**moved: int) -> dict[str, int]:
    return {name: moved.get(name.replace("-", "_"), 0) for name in sorted(COUNTERS)}


def test_names_profiles_and_addresses_with_the_time_left(lab: Lab) -> None:
    assert _get(_backend(lab)) == (200, {
        "names": [
            {"name": NAME, "profiles": [URL_A, URL_B], "addresses": []},  # nothing answered yet: fail closed
            {"name": OTHER, "profiles": [URL_A], "addresses": []},
        ],
        "outstanding_queries": 0,
        "counters": _counters(),
    })  # fmt: skip
    lab.apply(lab.enforcer.dns_seen(_query(1), NOW, ingress=UPLINK))
    assert _get(_backend(lab))[1]["outstanding_queries"] == 1
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 300, txid=1), NOW, ingress=UPLINK))
    status, document = _get(_backend(lab))
    assert status == 200 and list(document) == ["names", "outstanding_queries", "counters"]
    assert document["names"][0] == {
        "name": NAME, "profiles": [URL_A, URL_B], "addresses": [{"address": "198.51.100.7", "expires_in_s": 200.0}]
    }  # fmt: skip
    assert document["outstanding_queries"] == 0
    assert document["counters"] == _counters(queries=1, answers_merged=1, addresses_added=1)


def test_spoofed_and_unsolicited_answers_are_ignored_and_counted(lab: Lab) -> None:
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.66", 300, txid=7), NOW, ingress=UPLINK))  # nobody asked
    lab.apply(lab.enforcer.dns_seen(_query(1), NOW, ingress=UPLINK))
    lab.apply(
        lab.enforcer.dns_seen(_answer("198.51.100.66", 300, txid=1, resolver="192.0.2.99"), NOW, ingress=UPLINK)
    )  # not ours
    lab.apply(
        lab.enforcer.dns_seen(_answer("198.51.100.66", 300, txid=0x4321), NOW, ingress=UPLINK)
    )  # wrong transaction id
    status, document = _get(_backend(lab))
    assert status == 200 and all(entry["addresses"] == [] for entry in document["names"])  # nothing bound
    assert document["outstanding_queries"] == 1  # the device's query still waits for its real answer
    assert document["counters"] == _counters(queries=1, unsolicited=1, not_resolver=1, wrong_txid=1)
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 30, txid=1), NOW, ingress=UPLINK))  # the real one
    document = _get(_backend(lab))[1]
    assert document["names"][0]["addresses"] == [{"address": "198.51.100.7", "expires_in_s": 0.0}]  # TTL 60 s floor
    assert document["counters"]["answers-merged"] == 1 and document["counters"]["unsolicited"] == 1
    lab.apply(lab.enforcer.dns_expire(NOW + 60))
    document = _get(_backend(lab))[1]
    assert document["names"][0]["addresses"] == [] and document["counters"]["expired"] == 1


@pytest.mark.parametrize("raw", [NAME, "API.VENDOR.EXAMPLE", "api.vendor.example.", "Api.Vendor.Example."])
def test_name_filter_is_exact_and_case_blind(lab: Lab, raw: str) -> None:
    status, document = _get(_backend(lab), f"{PATH}?name={raw}")
    assert status == 200 and [entry["name"] for entry in document["names"]] == [NAME]
    assert document["counters"] == _counters()  # the table's counters, whatever the filter


@pytest.mark.parametrize("raw", ["vendor.example", "pi.vendor.example", "api.vendor.example.com"])
def test_name_filter_without_a_match_lists_nothing(lab: Lab, raw: str) -> None:
    assert _get(_backend(lab), f"{PATH}?name={raw}") == (200, {
        "names": [], "outstanding_queries": 0, "counters": _counters()
    })  # fmt: skip


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"{PATH}?name=", "bad-name"),
        (f"{PATH}?name=a..b", "bad-name"),
        (f"{PATH}?name=bad%20name", "bad-name"),
        (f"{PATH}?name=b%C3%BCcher.example", "bad-name"),
        (f"{PATH}?name={'a' * 63 + '.'}{'b' * 63 + '.'}{'c' * 63 + '.'}{'d' * 63}", "bad-name"),  # 255 characters
        (f"{PATH}?name={NAME}&name={OTHER}", "bad-query"),
        (f"{PATH}?limit=3", "bad-query"),
        (f"{PATH}?name", "bad-query"),
    ],
)
def test_bad_queries(lab: Lab, path: str, code: str) -> None:
    for backend in (_backend(lab), FakeBackend()):
        status, document = _get(backend, path)
        assert (status, document["error"]) == (400, code), document


def test_read_is_open_and_the_only_method(lab: Lab) -> None:
    assert handle("GET", PATH, {}, b"", _backend(lab), None).status == 200  # no token configured, none sent
    for method in ("POST", "PUT", "DELETE"):
        status, document = _get(_backend(lab), PATH, method)
        assert (status, document["error"]) == (405, "method-not-allowed")
    assert _get(_backend(lab), f"{PATH}/{NAME}")[1]["error"] == "not-found"


def test_strings_are_capped() -> None:
    long_url = "https://mud.test/" + "x" * 5000
    fake = FakeBackend(dns_names={NAME: DnsNameView(NAME, (long_url,), ())})
    status, document = _get(fake)
    assert status == 200 and document["names"][0]["profiles"] == [long_url[:MAX_STRING_CHARS]]


def test_the_fake_backend_speaks_the_same_contract(lab: Lab) -> None:
    fake = FakeBackend()
    for path in (PATH, f"{PATH}?name={NAME}", f"{PATH}?name=API.Vendor.Example.", f"{PATH}?name=nothing.example"):
        (real_status, real), (fake_status, faked) = _get(_backend(lab), path), _get(fake, path)
        assert real_status == fake_status == 200
        assert list(real) == list(faked) and list(real["counters"]) == list(faked["counters"]) == sorted(COUNTERS)
        assert [e["name"] for e in real["names"]] == [e["name"] for e in faked["names"]]
        assert all(list(e) == ["name", "profiles", "addresses"] for e in real["names"] + faked["names"])
    lab.apply(lab.enforcer.dns_seen(_query(1), NOW, ingress=UPLINK))
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 300, txid=1), NOW, ingress=UPLINK))
    real_address, fake_address = (
        _get(_backend(lab))[1]["names"][0]["addresses"][0],
        _get(fake)[1]["names"][0]["addresses"][0],
    )
    assert list(real_address) == list(fake_address) == ["address", "expires_in_s"]
    assert fake.calls[-1] == ("dns", "None") and ("dns", NAME) in fake.calls  # the API hands it the normalised name


def test_device_view_counts_the_flows_it_lists(lab: Lab) -> None:
    backend = _backend(lab)
    listed = {d.mac: d.flow_count for d in backend.devices()}
    for mac in (BULB, BULB2):
        detail = backend.device(mac)
        assert detail is not None and detail.flow_count == len(detail.flows) == listed[mac] > 0
        assert list(detail.flows) == sorted(detail.flows)


# ---- the CLI against a real local HTTP server ----------------------------------------------------------------


@pytest.fixture
def api(lab: Lab) -> Iterator[str]:
    yield from serve_api(_backend(lab), TOKEN)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_and_counters(lab: Lab, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    lab.apply(lab.enforcer.dns_seen(_query(1), NOW, ingress=UPLINK))
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.66", 300, txid=9), NOW, ingress=UPLINK))  # wrong txid
    lab.apply(lab.enforcer.dns_seen(_answer("198.51.100.7", 300, txid=1), NOW, ingress=UPLINK))
    code, out, err = _run(capsys, "dns", "--api", api)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "EXPIRES", "IN", "PROFILES"]
    assert lines[1].split() == [NAME, "198.51.100.7", "200.0s", f"{URL_A},", URL_B]
    assert lines[2].split() == [OTHER, "-", "-", URL_A]
    assert "outstanding queries: 0" in lines
    assert (
        "spoofed or unsolicited answers ignored: not-resolver 0, unsolicited 0, wrong-txid 1, wrong-client 0" in lines
    )
    head = next(i for i, line in enumerate(lines) if line.split() == ["COUNTER", "VALUE"])
    counter_rows = dict(line.split() for line in lines[head + 1 :])
    assert set(counter_rows) == COUNTERS and list(counter_rows) == sorted(COUNTERS)
    assert (counter_rows["wrong-txid"], counter_rows["answers-merged"], counter_rows["unsolicited"]) == ("1", "1", "0")


def test_cli_json_and_filter(lab: Lab, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "dns", "--api", api, "--json")
    assert code == 0 and json.loads(out) == _get(_backend(lab))[1]
    code, out, _ = _run(capsys, "dns", "--api", api, "--json", "--name", "Updates.Vendor.Example.")
    assert code == 0 and [e["name"] for e in json.loads(out)["names"]] == [OTHER]
    code, out, _ = _run(capsys, "dns", "--api", api, "--name", "nothing.example")
    assert code == 0 and out.splitlines()[1] == ""  # the header, then no name


@pytest.mark.parametrize("bad", ["", "a..b", "x" * 300, "with space.example"])
def test_cli_refuses_a_bad_name_before_any_request(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "dns", "--api", "http://127.0.0.1:9", "--name", bad)  # port 9: nothing is asked
    assert (code, out) == (2, "") and err.startswith("error: --name must be a DNS host name")
