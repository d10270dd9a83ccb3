"""``/mud/v1/my-controller`` and ``mud-ryu my-controller`` against the real backend: the handler and the CLI over an
:class:`~mud_ryu.api.backend.EnforcerBackend` whose enforcer (the simulator lab) compiles the entries into flows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mud_ryu.api.backend import EnforcerBackend
from mud_ryu.api.handlers import handle
from mud_ryu.cli import main
from mud_ryu.enforcer.operator import set_my_controller
from mud_ryu.enforcer.state import Effect
from mud_ryu.settings import DefaultPolicy
from tests.api_server import serve_api
from tests.enforcer_lab import BULB, IPS, Lab
from tests.packets import Packet
from tests.rest_fakes import FakeBackend

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "usnistgov+nist-mud"
MYCTL = CORPUS / "test__unittest__mud-mycontrollerclass-test__mudfile-mycontrollerclass-test.json"
MYCTL_URL = "https://mycontrollerclass-test.nist.local/super1"
SETTINGS_URL = "https://a.nist.local/settings-only"
TOKEN = "my-controller-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
PATH = "/mud/v1/my-controller"
MINE, SETTING, DEFAULT = "198.51.100.12", "198.51.100.7", "192.0.2.99"


def _to(address: str) -> Packet:
    return Packet.udp(1, BULB, "02:00:00:00:00:fe", IPS[BULB], address, 40000, 8002)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "state", DefaultPolicy.ALLOW, my_controller=(DEFAULT,),
              my_controller_by_url={SETTINGS_URL: (SETTING,)})  # fmt: skip
    lab.connect()
    lab.announce(BULB, 1, MYCTL_URL)
    lab.resolve(MYCTL_URL, MYCTL.read_bytes())
    yield lab
    lab.store.close()
    lab.trust_store.close()


def _backend(lab: Lab) -> EnforcerBackend:
    def execute(effects: Iterable[Effect]) -> None:
        lab.apply(list(effects))

    return EnforcerBackend(lab.enforcer, [], execute, lambda: 1_767_225_600.0)


def _call(
    lab: Lab, method: str, path: str, body: object = None, headers: dict[str, str] | None = None,
    token: str | None = TOKEN,
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    raw = b"" if body is None else json.dumps(body).encode()
    response = handle(method, path, AUTH if headers is None else headers, raw, _backend(lab), token)
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return response.status, document


def test_get_lists_the_default_and_entries_sorted_with_their_source(lab: Lab) -> None:
    assert _call(lab, "GET", PATH, headers={}) == (200, {
        "default": [DEFAULT],
        "entries": [{"url": SETTINGS_URL, "addresses": [SETTING], "source": "settings"}],
    })  # fmt: skip
    assert _call(lab, "PUT", PATH, {"url": SETTINGS_URL, "addresses": ["10.9.0.0/16"]})[0] == 200
    assert _call(lab, "PUT", PATH, {"url": MYCTL_URL, "addresses": [MINE, MINE]})[0] == 200
    assert _call(lab, "GET", PATH, headers={}) == (200, {
        "default": [DEFAULT],
        "entries": [
            {"url": SETTINGS_URL, "addresses": ["10.9.0.0/16"], "source": "operator"},  # replaces the settings'
            {"url": MYCTL_URL, "addresses": [MINE], "source": "operator"},
        ],
    })  # fmt: skip


def test_put_then_delete_changes_the_flows(lab: Lab) -> None:
    assert lab.sim.is_output(_to(DEFAULT), 5) and not lab.sim.is_output(_to(MINE), 5)
    status, document = _call(lab, "PUT", PATH, {"url": MYCTL_URL, "addresses": [MINE]})
    assert (status, document["ok"], document["reason"]) == (200, True, "set") and MINE in document["message"]
    assert set(document) == {"ok", "reason", "message"}
    assert lab.sim.is_output(_to(MINE), 5) and not lab.sim.is_output(_to(DEFAULT), 5)
    status, document = _call(lab, "DELETE", f"{PATH}?url={quote(MYCTL_URL, safe='')}")
    assert (status, document["ok"], document["reason"]) == (200, True, "cleared")
    assert lab.sim.is_output(_to(DEFAULT), 5) and not lab.sim.is_output(_to(MINE), 5)
    assert _call(lab, "DELETE", f"{PATH}?url={quote(MYCTL_URL, safe='')}")[1]["error"] == "unknown-entry"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "http://a.nist.local/x", "addresses": [MINE]}, 400, "bad-url:not-https"),
        ({"url": "https://a.nist.local/x#f", "addresses": [MINE]}, 400, "bad-url:fragment"),
        ({"url": MYCTL_URL, "addresses": ["my.controller"]}, 400, "bad-address"),
        ({"url": MYCTL_URL, "addresses": ["198.51.100.12/24"]}, 400, "bad-address"),
        ({"url": MYCTL_URL, "addresses": ["x" * 65]}, 400, "bad-address"),
        ({"url": MYCTL_URL, "addresses": ["0.0.0.0/0"]}, 400, "too-broad"),
        ({"url": MYCTL_URL, "addresses": ["::/0"]}, 400, "too-broad"),
        ({"url": MYCTL_URL}, 400, "bad-field"),
        ({"addresses": [MINE]}, 400, "bad-field"),
        ({"url": 7, "addresses": [MINE]}, 400, "bad-field"),
        ({"url": MYCTL_URL, "addresses": MINE}, 400, "bad-field"),
        ({"url": MYCTL_URL, "addresses": []}, 400, "bad-field"),
        ({"url": MYCTL_URL, "addresses": [MINE] * 17}, 400, "bad-field"),
        ({"url": MYCTL_URL, "addresses": [MINE, None]}, 400, "bad-field"),
        ({"url": MYCTL_URL, "addresses": [MINE], "extra": 1}, 400, "unknown-field"),
    ],
)
def test_put_refusals(lab: Lab, body: dict[str, Any], status: int, code: str) -> None:
    table = lab.sim.table_hash()
    got, document = _call(lab, "PUT", PATH, body)
    assert (got, document["error"]) == (status, code), document
    assert lab.store.my_controllers() == {} and lab.sim.table_hash() == table


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (PATH, 400, "bad-query"),
        (f"{PATH}?url=", 400, "bad-query"),
        (f"{PATH}?other=1", 400, "bad-query"),
        (f"{PATH}?url={quote('http://a.nist.local/x', safe='')}", 400, "bad-url:not-https"),
        (f"{PATH}?url={quote(SETTINGS_URL, safe='')}", 404, "unknown-entry"),  # a settings entry is not the API's
        (f"{PATH}/x", 404, "not-found"),
    ],
)
def test_delete_refusals(lab: Lab, path: str, status: int, code: str) -> None:
    got, document = _call(lab, "DELETE", path)
    assert (got, document["error"]) == (status, code), document


@pytest.mark.parametrize(("method", "path"), [("PUT", PATH), ("DELETE", f"{PATH}?url={quote(MYCTL_URL)}")])
@pytest.mark.parametrize(
    ("headers", "token", "status", "code"),
    [
        ({"Content-Type": "application/json"}, TOKEN, 401, "missing-token"),
        ({**AUTH, "Authorization": "Bearer wrong"}, TOKEN, 401, "bad-token"),
        (AUTH, None, 403, "token-not-configured"),
    ],
)
def test_changes_need_the_token(
    lab: Lab, method: str, path: str, headers: dict[str, str], token: str | None, status: int, code: str
) -> None:
    lab.apply(list(set_my_controller(lab.enforcer, MYCTL_URL, [MINE]).effects))  # a DELETE let through would work
    got, document = _call(lab, method, path, {"url": MYCTL_URL, "addresses": [SETTING]} if method == "PUT" else None,
                          headers, token)  # fmt: skip
    assert (got, document["error"]) == (status, code)
    assert lab.store.my_controllers() == {MYCTL_URL: (MINE,)}


def test_get_is_open_and_other_methods_are_405(lab: Lab) -> None:
    assert _call(lab, "GET", PATH, headers={}, token=None)[0] == 200
    status, document = _call(lab, "POST", PATH, {"url": MYCTL_URL, "addresses": [MINE]})
    assert (status, document["error"]) == (405, "method-not-allowed")
    assert _call(lab, "GET", f"{PATH}?url=x", headers={})[1]["error"] == "bad-query"


def test_the_fake_backend_speaks_the_same_contract(lab: Lab) -> None:
    """tests.rest_fakes (used by the other REST tests) answers like the real backend."""
    fake = FakeBackend(my_controller_default=(DEFAULT,), my_controller_settings={SETTINGS_URL: (SETTING,)})
    for method, path, body in [
        ("GET", PATH, None),
        ("PUT", PATH, {"url": MYCTL_URL, "addresses": ["0.0.0.0/0"]}),
        ("PUT", PATH, {"url": "HTTPS://MyControllerClass-Test.nist.local/super1", "addresses": [MINE, MINE]}),
        ("GET", PATH, None),
        ("DELETE", f"{PATH}?url={quote(SETTINGS_URL, safe='')}", None),
        ("DELETE", f"{PATH}?url={quote(MYCTL_URL, safe='')}", None),
    ]:
        raw = b"" if body is None else json.dumps(body).encode()
        real = _call(lab, method, path, body)
        faked = handle(method, path, AUTH, raw, fake, TOKEN)
        assert faked.status == real[0]
        fake_doc = json.loads(faked.body)
        assert fake_doc.get("error") == real[1].get("error") and fake_doc.get("reason") == real[1].get("reason")
        if method == "GET":
            assert fake_doc == real[1]


# ---- the CLI -------------------------------------------------------------------------------------------------


@pytest.fixture
def api(lab: Lab) -> Iterator[str]:
    yield from serve_api(_backend(lab), TOKEN)


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MUD_RYU_TOKEN", raising=False)
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_set_clear(lab: Lab, api: str, token_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "my-controller", "--api", api)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"default: {DEFAULT}"
    assert lines[1].split() == ["URL", "SOURCE", "ADDRESSES"] and lines[2].split() == [
        SETTINGS_URL,
        "settings",
        SETTING,
    ]

    code, out, _ = _run(capsys, "my-controller", "--api", api, "--token-file", token_file, "--url", MYCTL_URL,
                        "--set", MINE, "2001:DB8::1")  # fmt: skip
    assert code == 0 and out.startswith("OK set: ") and "2001:db8::1" in out
    assert lab.sim.is_output(_to(MINE), 5)
    code, out, _ = _run(capsys, "my-controller", "--api", api, "--json")
    assert code == 0 and json.loads(out)["entries"][1] == {
        "url": MYCTL_URL, "addresses": [MINE, "2001:db8::1"], "source": "operator"
    }  # fmt: skip

    code, out, _ = _run(capsys, "my-controller", "--api", api, "--token-file", token_file, "--url", MYCTL_URL,
                        "--clear")  # fmt: skip
    assert code == 0 and out.startswith("OK cleared: ")
    assert not lab.sim.is_output(_to(MINE), 5) and lab.sim.is_output(_to(DEFAULT), 5)
    code, out, err = _run(capsys, "my-controller", "--api", api, "--token-file", token_file, "--url", MYCTL_URL,
                          "--clear")  # fmt: skip
    assert (code, out) == (1, "") and err.startswith("error: unknown-entry (HTTP 404): ")


def test_cli_refusals(lab: Lab, api: str, token_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "my-controller", "--api", api, "--token-file", token_file, "--url", MYCTL_URL,
                        "--set", "0.0.0.0/0")  # fmt: skip
    assert code == 1 and err.startswith("error: too-broad (HTTP 400)")
    code, _, err = _run(capsys, "my-controller", "--api", api, "--url", MYCTL_URL, "--set", MINE)
    assert code == 2 and "needs the API token" in err  # refused before any request
    for usage in (["--set", MINE], ["--url", MYCTL_URL], ["--clear"]):
        code, _, err = _run(capsys, "my-controller", "--api", api, "--token-file", token_file, *usage)
        assert code == 2 and "--url goes with" in err
    assert lab.store.my_controllers() == {}
