"""``mud-ryu approve``: an approval names the URL and file digest reviewed, or is confirmed on a terminal after the
pending change is shown; a pending change replaced meanwhile is refused (409 ``pending-changed``, exit 1).

Against a real loopback HTTP server serving the handler over the in-memory backend (tests/rest_fakes.py)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mud_ryu.api.types import PendingView
from mud_ryu.cli import main
from tests.api_server import serve_api
from tests.rest_fakes import MAC_A, SHA2, URL1, URL2, FakeBackend

TOKEN = "approve-test-token"
EVIL = "https://mud.example.com/household/toaster/evil.json"


class FakeTty:
    """A terminal on stdin (what the CLI uses of it): what the operator types, and an optional hook run when the
    prompt is answered -- the device acting while the operator reads."""

    def __init__(self, typed: str, on_read: Callable[[], None] | None = None) -> None:
        self._typed = io.StringIO(typed)
        self.on_read = on_read

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        if self.on_read is not None:
            self.on_read()
        return self._typed.readline()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def api(backend: FakeBackend) -> Iterator[str]:
    yield from serve_api(backend, TOKEN)


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MUD_RYU_TOKEN", TOKEN)


def run(capsys: pytest.CaptureFixture[str], api: str, *argv: str) -> tuple[int, str, str]:
    code = main(["approve", MAC_A, *argv, "--api", api])
    out, err = capsys.readouterr()
    return code, out, err


def _set_pending(backend: FakeBackend, pending: PendingView | None) -> None:
    backend.detail[MAC_A] = dataclasses.replace(backend.detail[MAC_A], pending=pending)


def test_url_and_digest_of_the_pending_change(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, api, "--url", URL2, "--sha256", SHA2)
    assert (code, out) == (0, f"OK approved: {URL2} approved for {MAC_A}\n")
    assert backend.mutations == [("approve", MAC_A, URL2, SHA2, "False")]


@pytest.mark.parametrize(("url", "sha256"), [(URL1, SHA2), (URL2, "d" * 64)])
def test_a_changed_pending_change_is_exit_1(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str], url: str, sha256: str
) -> None:
    code, out, err = run(capsys, api, "--url", url, "--sha256", sha256)
    assert (code, out) == (1, "") and err.startswith("error: pending-changed (HTTP 409): ")
    assert backend.detail[MAC_A].url == URL1  # nothing approved


@pytest.mark.parametrize("argv", [("--url", URL2), ("--sha256", SHA2), ("--chosen",)])
def test_half_an_approval_is_a_usage_error(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, api, *argv)
    assert code == 2 and "--url and --sha256" in err and backend.calls == []


def test_no_confirmation_from_a_pipe(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal: a script must name what it approves
    code, _, err = run(capsys, api)
    assert code == 2 and "not a terminal" in err and backend.calls == []


def test_confirmed_on_the_terminal_approves_what_was_shown(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTty("y\n"))
    code, out, err = run(capsys, api)
    assert (code, out) == (0, f"OK approved: {URL2} approved for {MAC_A}\n")
    assert URL2 in err and SHA2 in err and "[y/N]" in err  # shown before the question
    assert backend.mutations == [("approve", MAC_A, URL2, SHA2, "False")]


@pytest.mark.parametrize("typed", ["n\n", "\n", "", "yes please\n"])
def test_anything_but_yes_approves_nothing(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, typed: str
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTty(typed))
    code, _, err = run(capsys, api)
    assert code == 1 and "error: not-confirmed" in err and backend.mutations == []


def test_a_replacement_while_the_operator_reads_is_refused(
    api: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    swap = PendingView(EVIL, "needs-approval", "quarantined", "e" * 64, 1_700_000_300.0)
    monkeypatch.setattr("sys.stdin", FakeTty("y\n", lambda: _set_pending(backend, swap)))
    code, _, err = run(capsys, api)
    assert code == 1 and "[y/N] error: pending-changed (HTTP 409): " in err
    assert backend.detail[MAC_A].url == URL1 and backend.detail[MAC_A].pending == swap


@pytest.mark.parametrize(
    ("pending", "code"),
    [
        (None, "nothing-to-approve"),
        (PendingView(URL2, "fetching", "small-change", None, 1.0), "pending-fetching"),
        (PendingView(URL2, "needs-approval", "other-host", None, 1.0), "pending-not-fetched"),
    ],
)
def test_nothing_to_confirm(
    api: str,
    backend: FakeBackend,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pending: PendingView | None,
    code: str,
) -> None:
    _set_pending(backend, pending)
    monkeypatch.setattr("sys.stdin", FakeTty("y\n"))
    status, _, err = run(capsys, api)
    assert status == 1 and err.startswith(f"error: {code}: ") and backend.mutations == []
