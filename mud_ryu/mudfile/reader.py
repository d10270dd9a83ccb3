"""Untrusted bytes -> a validated :class:`mud_ryu.mudfile.model.ParsedMud`, or :class:`MudFileError`.

The pipeline, each stage with its own reason codes (see ``docs`` in the module of each stage):

1. size cap, strict JSON (:mod:`mud_ryu.mudfile.strictjson`): ``file-too-large``, ``json-*``;
2. shape of the document: ``mud-missing`` (no ``ietf-mud:mud``), ``pre-rfc-dialect`` (the draft
   ``ietf-access-control-list:access-lists`` form; ``mud-ryu upgrade`` converts it),
   ``too-many-acls`` / ``too-many-aces`` (counted before any schema work);
3. YANG (:mod:`mud_ryu.mudfile.yangcheck`): foreign extension nodes stripped with an
   ``unknown-node-stripped`` warning (rejected inside ACLs), then ``yang-*`` errors;
4. MUD semantics and caps (:mod:`mud_ryu.mudfile.semantic`), model built by :mod:`mud_ryu.mudfile.build`.

Nothing is "best effort": the first broken rule rejects the file. No clock, no environment, no
network; the YANG schema is built once per process on first use.
"""

from __future__ import annotations

import os
from typing import Any

from mud_ryu.mudfile import build as mudbuild
from mud_ryu.mudfile import semantic, strictjson, yangcheck
from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import ParsedMud

__all__ = [
    "MAX_ACES",
    "MAX_ACLS",
    "MAX_DEPTH",
    "MAX_DNS_NAMES",
    "MAX_FILE_BYTES",
    "MAX_PORT_RANGES",
    "MudFileError",
    "load",
    "parse",
]

MAX_FILE_BYTES = strictjson.MAX_FILE_BYTES
MAX_DEPTH = strictjson.MAX_DEPTH
MAX_ACES = semantic.MAX_ACES
MAX_ACLS = semantic.MAX_ACLS
MAX_DNS_NAMES = semantic.MAX_DNS_NAMES
MAX_PORT_RANGES = semantic.MAX_PORT_RANGES

PRE_RFC_MARKER = "ietf-access-control-list:access-lists"


def _check_shape(tree: dict[str, Any]) -> None:
    if PRE_RFC_MARKER in tree:
        raise MudFileError(
            "pre-rfc-dialect",
            f"/{PRE_RFC_MARKER}",
            "pre-RFC 8520 draft dialect ('access-lists' instead of 'acls'); `mud-ryu upgrade FILE` can convert it",
        )
    if mudbuild.MUD not in tree:
        raise MudFileError("mud-missing", "/", f"no {mudbuild.MUD!r} container: not an RFC 8520 MUD file")
    semantic.check_size(tree)


def parse(data: bytes) -> ParsedMud:
    """Validate ``data`` (the MUD file's bytes) and return the model plus warnings."""
    try:
        tree = strictjson.loads_object(data)
    except strictjson.JSONError as exc:
        raise MudFileError(exc.reason, "/", exc.message) from None
    _check_shape(tree)
    cleaned, warnings = yangcheck.prune(tree)
    yangcheck.validate(cleaned)
    built = mudbuild.build(cleaned, yangcheck.schema().ethertype_names)
    warnings.extend(semantic.check(built))
    return ParsedMud(built.mud, tuple(warnings))


def load(path: str | os.PathLike[str]) -> ParsedMud:
    """Read a file (at most ``MAX_FILE_BYTES``; never reads more) and :func:`parse` it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MudFileError("file-unreadable", "/", f"{exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_FILE_BYTES:
        raise MudFileError("file-too-large", "/", f"more than {MAX_FILE_BYTES} bytes")
    return parse(data)
