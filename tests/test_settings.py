"""The [mud] settings: defaults are the safe production ones, the example file parses, bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from mud_ryu import settings
from mud_ryu.settings import DefaultPolicy, MudSettings

REPO = Path(__file__).resolve().parent.parent


def _load(tmp_path: Path, text: str) -> MudSettings:
    conf = cfg.ConfigOpts()
    path = tmp_path / "mud.conf"
    path.write_text(text)
    conf(args=["--config-file", str(path)])
    settings.register(conf)
    settings.register(conf)  # idempotent, as ryu-manager may import the app twice
    return settings.load(conf)


def test_example_file_holds_exactly_the_defaults(tmp_path: Path) -> None:
    loaded = _load(tmp_path, (REPO / "mud.conf.example").read_text())
    assert loaded == MudSettings()
    names = {opt.name for opt in settings.OPTS}
    example = {line.split("=")[0].strip() for line in (REPO / "mud.conf.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}  # fmt: skip
    assert example == names  # every option is documented in the example


def test_lab_values_and_derived_worker_settings(tmp_path: Path) -> None:
    text = (
        "[mud]\nstate_dir = /tmp/x\nsignature_policy = off\nstatic_hosts = mud.lab=10.0.0.250\n"
        "allowed_networks = 10.0.0.0/24\nuplink_ports = 0x1:5, 2:3\ndefault_policy = bootstrap-only\n"
        "controllers = urn:example:ctl=192.0.2.1/192.0.2.2\n"
    )
    loaded = _load(tmp_path, text)
    assert loaded.static_hosts == {"mud.lab": ("10.0.0.250",)}
    assert loaded.uplink_ports == frozenset({(1, 5), (2, 3)})
    assert loaded.default_policy is DefaultPolicy.BOOTSTRAP_ONLY
    assert loaded.controllers == {"urn:example:ctl": ("192.0.2.1", "192.0.2.2")}
    worker = loaded.worker_settings()
    assert worker["cache_path"] == "/tmp/x/mud-cache.sqlite3"
    assert worker["resolve"] == {"mud.lab": ["10.0.0.250"]}
    assert worker["signature_policy"] == "off"


@pytest.mark.parametrize(
    "text", ["[mud]\nsignature_policy = sometimes\n", "[mud]\nuplink_ports = 5\n", "[mud]\nstatic_hosts = mud.lab\n"]
)
def test_bad_values_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises((ValueError, cfg.Error)):
        _load(tmp_path, text)


def test_my_controller_per_url_and_default(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "[mud]\nmy_controller = 192.0.2.1, https://mud.example/a.json=198.51.100.7/198.51.100.8\n")
    assert loaded.my_controller == ("192.0.2.1",)
    assert loaded.my_controller_by_url == {"https://mud.example/a.json": ("198.51.100.7", "198.51.100.8")}
