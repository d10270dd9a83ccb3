"""Values the flow compiler returns, and its one exception."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.errors import ReasonError
from mud_ryu.mudfile.model import Ace, Acl, Direction, Finding, MudFile


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
class RuleGroup:
    """The flows of one ACE, or of one direction's RFC 8520 defaults (``acl``/``ace`` None), as the profile holds
    them.

    Groups never share a ``(table, priority)`` slot (each ACE owns its own slot, the defaults sit below every
    ACE, each direction has its own table), so deduplicating within a group is deduplicating the profile, and a
    group can be re-expanded alone when an address set it names changes."""

    direction: Direction
    index: int  # the ACE's position in its direction (its priority slot); for the defaults, the ACE count
    acl: Acl | None
    ace: Ace | None
    count: AceFlowCount | None  # None: the defaults
    set_keys: frozenset[str]  # every address set its flows depend on, with or without members
    sub_keys: tuple[tuple[str, ...], ...]  # the key combinations it took cookie subs for, in first-use order
    rules: tuple[FlowRule, ...]  # deduplicated and verified
    warnings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class ProfileGroups:
    """What :func:`~mud_ryu.compiler.compile.recompile_sets` needs besides the new context: the file, the groups in
    profile order with an index of them by address-set key, and the id maps they were compiled against (ids are not
    address sets: a change there means a full compile)."""

    mud: MudFile
    profile_ids: Mapping[str, int]
    manufacturer_ids: Mapping[str, int]
    groups: tuple[RuleGroup, ...]
    by_key: Mapping[str, tuple[int, ...]]  # set key -> positions in ``groups`` of the groups naming it


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    """The shared ACL rules of one MUD profile (both ACL tables), matched on profile metadata.

    ``groups`` (not compared: it is derived from the same inputs as the other fields) lets an address-set change
    recompile only the ACEs naming the set; None for profiles not built by ``compile_profile``."""

    profile_id: int
    rules: tuple[FlowRule, ...]
    warnings: tuple[Finding, ...]
    ace_flows: tuple[AceFlowCount, ...]
    address_sets: tuple[AddressSetRef, ...]
    groups: ProfileGroups | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SwitchFlows:
    """Everything one switch needs for one device, plus what the compiler warned about."""

    rules: tuple[FlowRule, ...]
    profile: CompiledProfile
    warnings: tuple[Finding, ...]
