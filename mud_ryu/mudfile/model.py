"""Typed, immutable values for a validated MUD file (RFC 8520 + ietf-access-control-list).

Only ``mudfile`` builds these (after YANG and semantic validation); everything downstream
(compiler, policy, REST) reads them. Values are already normalised: ethertypes and protocols
are ints, networks are canonical CIDR strings, port operators are kept as written and can be
turned into inclusive ranges with :meth:`PortMatch.ranges`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

PORT_MAX = 65535


class Forwarding(Enum):
    """``actions/forwarding`` identities. ``reject`` is enforced as drop (a switch cannot
    send ICMP unreachables for us); the validator warns when it sees one."""

    ACCEPT = "accept"
    DROP = "drop"
    REJECT = "reject"

    @property
    def allows(self) -> bool:
        return self is Forwarding.ACCEPT


class Direction(Enum):
    """Which side of a flow the Thing is on (policy direction and ``direction-initiated``)."""

    FROM_DEVICE = "from-device"
    TO_DEVICE = "to-device"


@dataclass(frozen=True, slots=True)
class PortMatch:
    """``source-port``/``destination-port``: ``operator`` is one of eq, neq, lt, gt, lte, gte
    (with ``port``) or ``range`` (with ``lower``/``upper``)."""

    operator: str
    port: int | None = None
    lower: int | None = None
    upper: int | None = None

    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The ports matched, as disjoint inclusive ranges in ascending order."""
        if self.operator == "range":
            assert self.lower is not None and self.upper is not None
            return ((self.lower, self.upper),)
        assert self.port is not None
        p = self.port
        match self.operator:
            case "eq":
                return ((p, p),)
            case "lt":
                return ((0, p - 1),) if p > 0 else ()
            case "lte":
                return ((0, p),)
            case "gt":
                return ((p + 1, PORT_MAX),) if p < PORT_MAX else ()
            case "gte":
                return ((p, PORT_MAX),)
            case "neq":
                out = []
                if p > 0:
                    out.append((0, p - 1))
                if p < PORT_MAX:
                    out.append((p + 1, PORT_MAX))
                return tuple(out)
        raise ValueError(f"unknown port operator {self.operator!r}")


@dataclass(frozen=True, slots=True)
class EthMatch:
    src_mac: str | None = None
    src_mac_mask: str | None = None
    dst_mac: str | None = None
    dst_mac_mask: str | None = None
    ethertype: int | None = None


@dataclass(frozen=True, slots=True)
class IpMatch:
    """The ``ipv4`` or ``ipv6`` container (``version`` says which).

    ``unsupported`` names leaves that are valid YANG but that mud_ryu cannot enforce in
    OpenFlow 1.3 (ttl, length, flags, …); the compiler refuses ACEs that use them rather
    than silently ignoring a match field (which would widen an accept)."""

    version: int
    protocol: int | None = None
    dscp: int | None = None
    ecn: int | None = None
    src_network: str | None = None
    dst_network: str | None = None
    src_dnsname: str | None = None
    dst_dnsname: str | None = None
    flow_label: int | None = None
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TcpMatch:
    src_port: PortMatch | None = None
    dst_port: PortMatch | None = None
    direction_initiated: Direction | None = None
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UdpMatch:
    src_port: PortMatch | None = None
    dst_port: PortMatch | None = None
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IcmpMatch:
    """ICMP in an IPv4 ACE, ICMPv6 in an IPv6 ACE."""

    type: int | None = None
    code: int | None = None
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MudMatch:
    """The ``ietf-mud:mud`` match container: the RFC 8520 abstractions (section 8)."""

    manufacturer: str | None = None
    same_manufacturer: bool = False
    model: str | None = None
    local_networks: bool = False
    controller: str | None = None
    my_controller: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.manufacturer
            or self.same_manufacturer
            or self.model
            or self.local_networks
            or self.controller
            or self.my_controller
        )


@dataclass(frozen=True, slots=True)
class Matches:
    eth: EthMatch | None = None
    ipv4: IpMatch | None = None
    ipv6: IpMatch | None = None
    tcp: TcpMatch | None = None
    udp: UdpMatch | None = None
    icmp: IcmpMatch | None = None
    mud: MudMatch | None = None

    @property
    def ip(self) -> IpMatch | None:
        return self.ipv4 or self.ipv6


@dataclass(frozen=True, slots=True)
class Ace:
    name: str
    matches: Matches
    forwarding: Forwarding


@dataclass(frozen=True, slots=True)
class Acl:
    name: str
    type: str | None
    aces: tuple[Ace, ...]


@dataclass(frozen=True, slots=True)
class MudFile:
    """A validated MUD file. ``from_device``/``to_device`` hold the ACLs in the order the
    policy lists them (references already resolved by the validator)."""

    mud_version: int
    mud_url: str
    last_update: str
    cache_validity: int
    is_supported: bool
    systeminfo: str | None = None
    mfg_name: str | None = None
    model_name: str | None = None
    firmware_rev: str | None = None
    software_rev: str | None = None
    documentation: str | None = None
    mud_signature: str | None = None
    extensions: tuple[str, ...] = ()
    from_device: tuple[Acl, ...] = ()
    to_device: tuple[Acl, ...] = ()

    def policy(self, direction: Direction) -> tuple[Acl, ...]:
        return self.from_device if direction is Direction.FROM_DEVICE else self.to_device

    @property
    def ace_count(self) -> int:
        return sum(len(acl.aces) for acl in (*self.from_device, *self.to_device))


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation result: a stable ``reason`` code, the JSON path it concerns (RFC 6901
    style, e.g. ``/ietf-access-control-list:acls/acl/0/aces/ace/2``) and a message."""

    reason: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason} {self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedMud:
    """What :func:`mud_ryu.mudfile.reader.parse` returns: the model plus non-fatal warnings
    (``reject`` treated as drop, unknown extension nodes stripped, …)."""

    mud: MudFile
    warnings: tuple[Finding, ...] = field(default_factory=tuple)
