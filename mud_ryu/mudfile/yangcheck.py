"""YANG validation of MUD JSON with yangson, against the modules shipped in ``mud_ryu/yang``.

Two passes:

1. :func:`prune` walks the raw JSON beside the schema tree. It is where *unknown* members are
   decided, because yangson only says "unknown member" for the first one and cannot strip:

   * a member qualified by a module we do not implement (``nist-mud:…``,
     ``ietf-mud-reporter-extension:…``) outside the ACLs is removed with an
     ``unknown-node-stripped`` warning — RFC 8520 section 2.1/3.x: implementations ignore nodes they
     do not understand;
   * the same inside ``ietf-access-control-list:acls`` is *rejected* (``unsupported-acl-extension``):
     an extension there adds a match condition (e.g. RFC 9761 ``ietf-acl-tls:client-profiles``) or
     an action, and dropping a condition from an ``accept`` ACE would silently widen it;
   * an unknown member of a module we *do* implement, or an unqualified one, is a schema error
     (``yang-unknown-node``): that is a typo or another dialect, not an extension.

   It also rewrites member names to their canonical RFC 7951 form (so later code looks up one
   spelling) and checks every scalar against its YANG type, so type errors carry a real JSON pointer
   (``/…/acl/0/aces/ace/3/…``) rather than yangson's ``acl=name`` route.

2. :func:`validate` hands the cleaned tree to yangson for everything else: mandatory nodes,
   ranges and patterns, choices, list keys, leafrefs (``instance-required``), ``must``.

The schema (:func:`schema`) is built once per process, on first use, from package data.
"""

from __future__ import annotations

import functools
import importlib.resources
import pathlib
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from yangson import DataModel
from yangson.enumerations import ContentType
from yangson.exceptions import (
    RawDataError,
    SchemaError,
    SemanticError,
    ValidationError,
    YangsonException,
    YangTypeError,
)
from yangson.schemanode import (
    AnyContentNode,
    ContainerNode,
    InternalNode,
    LeafListNode,
    LeafNode,
    ListNode,
    SchemaNode,
)

from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import Finding

ACL_MODULE = "ietf-access-control-list"
YANG_LIBRARY = "yang-library.json"


@dataclass(frozen=True)
class YangSchema:
    """The built data model plus facts derived from it once."""

    model: Any  # yangson.DataModel (untyped library)
    modules: frozenset[str]  # module names we implement/import
    ethertype_names: dict[str, int]  # ietf-ethertypes enum name -> EtherType value


def _build(directory: str) -> YangSchema:
    library = (pathlib.Path(directory) / YANG_LIBRARY).read_text(encoding="utf-8")
    dm = DataModel(library, [directory])
    modules = frozenset(name for name, _rev in dm.schema_data.modules)
    node: Any = dm.schema.get_data_child("acls", ACL_MODULE)
    for step in ("acl", "aces", "ace", "matches", "eth", "ethertype"):
        node = node.get_data_child(step, ACL_MODULE)
    names: dict[str, int] = {}
    for member in node.type.types:
        names.update(getattr(member, "enum", {}))
    return YangSchema(dm, modules, names)


def schema() -> YangSchema:
    """The process-wide schema, built once, under a lock (threads of the worker may ask for it at once)."""
    with _BUILD:
        return _schema()


_BUILD = threading.Lock()


@functools.lru_cache(maxsize=1)
def _schema() -> YangSchema:
    """The process-wide schema, built lazily on first call (~0.1 s) from ``mud_ryu/yang``."""
    root = importlib.resources.files("mud_ryu.mudfile").joinpath("yang")
    if isinstance(root, pathlib.Path):
        return _build(str(root))
    # Zipped install: yangson reads modules from directories, so extract them for the build
    # (the built model keeps no reference to the files).
    with tempfile.TemporaryDirectory(prefix="mud-ryu-yang-") as tmp:
        for entry in root.iterdir():
            if entry.name.endswith((".yang", ".json")):
                (pathlib.Path(tmp) / entry.name).write_bytes(entry.read_bytes())
        return _build(tmp)


def pointer_token(key: str | int) -> str:
    """One RFC 6901 reference token."""
    return str(key).replace("~", "~0").replace("/", "~1")


@dataclass
class _Walk:
    known: frozenset[str]
    warnings: list[Finding]

    def object(self, sn: InternalNode, obj: Any, path: str, in_acls: bool) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise MudFileError("yang-type", path or "/", f"expected an object, got {_jtype(obj)}")
        out: dict[str, Any] = {}
        for key, value in obj.items():
            here = f"{path}/{pointer_token(key)}"
            module, sep, name = key.partition(":")
            if not sep:
                module, name = "", key
            if sep and not module:
                raise MudFileError("yang-unknown-node", here, f"{key!r} has an empty module name")
            if key.startswith("@"):
                raise MudFileError("yang-unknown-node", here, "metadata annotations are not allowed")
            if not sep and sn.ns is None:
                raise MudFileError("yang-unknown-node", here, "top-level member without a module name")
            child = sn.get_data_child(name, module or sn.ns)
            if child is None:
                if sep and module not in self.known:
                    if in_acls:
                        raise MudFileError(
                            "unsupported-acl-extension",
                            here,
                            f"extension node {key!r} inside an ACL is not supported; ignoring it could "
                            "widen the ACE, so the file is rejected",
                        )
                    self.warnings.append(
                        Finding("unknown-node-stripped", here, f"ignored unknown extension node {key!r}")
                    )
                    continue
                raise MudFileError("yang-unknown-node", here, f"{key!r} is not defined in the schema")
            # Canonical RFC 7951 member name: qualified iff at top level or the module changes.
            canon = f"{child.ns}:{child.name}" if sn.ns is None or child.ns != sn.ns else child.name
            if canon in out:
                # "port" and "ietf-packet-fields:port" are the same node: two values for one leaf
                # would let two readers see two different files.
                raise MudFileError("yang-duplicate-node", here, f"{key!r} repeats node {canon!r}")
            inside = in_acls or child.qual_name == ("acls", ACL_MODULE)
            out[canon] = self.value(child, value, here, inside)
        return out

    def value(self, sn: SchemaNode, value: Any, path: str, in_acls: bool) -> Any:
        if isinstance(sn, ListNode):
            items = _expect_list(value, path)
            return [self.object(sn, item, f"{path}/{i}", in_acls) for i, item in enumerate(items)]
        if isinstance(sn, ContainerNode):
            return self.object(sn, value, path, in_acls)
        if isinstance(sn, LeafListNode):
            items = _expect_list(value, path)
            for i, item in enumerate(items):
                _scalar(sn, item, f"{path}/{i}")
            return value
        if isinstance(sn, LeafNode):
            _scalar(sn, value, path)
            return value
        if isinstance(sn, AnyContentNode):
            return value
        raise MudFileError("yang-unknown-node", path, f"unsupported schema node {sn.qual_name}")


def _jtype(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _expect_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise MudFileError("yang-type", path, f"expected an array, got {_jtype(value)}")
    return value


def _scalar(sn: Any, value: Any, path: str) -> None:
    if isinstance(value, dict | list) and not (value == [None]):
        raise MudFileError("yang-type", path, f"expected a {sn.type.yang_type()} value, got {_jtype(value)}")
    if sn.type.from_raw(value) is None:
        raise MudFileError("yang-type", path, f"{_short(value)} is not a valid {sn.type.yang_type()}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def prune(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Finding]]:
    """Pass 1: strip foreign extension nodes (with warnings) and type-check scalars."""
    s = schema()
    walk = _Walk(s.modules, [])
    with _VALIDATE:  # it walks yangson's schema nodes, which validation completes lazily
        cleaned = walk.object(s.model.schema, raw, "", False)
    return cleaned, walk.warnings


_SEMANTIC_REASONS: dict[str, str] = {
    "instance-required": "yang-dangling-reference",
    "non-unique-key": "yang-not-unique",
    "repeated-leaf-list-value": "yang-not-unique",
    "too-few-elements": "yang-cardinality",
    "too-many-elements": "yang-cardinality",
}


def _reason(exc: ValidationError) -> str:
    tag = exc.tag or ""
    if isinstance(exc, YangTypeError):
        # yangson reports every restriction as "invalid-type"; its message says which one.
        text = exc.message or ""
        if "range" in text:
            return "yang-out-of-range"
        if text.startswith("pattern"):
            return "yang-pattern"
        if "length" in text:
            return "yang-length"
        return "yang-type"
    if isinstance(exc, SchemaError):
        if tag in ("missing-data", "list-key-missing"):
            return "yang-missing-mandatory"
        if tag.endswith("member-not-allowed") and _acl_type_when(exc):
            return "acl-type-mismatch"
        return "yang-schema"
    if isinstance(exc, SemanticError):
        if tag.startswith("data-not-unique"):
            return "yang-not-unique"
        return _SEMANTIC_REASONS.get(tag, "yang-must")
    return "yang-invalid"


def _acl_type_when(exc: ValidationError) -> bool:
    """Did a ``when "derived-from-or-self(/acls/acl/type, …)"`` of RFC 8519 fail?

    Those conditions guard eth/ipv4/ipv6 under ``matches``. (As written they test the types of
    *all* ACLs of the file, so :mod:`mud_ryu.mudfile.semantic` checks each ACL's own type as well.)
    Two l3 containers at once is a choice violation instead, reported as ``yang-schema``."""
    member = exc.message
    path = exc.instance.json_pointer()
    if not path.endswith("/matches") or member not in ("eth", "ipv4", "ipv6"):
        return False
    present = set(exc.instance.value.keys())
    return member == "eth" or not {"ipv4", "ipv6"} <= present


# yangson builds parts of the schema lazily while it validates (schema patterns, when-conditions) and is not
# thread-safe: the resolver worker validates in several threads, and two of them racing through a first validation
# made yangson fail with AttributeError ("'NoneType' object has no attribute '_eval_when'"). Validation is CPU-bound
# under the GIL anyway, so one lock costs nothing in throughput.
_VALIDATE = threading.Lock()


def validate(cleaned: dict[str, Any]) -> None:
    """Pass 2: full YANG validation of the pruned tree; raises :class:`MudFileError`. Thread-safe."""
    dm = schema().model
    try:
        with _VALIDATE:
            inst = dm.from_raw(cleaned)
            inst.validate(ctype=ContentType.all)
    except ValidationError as exc:
        reason = _reason(exc)
        if reason == "yang-pattern":  # the XSD regex itself is noise to a reader
            message = f"{_short(exc.instance.value)} does not match the type's pattern"
        else:
            detail = f"{exc.tag}: {exc.message}" if exc.message else str(exc.tag)
            message = detail if len(detail) <= 160 else detail[:157] + "..."
            if isinstance(exc, YangTypeError):
                message = f"{_short(exc.instance.value)}: {message}"
        raise MudFileError(reason, exc.instance.json_pointer(), message) from None
    except RawDataError as exc:  # pass 1 should have caught these; keep the route as the path
        raise MudFileError("yang-type", str(exc.path), str(exc)) from None
    except YangsonException as exc:
        raise MudFileError("yang-invalid", "/", f"{type(exc).__name__}: {exc}") from None
