"""``mud-ryu fetch``: the operator's check of a MUD URL, against the HTTPS lab on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from mud_ryu import cli
from tests import sigvectors
from tests.https_fixtures import Lab, run_https_lab
from tests.mudfiles import mud_file

# The CLI validates signatures at the real current time, so this PKI is made valid around it.
_NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    root = tmp_path_factory.mktemp("fetch-cli")
    names = ("bulb.json", "bulb.p7s", "eku.json", "eku.p7s", "badurl.json", "badurl.p7s", "ca.pem")
    for name in names:
        (root / name).write_bytes(b"placeholder")
    mud_type = [["Content-Type", "application/mud+json"]]
    sig_type = [["Content-Type", "application/pkcs7-signature"]]
    routes: dict[str, dict[str, object]] = {
        f"/{name}": {"kind": "static", "live": True, "body_file": name,
                     "headers": mud_type if name.endswith(".json") else sig_type}
        for name in names if name != "ca.pem"
    }  # fmt: skip
    routes["/gone.json"] = {"kind": "status", "status": 404}
    with run_https_lab(routes, root) as lab:
        ca = sigvectors.make_ca("CLI MUD CA", not_before=_NOW - timedelta(days=1), not_after=_NOW + timedelta(days=30))
        signer = sigvectors.make_signer(ca, not_before=_NOW - timedelta(days=1), not_after=_NOW + timedelta(days=30))
        body = mud_file(lab.url("/bulb.json"), lab.url("/bulb.p7s"), cache_validity=12, systeminfo="CLI bulb")
        (root / "bulb.json").write_bytes(body)
        (root / "bulb.p7s").write_bytes(sigvectors.sign_detached(body, signer))
        # A signer certificate for TLS servers only, and a file whose own mud-url fails the URL gate.
        tls_only = sigvectors.make_signer(ca, not_before=_NOW - timedelta(days=1), not_after=_NOW + timedelta(days=30),
                                          ekus=[x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])  # fmt: skip
        eku = mud_file(lab.url("/eku.json"), lab.url("/eku.p7s"))
        (root / "eku.json").write_bytes(eku)
        (root / "eku.p7s").write_bytes(sigvectors.sign_detached(eku, tls_only))
        badurl = mud_file(lab.url("/badurl.json") + "?x", lab.url("/badurl.p7s"))
        (root / "badurl.json").write_bytes(badurl)
        (root / "badurl.p7s").write_bytes(sigvectors.sign_detached(badurl, signer))
        (root / "ca.pem").write_bytes(sigvectors.ca_pem(ca))
        yield lab, root


def _lab_args(lab: Lab, root: Path) -> list[str]:
    return ["--tls-ca", lab.ca_pem_path, "--resolve", "mud.test:127.0.0.1", "--ca", str(root / "ca.pem")]


def test_fetch_prints_verdict_and_summary(site: tuple[Lab, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lab, root = site
    code = cli.main(["fetch", lab.url("/bulb.json"), *_lab_args(lab, root), "--allow-host", "mud.test"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "ACCEPTED fresh"
    assert "systeminfo     CLI bulb" in lines
    assert any(line.startswith("signer         CN=mud-signer.example") for line in lines)
    assert any(line.startswith("cache-validity 12 h, expires ") for line in lines)
    assert any(line.startswith("policies       from-device 1 ACLs") for line in lines)


def test_fetch_refuses_loopback_without_allow_list(site: tuple[Lab, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lab, root = site
    code = cli.main(["fetch", lab.url("/bulb.json"), *_lab_args(lab, root)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == "REFUSED first-contact-failed"
    assert "reason         fetch:address-denied" in out


def test_fetch_reports_http_errors(site: tuple[Lab, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lab, root = site
    code = cli.main(["fetch", lab.url("/gone.json"), *_lab_args(lab, root), "--allow-network", "127.0.0.1"])
    assert code == 1
    assert "reason         fetch:bad-status: HTTP 404" in capsys.readouterr().out


def test_fetch_with_a_persistent_cache(
    site: tuple[Lab, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, root = site
    args = ["fetch", lab.url("/bulb.json"), *_lab_args(lab, root), "--allow-host", "mud.test"]
    args += ["--cache", str(tmp_path / "cache.sqlite3")]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.startswith("ACCEPTED fresh\n")
    assert cli.main(args) == 0
    assert capsys.readouterr().out.startswith("ACCEPTED cached\n")


@pytest.mark.parametrize(("path", "reason"), [("/eku.json", "signature:eku"), ("/badurl.json", "mud:bad-mud-url")])
def test_fetch_reports_the_new_refusals(
    site: tuple[Lab, Path], capsys: pytest.CaptureFixture[str], path: str, reason: str
) -> None:
    lab, root = site
    code = cli.main(["fetch", lab.url(path), *_lab_args(lab, root), "--allow-host", "mud.test"])
    out = capsys.readouterr().out
    assert code == 1 and out.splitlines()[0] == "REFUSED first-contact-failed"
    assert f"reason         {reason}" in out


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fetch", "https://mud.example/x.json"]) == 2  # signatures required but no --ca
    assert "give the signer's CA with --ca" in capsys.readouterr().out
    assert cli.main(["fetch", "https://mud.example/x.json", "--signatures", "off", "--resolve", "nonsense"]) == 2


def test_console_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mud_ryu.cli", "fetch", "http://mud.example/x", "--signatures", "off"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "REFUSED first-contact-failed"
    assert "url:not-https" in done.stdout
