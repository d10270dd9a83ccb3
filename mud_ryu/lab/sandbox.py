"""Run code inside throw-away Linux namespaces so lab work never touches the host.

Open vSwitch, Mininet and their clean-up helpers act on whatever network and process table
they see (Mininet's clean-up kills processes by name and deletes every OVS bridge). Here they
see a fresh network namespace (only a loopback), a fresh PID namespace (everything started
inside dies when its init exits, so nothing leaks even after a crash or a timeout), a private
mount namespace with its own tmpfs ``/tmp``, and private OVS run/db/log/etc directories in it.

Shape: the host calls :func:`run_callable` (or :func:`run_command`), which starts::

    unshare --net --pid --mount --fork --kill-child=SIGKILL --mount-proc --propagation private \
        -- python -m mud_ryu.lab.sandbox call MODULE:FUNCTION

The inner process (PID 1 of the new namespace) checks that it really is in a new network
namespace before changing anything, prepares the sandbox, reads a JSON payload on stdin,
calls the function and writes its JSON result on the original stdout; anything the function
or its children print goes to stderr. ``--kill-child`` ties the sandbox's lifetime to the
host-side ``unshare`` process, so a host timeout ends the whole namespace.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_HOST_NETNS_ENV = "MUD_RYU_SANDBOX_HOST_NETNS"
SANDBOX_ENV = "MUD_RYU_SANDBOX"  # set to "1" inside a sandbox
OVS_DIR_ENV = ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR")
OVS_ROOT = "/tmp/ovs"

JsonValue = Any  # what json.loads returns


class SandboxError(RuntimeError):
    """The sandbox could not be created, or the code inside it failed. ``reason`` is stable:
    ``unavailable``, ``setup_failed``, ``timeout``, ``failed``, ``bad_output``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


def _netns_id(pid: str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def unavailable_reason() -> str | None:
    """Why sandboxes cannot run here (not root, no unshare, no OVS), or ``None`` if they can."""
    if sys.platform != "linux":
        return "sandboxes need Linux namespaces"
    if os.geteuid() != 0:
        return "sandboxes need root (CAP_SYS_ADMIN for unshare and CAP_NET_ADMIN for OVS)"
    if shutil.which("unshare") is None:
        return "util-linux unshare not found"
    return None


def _unshare_argv(inner: Sequence[str]) -> list[str]:
    return [
        "unshare", "--net", "--pid", "--mount", "--fork", "--kill-child=SIGKILL", "--mount-proc",
        "--propagation", "private", "--", *inner,
    ]


def _host_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    env[_HOST_NETNS_ENV] = _netns_id()
    for name in OVS_DIR_ENV:  # set fresh inside; never inherit the host's
        env.pop(name, None)
    return env


def _run(inner: Sequence[str], stdin: str, timeout: float, env: Mapping[str, str] | None) -> CommandResult:
    reason = unavailable_reason()
    if reason is not None:
        raise SandboxError("unavailable", reason)
    try:
        proc = subprocess.run(
            _unshare_argv(inner), input=stdin, capture_output=True, text=True, timeout=timeout,
            env=_host_env(env), check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SandboxError("timeout", f"sandbox still running after {timeout}s") from exc
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def run_command(
    argv: Sequence[str], *, stdin: str = "", timeout: float = 120.0, env: Mapping[str, str] | None = None
) -> CommandResult:
    """Run ``argv`` inside a fresh sandbox (after its setup) and return what it printed."""
    result = _run([sys.executable, "-m", "mud_ryu.lab.sandbox", "exec", *argv], stdin, timeout, env)
    if result.returncode == _SETUP_FAILED:
        raise SandboxError("setup_failed", result.stderr.strip()[-2000:])
    return result


def run_callable(
    target: str, payload: JsonValue = None, *, timeout: float = 300.0, env: Mapping[str, str] | None = None
) -> JsonValue:
    """Call ``target`` (``"package.module:function"``, taking one JSON value and returning
    one) inside a fresh sandbox and return its result."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:function', got {target!r}")
    result = _run(
        [sys.executable, "-m", "mud_ryu.lab.sandbox", "call", target], json.dumps(payload), timeout, env
    )
    if result.returncode == _SETUP_FAILED:
        raise SandboxError("setup_failed", result.stderr.strip()[-2000:])
    try:
        reply = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise SandboxError(
            "bad_output", f"rc={result.returncode} stdout={result.stdout[-500:]!r} stderr={result.stderr[-2000:]}"
        ) from exc
    if not isinstance(reply, dict) or "ok" not in reply:
        raise SandboxError("bad_output", f"unexpected reply {str(reply)[:500]}")
    if not reply["ok"]:
        raise SandboxError("failed", f"{target}: {reply.get('error')}\n{reply.get('traceback', '')}")
    return reply["result"]


# --- inside the sandbox ----------------------------------------------------------------------

_SETUP_FAILED = 97


def _setup_inside() -> None:
    """Prepare the namespace. Refuses to act unless it is PID 1 of a new PID namespace AND in a
    network namespace different from the host's, so a wrong invocation cannot touch the host."""
    host_ns = os.environ.get(_HOST_NETNS_ENV)
    if os.getpid() != 1 or not host_ns or _netns_id() == host_ns:
        raise SandboxError("setup_failed", "not inside a fresh pid+net namespace; refusing to set up")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    # The project (or its venv) may itself live under /tmp (CI clones often do): hold those
    # directories open, cover /tmp with the private tmpfs, then bind them back in place.
    held = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in _tmp_paths_in_use()]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=512m", "tmpfs", "/tmp"], check=True)
    for path, fd in held:
        os.makedirs(path, exist_ok=True)
        # --no-canonicalize: mount(8) would otherwise resolve the fd link to the (now empty) path
        subprocess.run(["mount", "--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{fd}", path], check=True)
        os.close(fd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, sub in zip(OVS_DIR_ENV, ("run", "db", "log", "etc"), strict=True):
        path = os.path.join(OVS_ROOT, sub)
        os.makedirs(path, exist_ok=True)
        os.environ[name] = path
    os.environ[SANDBOX_ENV] = "1"
    os.environ["TMPDIR"] = "/tmp"


def _tmp_paths_in_use() -> list[str]:
    """Top-level directories under /tmp that this process needs: its working directory, the
    interpreter's prefix, the import path and this package."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    keep: set[str] = set()
    for entry in (os.getcwd(), sys.prefix, sys.executable, package_root, *sys.path):
        real = os.path.realpath(entry) if entry else os.getcwd()
        parts = real.split(os.sep)
        if len(parts) >= 3 and parts[1] == "tmp" and parts[2]:
            keep.add(os.sep.join(parts[:3]))
    return sorted(keep)


def _resolve(target: str) -> Callable[[JsonValue], JsonValue]:
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    if not callable(func):
        raise TypeError(f"{target} is not callable")
    return func  # type: ignore[no-any-return]


def _main_call(target: str) -> int:
    # Keep the real stdout for the JSON reply; everything else printed goes to stderr.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        payload = json.loads(sys.stdin.read() or "null")
        reply: dict[str, JsonValue] = {"ok": True, "result": _resolve(target)(payload)}
    except Exception as exc:  # reported to the host with its traceback
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    sys.stdout.flush()
    with os.fdopen(reply_fd, "w") as out:
        json.dump(reply, out)
    return 0 if reply["ok"] else 1


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("call", "exec"):
        print("usage: python -m mud_ryu.lab.sandbox call MODULE:FUNC | exec CMD...", file=sys.stderr)
        return 2
    try:
        _setup_inside()
    except (SandboxError, subprocess.CalledProcessError, OSError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return _SETUP_FAILED
    if argv[0] == "call":
        return _main_call(argv[1])
    # exec: run as a child, not via execvp, so this PID 1 reaps orphans until the command ends
    return subprocess.run(list(argv[1:]), check=False).returncode


def in_sandbox() -> bool:
    return os.environ.get(SANDBOX_ENV) == "1"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
