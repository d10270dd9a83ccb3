"""The controller's side of the lab: its settings for this lab, its command line, its process.

``ryu-manager`` runs in the sandbox's root network namespace (where OVS connects to
127.0.0.1:<port>) and reaches the MUD server through the switch via the lab's management port.
The settings name what the lab generated (trust anchor, TLS CA) and the lab switches a real
deployment would not use: a static name map for ``mud.lab`` and an allow-list for the lab's
private network, which the SSRF guard would otherwise refuse.

:func:`lab_settings` returns a plain dict (the keys of ``mud_ryu.settings``); :func:`render_conf`
writes it as the ``[mud]`` oslo.config group ryu-manager reads with ``--config-file``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from mud_ryu.lab import labhosts

DEFAULT_APP = "mud_ryu.app"
STOP_WAIT = 5.0


class ControllerError(RuntimeError):
    """``reason``: ``not_listening``, ``exited``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def lab_settings(
    *, trust_anchor: Path, tls_ca: Path, state_dir: Path, topo: str = "home"
) -> dict[str, str | bool | list[str]]:
    """The enforcer's settings for this lab (keys and value shapes of ``mud_ryu.settings``)."""
    dhcp = labhosts.host("dhcp").ip
    uplinks = [f"{labhosts.dpid(sw)}:{labhosts.TRUNK_PORT}" for sw in labhosts.switches(topo)] if len(
        labhosts.switches(topo)
    ) > 1 else []  # fmt: skip
    return {
        "state_dir": str(state_dir),
        "signature_policy": "required",
        "trust_anchors": [str(trust_anchor)],
        "tls_ca_bundle": str(tls_ca),
        "static_hosts": [f"{labhosts.MUD_HOST}={labhosts.host('mudsrv').ip}"],
        "allowed_networks": [labhosts.SUBNET],
        "require_content_type": True,
        "default_policy": "allow",
        "dns_servers": [dhcp],
        "ntp_servers": [dhcp],
        "local_networks": [labhosts.SUBNET],
        "uplink_ports": uplinks,
        # Port roles: the DHCP/DNS/NTP server, the MUD server and the internet host sit on trusted (server) ports of
        # s1; only they may send DHCP offers, RAs and frames from the servers' addresses.
        "server_ports": [f"1:{labhosts.host(name).home_port}" for name in ("dhcp", "mudsrv", "internet")],
        "dhcp_servers": [dhcp],
    }


def rest(
    port: int, path: str, token: str, method: str = "GET", body: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """One call to the controller's REST API on 127.0.0.1 (``path`` below ``/mud/v1``); the JSON answer with its
    HTTP status added as ``_status``. State-changing methods carry the bearer token."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if method != "GET" else {}
    response = requests.request(method, f"http://127.0.0.1:{port}/mud/v1{path}", json=body, headers=headers,
                                timeout=10, allow_redirects=False)  # fmt: skip
    data = response.json()
    if not isinstance(data, dict):
        raise ControllerError("exited", f"REST {method} {path}: not a JSON object")
    data["_status"] = response.status_code
    return data


def render_conf(settings: Mapping[str, str | bool | list[str]]) -> str:
    """oslo.config text of the ``[mud]`` group (lists comma-separated, booleans lower-case)."""
    lines = ["[mud]"]
    for key, value in settings.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(value)
        else:
            text = value
        if "\n" in text:
            raise ValueError(f"setting {key} holds a newline")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def ryu_manager_argv(
    config_file: Path | None, *, ofp_port: int, wsapi_port: int | None = None, app: str = DEFAULT_APP
) -> list[str]:
    """``ryu-manager`` for the lab: OpenFlow on 127.0.0.1 only; the REST API (when asked) likewise."""
    exe = Path(sys.executable).with_name("ryu-manager")
    argv = [str(exe), "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(ofp_port)]
    if wsapi_port is not None:
        argv += ["--wsapi-host", "127.0.0.1", "--wsapi-port", str(wsapi_port)]
    if config_file is not None:
        argv += ["--config-file", str(config_file)]
    return [*argv, app]


def wait_listening(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until something accepts TCP on 127.0.0.1:``port`` (a plain connect: never Mininet's telnet probe,
    which chokes on OpenFlow's binary HELLO)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise ControllerError("exited", f"controller exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ControllerError(
                    "not_listening", f"nothing listens on 127.0.0.1:{port} after {timeout}s"
                ) from None
            time.sleep(0.05)


class ControllerProcess:
    """A controller started by argv, stopped by its PID (SIGTERM, then SIGKILL after ``STOP_WAIT``)."""

    def __init__(self, argv: Sequence[str], log: Path, *, port: int, timeout: float = 30.0) -> None:
        self.argv = list(argv)
        self.log_path = log
        self._log: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_listening(port, timeout, self.proc)
        except ControllerError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_WAIT)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ControllerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_controller(
    workdir: Path, settings: Mapping[str, str | bool | list[str]], *, ofp_port: int,
    wsapi_port: int | None = None, app: str = DEFAULT_APP,
) -> ControllerProcess:  # fmt: skip
    """Write ``mud.conf`` into ``workdir`` and start ryu-manager with it; returns once it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mud.conf"
    conf.write_text(render_conf(settings))
    argv = ryu_manager_argv(conf, ofp_port=ofp_port, wsapi_port=wsapi_port, app=app)
    return ControllerProcess(argv, workdir / "ryu-manager.log", port=ofp_port)
