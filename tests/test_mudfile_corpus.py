"""The validator over the whole corpus fixture: committed verdicts, explained disagreements with
the reference triage (structural-check.tsv), and a property test on mutated corpus bytes.

Regenerate the verdict file after an intended behaviour change with
``.venv/bin/python -m tests.test_mudfile_corpus`` and review the diff.
"""

from __future__ import annotations

import csv
import json
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mud_ryu.mudfile import reader as mudfile

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus"
VERDICTS = FIXTURES / "corpus-verdicts.tsv"
NOT_MUD_FILES = {"README.md", "PROVENANCE.md", "structural-check.tsv"}
NOT_MUD_SUFFIXES = (".p7s", ".pem")

# Every file where our verdict (VALID/INVALID) differs from structural-check.tsv, and why ours is
# right. The test fails on any disagreement missing here, and on any entry here that no longer
# disagrees (so the list cannot rot).
DISAGREEMENTS: dict[str, str] = {
    "hslatman+mud.yang.go/examples__amazonEchoMud.json": (
        "ACL 'from-ipv4-amazonecho' is ipv4-acl-type but ACE 5 matches eth (destination MAC + ethertype); "
        "RFC 8519 section 4.1: an ipv4-acl-type ACL is made of IPv4 and L4 matches only, the mixed types "
        "exist for this. The quick checker does not compare ACL types with match containers "
        "(acl-type-mismatch). `mud-ryu upgrade` of the UNSW original produces mixed-eth-ipv4-acl-type."
    ),
    "hslatman+mud.yang.go/examples__wemoswitchMud.json": (
        "same as amazonEchoMud.json: eth match inside an ipv4-acl-type ACL (acl-type-mismatch)"
    ),
    "hslatman+mud.yang.go/examples__tls__example.json": (
        "its ACE carries an RFC 9761 'ietf-acl-tls:client-profiles' match; that module needs "
        "ietf-crypto-types (not shipped) and OpenFlow 1.3 cannot enforce TLS profiles. Ignoring a match "
        "condition of an accept ACE would widen it, so extensions inside ACLs are rejected "
        "(unsupported-acl-extension) while mud-level extensions are only stripped with a warning."
    ),
}


def corpus_files() -> list[pathlib.Path]:
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in NOT_MUD_FILES and not p.name.endswith(NOT_MUD_SUFFIXES)
    )


def key(path: pathlib.Path) -> tuple[str, str]:
    return path.parent.relative_to(CORPUS).as_posix(), path.name


def verdict(path: pathlib.Path) -> tuple[str, str]:
    try:
        mudfile.load(path)
    except mudfile.MudFileError as exc:
        return "INVALID", exc.finding.reason
    return "VALID", ""


def compute() -> list[tuple[str, str, str, str]]:
    rows = []
    for path in corpus_files():
        outcome, reason = verdict(path)
        folder, name = key(path)
        rows.append((outcome, folder, name, reason))
    return rows


def read_tsv(path: pathlib.Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            row for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row and not row[0].startswith("#")
        ]


def test_corpus_verdicts_match_committed_file() -> None:
    committed = [[*row, "", "", "", ""][:4] for row in read_tsv(VERDICTS)]
    assert committed == [list(row) for row in compute()]


def test_disagreements_with_structural_check_are_explained() -> None:
    reference = {f"{row[1]}/{row[2]}": row[0] for row in read_tsv(CORPUS / "structural-check.tsv")}
    disagree = {}
    for verdict_, folder, name, reason in compute():
        ref = reference.get(f"{folder}/{name}")
        if ref is None:
            continue  # not triaged (the signed Luminaire copy)
        ref_valid = ref == "VALID"
        if ref_valid != (verdict_ == "VALID"):
            disagree[f"{folder}/{name}"] = (ref, verdict_, reason)
    assert set(disagree) == set(DISAGREEMENTS), disagree


def test_corpus_counts_are_plausible() -> None:
    rows = compute()
    assert len(rows) == 134
    valid = [r for r in rows if r[0] == "VALID"]
    # All 17 NIST files exercise the RFC dialect and must pass.
    assert sum(1 for r in valid if r[1] == "usnistgov+nist-mud") == 17
    assert sum(1 for r in rows if r[3] == "pre-rfc-dialect" and r[2].startswith("unsw__")) == 28


_SAMPLES = [p.read_bytes() for p in corpus_files() if p.stat().st_size < 20_000][::4]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete" and data:
            end = pos + draw(st.integers(1, 64))
            del data[pos:end]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"{", b"[", b'"', b",", b"-1", b"1e999", b"null", b"\\u"]))
        elif op == "dup" and data:
            end = pos + draw(st.integers(1, 200))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_parse_of_mutated_corpus_raises_only_mudfileerror(data: bytes) -> None:
    try:
        parsed = mudfile.parse(data)
    except mudfile.MudFileError as exc:
        assert exc.finding.reason and exc.finding.path.startswith("/")
    else:
        assert parsed.mud.mud_url.startswith("https://")


def write_verdicts() -> None:
    lines = ["# verdict\tfolder\tfile\treason-code  (generated by tests/test_mudfile_corpus.py)"]
    lines += ["\t".join(row) for row in compute()]
    VERDICTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


_VALID_TREES = [p.read_bytes() for p in corpus_files() if verdict(p)[0] == "VALID"]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_VALID_TREES), st.lists(st.tuples(st.integers(0, 10_000), _json_values), min_size=1, max_size=3))
def test_parse_of_structurally_mutated_valid_files_raises_only_mudfileerror(
    data: bytes, edits: list[tuple[int, object]]
) -> None:
    """Replace random nodes of valid files with random JSON values: reaches the YANG and
    semantic stages, which byte mutation rarely does."""
    tree = json.loads(data)
    for index, value in edits:
        slots = list(_slots(tree))
        container, k = slots[index % len(slots)]
        container[k] = value
    try:
        mudfile.parse(json.dumps(tree).encode())
    except mudfile.MudFileError as exc:
        assert exc.finding.reason


def _slots(node: object) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield node, k
            yield from _slots(v)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield node, i
            yield from _slots(v)


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(pytest.main([__file__]))
    write_verdicts()
