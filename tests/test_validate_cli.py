"""`mud-ryu validate`: one verdict line per file, warnings before it, exit 0 iff all valid."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from mud_ryu import cli

CORPUS = pathlib.Path(__file__).parent / "fixtures" / "corpus"
VALID = CORPUS / "iot-onboarding+mudmaker" / "my-controller.json"
WARNS = CORPUS / "usnistgov+nist-mud" / "test__unittest__mud-dns-test__mudfile-dns-test.json"
PRE_RFC = CORPUS / "iot-onboarding+mudfiles" / "unsw__HueBulbMud.json"


def run(capsys: pytest.CaptureFixture[str], *files: object) -> tuple[int, list[str]]:
    code = cli.main(["validate", *map(str, files)])
    out = capsys.readouterr().out
    return code, out.splitlines()


def test_all_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, VALID) == (0, [f"OK {VALID}"])


def test_warnings_precede_verdict_and_do_not_fail(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, WARNS)
    assert code == 0
    assert lines == [
        f"WARN {WARNS} unknown-node-stripped /ietf-mud:mud/ietf-mud-reporter-extension:reporter: "
        "ignored unknown extension node 'ietf-mud-reporter-extension:reporter'",
        f"OK {WARNS}",
    ]


def test_mixed_and_unreadable(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.json"
    code, lines = run(capsys, VALID, PRE_RFC, missing)
    assert code == 1
    assert lines[0] == f"OK {VALID}"
    assert lines[1].startswith(f"INVALID {PRE_RFC} pre-rfc-dialect /ietf-access-control-list:access-lists: ")
    assert lines[2].startswith(f"INVALID {missing} file-unreadable /: ")
    assert len(lines) == 3


def test_hostile_content_cannot_forge_lines(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    evil = tmp_path / "evil\nOK fake.json"
    evil.write_bytes(b'{"ietf-mud:mud": {"mud-version": "1\\nOK forged"}}')
    code, lines = run(capsys, evil)
    assert code == 1 and len(lines) == 1 and lines[0].startswith("INVALID ")


def test_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mud_ryu.cli", "validate", str(VALID), str(PRE_RFC)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == f"OK {VALID}"
