"""``mud-ryu check-update``: one line on stdout (ACCEPT / REJECT <code>), exit 0 / 3, both URLs gated first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mud_ryu.cli import main
from mud_ryu.fetch.urlgate import REASONS as GATE_REASONS
from mud_ryu.policy.rules import URL_CHANGE_REASONS

ROOT = "https://mud.example.com/household/toaster/model1945.json"


@pytest.mark.parametrize(
    ("pinned", "new", "line", "code"),
    [
        (ROOT, "https://mud.example.com/household/toaster/revision2.json", "ACCEPT", 0),
        (ROOT, "HTTPS://MUD.EXAMPLE.COM:443/household/toaster/model1945.json", "ACCEPT", 0),
        (ROOT, "https://other.example.com/household/toaster/model1945.json", "REJECT other-host", 3),
        (ROOT, "https://mud.example.com:8443/household/toaster/model1945.json", "REJECT other-port", 3),
        (ROOT, "https://mud.example.com/household/fridge/model1945.json", "REJECT other-path-prefix", 3),
        (ROOT, "https://mud.example.com/household/toaster/x/y.json", "REJECT path-depth", 3),
        (ROOT, "http://mud.example.com/household/toaster/revision2.json", "REJECT bad-url:not-https", 3),
        (ROOT, "https://mud.example.com/household/toaster/../../x.json", "REJECT bad-url:dot-segment", 3),
        (ROOT, "https://mud.example.com/household/toaster%2F..%2Fx.json", "REJECT bad-url:encoded-separator", 3),
        (ROOT, "https://user@mud.example.com/household/toaster/x.json", "REJECT bad-url:userinfo", 3),
        (ROOT, "https://mud.example.com/household/toaster/x.json?v=2", "REJECT bad-url:query", 3),
        (ROOT, "https://mud.example.com\\household/toaster/x.json", "REJECT bad-url:backslash", 3),
        (ROOT, "https://127.0.0.1/household/toaster/x.json", "REJECT bad-url:ip-literal", 3),
        ("https://mud.example.com./a/b.json", "https://mud.example.com/a/c.json", "REJECT bad-url:bad-host", 3),
    ],
)
def test_verdicts(pinned: str, new: str, line: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-update", pinned, new]) == code
    out, err = capsys.readouterr()
    assert out == line + "\n"
    assert err.strip()  # the explanation for people
    if line.startswith("REJECT bad-url:"):
        assert line.removeprefix("REJECT bad-url:") in GATE_REASONS
    elif line.startswith("REJECT "):
        assert line.removeprefix("REJECT ") in URL_CHANGE_REASONS


def test_lab_switch_admits_ip_literals(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["check-update", "--allow-ip-literals", "https://192.0.2.1/a/b.json", "https://192.0.2.1/a/c.json"]) == 0
    )
    assert capsys.readouterr().out == "ACCEPT\n"


def test_control_characters_do_not_reach_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-update", ROOT, "https://mud.example.com/a\x1b[2J/b.json"]) == 3
    out, err = capsys.readouterr()
    assert out == "REJECT bad-url:control-char\n" and "\x1b" not in err


def test_installed_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mud_ryu.cli", "check-update", ROOT, "https://mud.example.com/household/x.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (3, "REJECT path-depth\n")
