"""Strict, bounded JSON decoding for untrusted MUD files (THREATS.md row 8).

The standard :mod:`json` module accepts things a MUD file must never contain and that would let a
hostile server make the controller burn CPU or memory, or make two readers disagree about what a
file says: duplicate keys (last one wins in Python, first one wins elsewhere), ``NaN``/``Infinity``,
integers with thousands of digits, nesting deep enough to overflow the stack. This module refuses
each of them with its own stable reason code, and never lets RecursionError, ValueError or
UnicodeDecodeError escape.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Limits; module constants so callers and tests can see them.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_INT_DIGITS = 20  # uint64 has 20 digits; no MUD leaf is wider
MAX_NUMBER_CHARS = 40  # a float literal longer than this is not a real-world value
MAX_VALUES = 50_000  # every object, array and scalar counts one
MAX_STRING_CHARS = 4096

JSONValue = Any  # dict/list/str/int/float/bool/None; kept loose because json is untyped


class JSONError(ValueError):
    """Raised for input that is not acceptable strict JSON. ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# Strings are removed before counting brackets so that "[[[[" inside a string does not count.
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_RE = re.compile(r"[\[\]{}]")


def _check_depth(text: str) -> None:
    """Reject nesting deeper than MAX_DEPTH before :func:`json.loads` recurses into it."""
    depth = 0
    for m in _BRACKET_RE.finditer(_STRING_RE.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JSONError("json-too-deep", f"JSON nesting deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def _pairs_hook(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {}
    for key, value in pairs:
        if key in out:
            raise JSONError("json-duplicate-key", f"duplicate object member {key[:80]!r}")
        out[key] = value
    return out


def _parse_constant(name: str) -> JSONValue:
    raise JSONError("json-nan", f"{name} is not a JSON number")


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JSONError("json-number-too-long", f"integer with {digits} digits (max {MAX_INT_DIGITS})")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JSONError("json-number-too-long", f"number literal of {len(literal)} characters")
    value = float(literal)
    if not math.isfinite(value):
        raise JSONError("json-nan", f"number {literal[:40]} overflows to {value}")
    return value


def _check_values(root: JSONValue) -> None:
    """Count every value and check strings, iteratively (no recursion on untrusted data)."""
    count = 0
    stack: list[JSONValue] = [root]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise JSONError("json-too-many-values", f"more than {MAX_VALUES} JSON values")
        if isinstance(value, dict):
            for key, member in value.items():
                _check_string(key)
                stack.append(member)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(s: str) -> None:
    if len(s) > MAX_STRING_CHARS:
        raise JSONError("json-string-too-long", f"string of {len(s)} characters (max {MAX_STRING_CHARS})")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate escape (\ud800): not Unicode text, and it breaks logs and databases later.
        raise JSONError("json-invalid-string", "string contains a lone surrogate escape") from None


def loads_object(data: bytes) -> dict[str, JSONValue]:
    """Decode ``data`` (UTF-8 JSON text) into a dict, enforcing every limit of this module."""
    if len(data) > MAX_FILE_BYTES:
        raise JSONError("file-too-large", f"{len(data)} bytes (max {MAX_FILE_BYTES})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError("json-not-utf8", f"not UTF-8 text: byte {exc.start}: {exc.reason}") from None
    if text.startswith("\ufeff"):
        raise JSONError("json-syntax", "byte order mark before the JSON text")
    _check_depth(text)
    try:
        root = json.loads(
            text,
            object_pairs_hook=_pairs_hook,
            parse_constant=_parse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except JSONError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONError("json-syntax", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JSONError("json-too-deep", "JSON nesting too deep") from None
    except ValueError as exc:  # e.g. int conversion limits
        raise JSONError("json-syntax", str(exc)[:200]) from None
    if not isinstance(root, dict):
        raise JSONError("json-not-object", f"top-level JSON value is {type(root).__name__}, not an object")
    _check_values(root)
    return root
