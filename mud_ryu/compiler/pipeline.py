"""The declared OpenFlow 1.3 pipeline: named tables, priority bands, metadata and cookie layout.

Every packet walks the same six tables::

    0 classify_src  eth_src (+in_port) -> write src profile / manufacturer / managed bit
    1 source_guard  a managed source goes on only from its bound IP addresses (IP source guard)
    2 classify_dst  eth_dst            -> write dst profile / manufacturer / managed bit
    3 from_device   ACLs of the source's profile (metadata src bits); default deny if managed
    4 to_device     ACLs of the destination's profile (metadata dst bits); default deny if managed
    5 forward       L2 forwarding (static in ``mud-ryu compile``, learned in the app)

Both ACL tables are consulted, so traffic between two MUD devices must be allowed by the
sender's from-device policy AND the receiver's to-device policy. Unmanaged hosts miss the
classify tables, keep metadata 0 and pass the ACL tables through their table-miss entries.

Metadata (64 bits, written with masks so the two classify tables combine)::

    bits  0-15  src profile id      bits 16-31  dst profile id
    bits 32-43  src manufacturer id bits 44-55  dst manufacturer id
    bit  56     src managed         bit  57     dst managed
    bit  58     src came in on a trusted port (uplink / server port: where servers and routers are)

Cookie (64 bits)::

    bits 56-63 app id 0x4D ('M') | 52-55 kind | 32-51 owner id (profile or device) |
    16-31 generation | 0-15 sub id (e.g. address set)

so ``cookie=(app|kind|owner), cookie_mask=OWNER_MASK`` selects one profile's or one device's
flows for delete or reconciliation without touching anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from mud_ryu.compiler.flowrule import FlowRule


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    table_id: int
    match_fields: frozenset[str]
    next_table: str | None


_L3L4 = frozenset(
    {
        "eth_type",
        "ip_proto",
        "ip_dscp",
        "ip_ecn",
        "ipv4_src",
        "ipv4_dst",
        "ipv6_src",
        "ipv6_dst",
        "ipv6_flabel",
        "tcp_src",
        "tcp_dst",
        "udp_src",
        "udp_dst",
        "icmpv4_type",
        "icmpv4_code",
        "icmpv6_type",
        "icmpv6_code",
        "tcp_flags",
        "arp_op",
        "arp_spa",
        "arp_tpa",
        "arp_sha",
        "ipv6_nd_target",
        "eth_src",
        "eth_dst",
        "vlan_vid",
        "in_port",
    }
)

TABLES: tuple[Table, ...] = (
    # ip_proto/udp ports: the discovery punt flows (DHCP/DHCPv6 client messages) live in classify_src.
    Table(
        "classify_src",
        0,
        frozenset({"in_port", "eth_src", "eth_type", "vlan_vid", "ip_proto", "udp_src", "udp_dst"}),
        "source_guard",
    ),
    # A managed device goes on only from its bound addresses (sourceguard).
    Table(
        "source_guard",
        1,
        frozenset({"metadata", "eth_src", "eth_type", "ipv4_src", "ipv6_src", "arp_spa", "arp_sha", "ip_proto",
                   "icmpv6_type", "ipv6_nd_target"}),
        "classify_dst",
    ),
    Table("classify_dst", 2, frozenset({"eth_dst", "eth_type", "vlan_vid", "ip_proto", "udp_src"}), "from_device"),
    Table("from_device", 3, _L3L4 | {"metadata"}, "to_device"),
    Table("to_device", 4, _L3L4 | {"metadata"}, "forward"),
    # L3/L4 too: group-addressed frames are delivered by what the devices' to-device policies allow (floodflows).
    Table("forward", 5, _L3L4 | {"metadata"}, None),
)
TABLE_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def table_id(name: str) -> int:
    return TABLE_BY_NAME[name].table_id


# --- priority bands (higher wins). Within ACL tables, ACE order becomes descending priority.
class Band(IntEnum):
    PUNT = 50000  # classify_src: DHCP/DHCPv6/LLDP copied to the controller (metered), before anti-spoofing
    ANTI_SPOOF = 40000  # classify_src: a managed MAC seen on the wrong port
    CLASSIFY = 30000  # classify tables: one flow per device and direction
    GUARD = 63000  # from_device: what only a trusted port may send (server addresses, DHCP offers, RAs): above all
    BOOTSTRAP = 62000  # ACL tables: DHCP/ARP/ND a device needs before any ACE can matter
    ACE_TOP = 60000  # first ACE of a profile; each ACE takes ACE_STEP slots below this
    ACE_BOTTOM = 10000
    DEFAULTS = 5000  # RFC 8520 section 5 local DNS/NTP defaults, applied after all ACEs
    DEFAULT_DENY = 100  # managed device, nothing matched: drop
    LEARNED = 20000  # classify_src: a learned (unmanaged) host on its port; forward: its MAC
    LEARN = 1  # classify_src: unknown source -> copy to the controller (metered) and go on
    MISS = 0  # table-miss: go on to the next table


ACE_STEP = 4  # an ACE may need a higher-priority companion (direction-initiated SYN guard)
MAX_ACES_PER_DIRECTION = (Band.ACE_TOP - Band.ACE_BOTTOM) // ACE_STEP


# --- metadata layout
SRC_PROFILE_SHIFT, DST_PROFILE_SHIFT = 0, 16
SRC_MFG_SHIFT, DST_MFG_SHIFT = 32, 44
PROFILE_BITS, MFG_BITS = 16, 12
SRC_MANAGED_BIT, DST_MANAGED_BIT = 1 << 56, 1 << 57
TRUSTED_BIT = 1 << 58  # written in classify_src for frames from a trusted port; never by a device's flows
SRC_PROFILE_MASK = ((1 << PROFILE_BITS) - 1) << SRC_PROFILE_SHIFT
DST_PROFILE_MASK = ((1 << PROFILE_BITS) - 1) << DST_PROFILE_SHIFT
SRC_MFG_MASK = ((1 << MFG_BITS) - 1) << SRC_MFG_SHIFT
DST_MFG_MASK = ((1 << MFG_BITS) - 1) << DST_MFG_SHIFT
SRC_WRITE_MASK = SRC_PROFILE_MASK | SRC_MFG_MASK | SRC_MANAGED_BIT
DST_WRITE_MASK = DST_PROFILE_MASK | DST_MFG_MASK | DST_MANAGED_BIT
MAX_PROFILE_ID = (1 << PROFILE_BITS) - 1
MAX_MFG_ID = (1 << MFG_BITS) - 1
QUARANTINE_PROFILE_ID = 1  # reserved: bootstrap-only policy; real profiles start at 2


def src_metadata(profile_id: int, mfg_id: int) -> int:
    return (profile_id << SRC_PROFILE_SHIFT) | (mfg_id << SRC_MFG_SHIFT) | SRC_MANAGED_BIT


def dst_metadata(profile_id: int, mfg_id: int) -> int:
    return (profile_id << DST_PROFILE_SHIFT) | (mfg_id << DST_MFG_SHIFT) | DST_MANAGED_BIT


# --- cookie layout
APP_ID = 0x4D


class CookieKind(IntEnum):
    PIPELINE = 1  # table-miss, default deny, bootstrap: shared by every device
    DEVICE = 2  # classification (and anti-spoof) of one device
    PROFILE = 3  # the ACL rules of one MUD profile
    FORWARD = 4  # L2 forwarding
    ADDRESS_SET = 5  # members of an address set (DNS name, controller, …) used by a profile


APP_SHIFT, KIND_SHIFT, OWNER_SHIFT, GEN_SHIFT = 56, 52, 32, 16
OWNER_BITS = 20
APP_MASK = 0xFF << APP_SHIFT
KIND_MASK = APP_MASK | (0xF << KIND_SHIFT)
OWNER_MASK = KIND_MASK | (((1 << OWNER_BITS) - 1) << OWNER_SHIFT)
GENERATION_MASK = OWNER_MASK | (0xFFFF << GEN_SHIFT)
FULL_MASK = (1 << 64) - 1


def cookie(kind: CookieKind, owner: int = 0, generation: int = 0, sub: int = 0) -> int:
    if not 0 <= owner < (1 << OWNER_BITS):
        raise ValueError(f"cookie owner id {owner} out of range")
    return (
        (APP_ID << APP_SHIFT)
        | (int(kind) << KIND_SHIFT)
        | (owner << OWNER_SHIFT)
        | ((generation & 0xFFFF) << GEN_SHIFT)
        | (sub & 0xFFFF)
    )


@dataclass(frozen=True, slots=True)
class CookieParts:
    app: int
    kind: int
    owner: int
    generation: int
    sub: int


def parse_cookie(value: int) -> CookieParts:
    return CookieParts(
        app=(value >> APP_SHIFT) & 0xFF,
        kind=(value >> KIND_SHIFT) & 0xF,
        owner=(value >> OWNER_SHIFT) & ((1 << OWNER_BITS) - 1),
        generation=(value >> GEN_SHIFT) & 0xFFFF,
        sub=value & 0xFFFF,
    )


class PipelineError(ValueError):
    """A flow that does not fit the declared pipeline: a programmer error, raised loudly."""


def verify_rule(rule: FlowRule) -> None:
    """Check a rule against its table's declaration (fields, goto direction, priority)."""
    table = TABLE_BY_NAME.get(rule.table)
    if table is None:
        raise PipelineError(f"unknown table {rule.table!r}")
    extra = {name for name, _ in rule.match} - table.match_fields
    if extra:
        raise PipelineError(f"table {rule.table} does not match on {sorted(extra)}")
    if rule.goto is not None:
        target = TABLE_BY_NAME.get(rule.goto)
        if target is None or target.table_id <= table.table_id:
            raise PipelineError(f"table {rule.table} cannot goto {rule.goto!r}")
    if not 0 <= rule.priority <= 0xFFFF:
        raise PipelineError(f"priority {rule.priority} out of range")
