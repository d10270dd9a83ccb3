"""The shape shared by the boundary exceptions: a stable reason code, a message, an optional path.

Each boundary keeps its own class (``CompileError``, ``SignatureError``, ``UrlRejected``, …) so
callers catch exactly the failures of the step they called; this base only removes the
repetition of how those classes carry their reason.
"""

from __future__ import annotations


class ReasonError(ValueError):
    """Input that a boundary refuses. Callers branch on ``reason`` only; ``message`` is for people."""

    def __init__(self, reason: str, message: str, path: str = "") -> None:
        super().__init__(f"{reason} {path}: {message}" if path else f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.path = path
