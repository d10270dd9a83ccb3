"""The enforcer's values: the effects it returns, a device as it tracks it, a compiled profile, a switch's state."""

from __future__ import annotations

from dataclasses import dataclass, field

from mud_ryu.compiler.flowrule import FlowRule
from mud_ryu.compiler.types import CompiledProfile
from mud_ryu.enforcer.devicestore import DeviceRecord
from mud_ryu.mudfile.model import MudFile

Owner = tuple[str, object]
SWITCH_OWNER: Owner = ("switch", 0)


@dataclass(frozen=True, slots=True)
class FlowUpdate:
    dpid: int
    adds: tuple[FlowRule, ...]
    deletes: tuple[FlowRule, ...]
    confirms: tuple[str, ...] = ()  # MACs whose records are saved once the switch confirms (barrier)
    stale: tuple[object, ...] = ()  # reconciliation: entries the switch reported that nothing wants (app refs)


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    url: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class Alert:
    code: str  # stable: quarantined, spoofed-announcement, bad-url, malformed-announcement, kept-last, ...
    mac: str
    dpid: int
    port: int
    url: str
    message: str


@dataclass(frozen=True, slots=True)
class PacketOut:
    """Send ``data`` out of ``port`` -- after the flow updates returned before it (the app puts a barrier first).
    ``resubmit``: put it back into the pipeline instead, as if it had come in on ``port`` (a held frame whose
    source was just bound)."""

    dpid: int
    port: int
    data: bytes
    resubmit: bool = False


@dataclass(frozen=True, slots=True)
class ResolveNames:
    """Resolve these DNS names through the configured resolvers, so a device's first connection finds them bound."""

    names: tuple[str, ...]


Effect = FlowUpdate | ResolveRequest | Alert | PacketOut | ResolveNames


@dataclass
class Device:
    mac: str
    device_id: int
    dpid: int
    port: int
    url: str | None
    via: str
    state: str  # quarantined | enforced | absent
    sha256: str | None = None
    reason: str = ""
    updated_at: float = 0.0

    @classmethod
    def from_record(cls, r: DeviceRecord) -> Device:
        return cls(r.mac, r.device_id, r.dpid, r.port, r.url, r.via, r.state, r.sha256, r.reason, r.updated_at)

    def record(self) -> DeviceRecord:
        return DeviceRecord(
            self.mac, self.device_id, self.dpid, self.port, self.url, self.via, self.state, self.sha256, self.reason,
            self.updated_at,
        )  # fmt: skip


@dataclass
class Profile:
    url: str
    sha256: str
    profile_id: int
    mfg_id: int
    compiled: CompiledProfile
    file_mud_url: str = ""  # the file's own mud-url (differs from ``url`` only in a draft "big change")
    dns_names: frozenset[str] = frozenset()  # names its ACEs use: their addresses come from DNS answers
    mud: MudFile | None = None  # the validated file, kept to recompile when a DNS binding changes


@dataclass
class SwitchState:
    dpid: int
    metered: bool
    ports_up: set[int] = field(default_factory=set)
    owners: dict[Owner, frozenset[FlowRule]] = field(default_factory=dict)
    slots: dict[tuple[str, int, tuple[tuple[str, object], ...]], int] = field(default_factory=dict)  # refcounts
    device_profile: dict[str, int] = field(default_factory=dict)  # MAC -> profile id its flows currently use
    hosts: dict[str, int] = field(default_factory=dict)  # learned unmanaged MAC -> port


def slot(rule: FlowRule) -> tuple[str, int, tuple[tuple[str, object], ...]]:
    return (rule.table, rule.priority, rule.match)
