"""The regression corpus: every frame in tests/fixtures/discovery scans to the result its TSV row pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from mud_ryu.discovery.scan import REASONS, scan_frame
from tests.discovery_frames import describe

CORPUS = Path(__file__).resolve().parent / "fixtures" / "discovery"


def _rows() -> list[tuple[str, str]]:
    rows = []
    for line in (CORPUS / "expected.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, expected = line.split("\t", 1)
            rows.append((name, expected))
    return rows


ROWS = _rows()


@pytest.mark.parametrize(("name", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_corpus_frame(name: str, expected: str) -> None:
    frame = bytes.fromhex("".join((CORPUS / name).read_text().split()))
    assert describe(scan_frame(frame)) == expected


def test_every_hex_file_has_an_expectation_and_a_readme_line() -> None:
    files = {p.name for p in CORPUS.glob("*.hex")}
    assert files == {name for name, _ in ROWS}
    readme = (CORPUS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in files)


def test_corpus_covers_every_reason_but_the_type_check() -> None:
    reasons = {exp.split("\t")[2] for _, exp in ROWS if exp.startswith("malformed")}
    assert reasons == set(REASONS) - {"not-bytes"}
