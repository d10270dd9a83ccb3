"""The ``mud-ryu`` CLI's side of ``/mud/v1``: one HTTP call per command, and the text it prints.

Deliberately narrow: no redirects (a redirect could carry the bearer token elsewhere), no proxies or .netrc from
the environment, a timeout on every call, a capped response, the token only on state-changing calls. Everything
a server sends is attacker-reachable text (device URLs, alert messages), so every table cell is made printable
before it reaches the terminal.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from mud_ryu.compiler.context import normalize_mac
from mud_ryu.dns.types import normalize_name

MAX_RESPONSE_BYTES = 16 << 20
MAX_TOKEN_FILE_BYTES = 4096
CONNECT_TIMEOUT_S = 3.0


class ApiError(Exception):
    """The server refused: its ``error`` code verbatim (exit 1)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ClientError(Exception):
    """Usage, connection or protocol trouble on our side of the call (exit 2)."""


@dataclass(frozen=True, slots=True)
class ApiClient:
    base: str  # e.g. http://127.0.0.1:8080
    token: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ClientError(f"--api must be an http(s)://host:port URL, not {printable(self.base)!r}")

    @property
    def sends_token_in_clear(self) -> bool:
        parts = urlsplit(self.base)
        return parts.scheme == "http" and not _is_loopback(parts.hostname or "")

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, None)

    def post(self, path: str, document: Mapping[str, object] | None = None) -> dict[str, Any]:
        return self._call("POST", path, document)

    def put(self, path: str, document: Mapping[str, object]) -> dict[str, Any]:
        return self._call("PUT", path, document)

    def delete(self, path: str) -> dict[str, Any]:
        return self._call("DELETE", path, None)

    def _call(self, method: str, path: str, document: Mapping[str, object] | None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if method != "GET":
            if not self.token:
                raise ClientError("this command needs the API token: --token-file PATH or MUD_RYU_TOKEN")
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if document is not None:
            data = json.dumps(document).encode("utf-8")
            headers["Content-Type"] = "application/json"
        url = self.base.rstrip("/") + "/mud/v1/" + path
        with requests.Session() as session:
            session.trust_env = False  # no proxy or .netrc from the environment sees the token
            try:
                response = session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=(CONNECT_TIMEOUT_S, self.timeout_s),
                    allow_redirects=False,
                    stream=True,
                )
                body = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
                response.close()
            except requests.RequestException as error:
                raise ClientError(f"cannot reach {printable(self.base)}: {type(error).__name__}") from None
        return _document(response.status_code, body)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _document(status: int, body: bytes) -> dict[str, Any]:
    if 300 <= status < 400:
        raise ClientError(f"the server answered a redirect ({status}); not following it")
    if len(body) > MAX_RESPONSE_BYTES:
        raise ClientError("the response is too large")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ClientError(f"HTTP {status} without a JSON body: is this the mud-ryu API?") from None
    if not isinstance(document, dict):
        raise ClientError(f"HTTP {status} with a JSON {type(document).__name__}, not an object")
    if status >= 400:
        raise ApiError(
            status, printable(str(document.get("error", f"http-{status}"))), str(document.get("message", ""))
        )
    if status != 200:
        raise ClientError(f"unexpected HTTP status {status}")
    return document


def mac_path(mac: str, suffix: str = "") -> str:
    """``devices/<mac>[/suffix]`` for a MAC checked here, so a typo never reaches the server."""
    try:
        if len(mac) > 64:  # refused, not cut: a cut "<mac>   ...junk" would name another device's MAC
            raise ValueError(mac)
        normal = normalize_mac(mac)
    except ValueError:
        raise ClientError(f"not a MAC address: {printable(mac)!r}") from None
    return f"devices/{quote(normal, safe='')}" + (f"/{suffix}" if suffix else "")


def my_controller_path(url: str | None = None) -> str:
    """``my-controller`` or ``my-controller?url=<percent-encoded URL>`` (every character but unreserved ones
    encoded, so a ``&`` or ``#`` in a URL cannot end the parameter)."""
    if url is None:
        return "my-controller"
    if not url.strip():
        raise ClientError("--url must be a MUD URL")
    return f"my-controller?url={quote(url, safe='')}"


def list_my_controller(client: ApiClient) -> dict[str, Any]:
    return client.get(my_controller_path())


def set_my_controller(client: ApiClient, url: str, addresses: Sequence[str]) -> dict[str, Any]:
    if not url.strip():
        raise ClientError("--url must be a MUD URL")
    return client.put(my_controller_path(), {"url": url, "addresses": list(addresses)})


def clear_my_controller(client: ApiClient, url: str) -> dict[str, Any]:
    return client.delete(my_controller_path(url))


def dns_path(name: str | None = None) -> str:
    """``dns`` or ``dns?name=<percent-encoded name>`` for a name checked here (the server checks it again)."""
    if name is None:
        return "dns"
    if len(name) > 300 or normalize_name(name) is None:
        raise ClientError(f"--name must be a DNS host name, not {printable(name, 80)!r}")
    return f"dns?name={quote(name, safe='')}"


def dns(client: ApiClient, name: str | None = None) -> dict[str, Any]:
    return client.get(dns_path(name))


def read_token_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as error:
        raise ClientError(f"cannot read the token file: {error.strerror}") from None
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise ClientError("the token file is too large")
    token = raw.decode("utf-8", "replace").strip()
    if not token or any(not ch.isprintable() or ch.isspace() for ch in token):
        raise ClientError("the token file must hold one token (printable, no spaces)")
    return token


# ---- text output ---------------------------------------------------------------------------------------------


def printable(value: object, limit: int = 600) -> str:
    """One line, no control or escape characters: server text is attacker text."""
    text = "-" if value is None else str(value)
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])


def when(at: object) -> str:
    if isinstance(at, bool) or not isinstance(at, int | float):
        return printable(at)
    try:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return printable(at)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(header), *([printable(c, 200) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _decision(d: object) -> str:
    if not isinstance(d, dict):
        return "-"
    return f"{printable(d.get('verdict'))}/{printable(d.get('reason'))}"


def devices_text(document: Mapping[str, Any]) -> str:
    rows = [
        (
            d.get("mac"), d.get("dpid"), d.get("port"), d.get("state"), d.get("flow_count"), d.get("profile_id"),
            d.get("via"), _decision(d.get("last_decision")), d.get("url"),
        )
        for d in document["devices"]
    ]  # fmt: skip
    return table(("MAC", "DPID", "PORT", "STATE", "FLOWS", "PROFILE", "VIA", "LAST DECISION", "URL"), rows)


def device_text(d: Mapping[str, Any]) -> str:
    last = d.get("last_decision")
    lines = [f"{name}: {printable(d.get(name))}" for name in ("mac", "dpid", "port", "state", "url", "via")]
    lines += [
        f"signer: {printable(d.get('signer'))}",
        f"profile_id: {printable(d.get('profile_id'))}",
        f"flow_count: {printable(d.get('flow_count'))}",
        f"last_decision: {_decision(last)}" + (f" at {when(last.get('at'))}" if isinstance(last, dict) else ""),
    ]
    pending = d.get("pending")
    if isinstance(pending, dict):
        lines.append(
            f"pending: {printable(pending.get('url'))} "
            f"({printable(pending.get('status'))}, {printable(pending.get('reason'))}) since {when(pending.get('at'))}"
        )
        # The digest an approval must name (mud-ryu approve MAC --url URL --sha256 DIGEST).
        lines.append(f"pending sha256: {printable(pending.get('sha256'), 64)}")
    else:
        lines.append("pending: -")
    lines.append("history:")
    lines += [
        f"  {when(h.get('at'))}  {printable(h.get('sha256'), 64)}  {printable(h.get('url'))}" for h in d["history"]
    ]
    lines.append(f"flows ({len(d['flows'])}):")
    lines += [f"  {printable(f, 2048)}" for f in d["flows"]]
    return "\n".join(lines)


def alerts_text(document: Mapping[str, Any]) -> str:
    rows = [
        (when(a.get("at")), a.get("code"), a.get("mac"), a.get("dpid"), a.get("port"), a.get("url"), a.get("message"))
        for a in document["alerts"]
    ]
    return table(("AT", "CODE", "MAC", "DPID", "PORT", "URL", "MESSAGE"), rows)


def action_text(document: Mapping[str, Any]) -> str:
    return f"OK {printable(document.get('reason'))}: {printable(document.get('message'))}"


def my_controller_text(document: Mapping[str, Any]) -> str:
    default = (
        ", ".join(printable(a, 64) for a in document["default"]) or "- (none: ACEs without an entry allow nothing)"
    )
    rows = [(e.get("url"), e.get("source"), ", ".join(printable(a, 64) for a in e["addresses"]))
            for e in document["entries"]]  # fmt: skip
    return f"default: {default}\n" + table(("URL", "SOURCE", "ADDRESSES"), rows)


# Answers the binding table ignored because they came from the wrong server or answered nothing the device asked:
# spoofing attempts or races (issue 6); the rest of the ignore reasons are benign.
SPOOF_COUNTERS = ("not-resolver", "unsolicited", "wrong-txid", "wrong-client")


def _seconds(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return printable(value)
    return f"{value:.1f}s"


def dns_text(document: Mapping[str, Any]) -> str:
    rows: list[tuple[object, ...]] = []
    for entry in document["names"]:
        profiles = ", ".join(printable(p) for p in entry["profiles"]) or "-"
        addresses = entry["addresses"] or [{"address": "-", "expires_in_s": "-"}]
        for i, a in enumerate(addresses):
            first = i == 0
            rows.append((entry.get("name") if first else "", a.get("address"), _seconds(a.get("expires_in_s")),
                         profiles if first else ""))  # fmt: skip
    counters = document["counters"]
    spoofed = ", ".join(f"{name} {printable(counters.get(name, '-'))}" for name in SPOOF_COUNTERS)
    lines = [
        table(("NAME", "ADDRESS", "EXPIRES IN", "PROFILES"), rows),
        "",
        f"outstanding queries: {printable(document['outstanding_queries'])}",
        f"spoofed or unsolicited answers ignored: {spoofed}",
        "",
        table(("COUNTER", "VALUE"), sorted(counters.items())),
    ]
    return "\n".join(lines)
