"""The one exception of the MUD-file boundary (re-exported as :class:`mud_ryu.mudfile.reader.MudFileError`).

It lives in its own module so the helpers of :mod:`mud_ryu.mudfile.reader` (strict JSON, YANG pass,
semantic rules) can raise it without importing the public entry module.
"""

from __future__ import annotations

from mud_ryu.mudfile.model import Finding


class MudFileError(ValueError):
    """A MUD file was rejected. ``finding`` holds the stable reason code, the JSON path (RFC 6901)
    and a human-readable message; callers branch on ``finding.reason`` only."""

    def __init__(self, reason: str, path: str, message: str) -> None:
        super().__init__(f"{reason} {path}: {message}")
        self.finding = Finding(reason, path, message)

    @property
    def reason(self) -> str:
        return self.finding.reason
