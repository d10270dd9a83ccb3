"""Values the flow compiler returns, and its one exception."""

from __future__ import annotations

from dataclasses import dataclass

from mud_ryu.errors import ReasonError
from mud_ryu.flowrule import FlowRule
from mud_ryu.model import Direction, Finding


class CompileError(ReasonError):
    """A MUD file (or context) that cannot be enforced exactly: refused rather than widened.

    ``reason`` is a stable code (``unsupported-match``, ``conflicting-match``,
    ``too-many-aces``, ``too-many-flows``, ``bad-context``, ``bad-device``); ``path`` names
    the ACE as ``<direction>/<acl name>/<ace name>`` (empty when not about one ACE)."""

    def __init__(self, reason: str, path: str, message: str) -> None:
        super().__init__(reason, message, path)


@dataclass(frozen=True, slots=True)
class AceFlowCount:
    """How many flows one ACE became (0 when an address set was empty or an id unknown)."""

    direction: Direction
    acl: str
    ace: str
    flows: int


@dataclass(frozen=True, slots=True)
class AddressSetRef:
    """The cookie ``sub`` id given to flows that depend on these address sets, so the app can
    replace exactly them (cookie kind ADDRESS_SET, owner = profile id) when a set changes.
    ``keys`` are ``dns:<name>``, ``controller:<uri>``, ``my-controller`` or ``local-networks``."""

    sub: int
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    """The shared ACL rules of one MUD profile (both ACL tables), matched on profile metadata."""

    profile_id: int
    rules: tuple[FlowRule, ...]
    warnings: tuple[Finding, ...]
    ace_flows: tuple[AceFlowCount, ...]
    address_sets: tuple[AddressSetRef, ...]


@dataclass(frozen=True, slots=True)
class SwitchFlows:
    """Everything one switch needs for one device, plus what the compiler warned about."""

    rules: tuple[FlowRule, ...]
    profile: CompiledProfile
    warnings: tuple[Finding, ...]
