"""The enforcer's settings: one oslo.config group ``[mud]``, read once into a frozen value.

``ryu-manager --config-file mud.conf mud_ryu.app`` reads the file; the app calls :func:`load` once at start and
hands the frozen :class:`MudSettings` to the core, which never touches CONF or the environment. Every option has
the safe production default; the lab switches (allow-lists, static name map, lenient content type, signatures
off) must be set explicitly. ``mud.conf.example`` in the repository lists them all.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from mud_ryu.policy.types import PolicySettings

GROUP = "mud"


class DefaultPolicy(enum.Enum):
    """What a host that announced no MUD URL may do."""

    ALLOW = "allow"  # not managed: the ACL tables pass it (a laptop, a printer)
    BOOTSTRAP_ONLY = "bootstrap-only"  # managed as quarantined: DHCP, ARP, ND only, until it announces a URL


OPTS = [
    cfg.StrOpt("state_dir", default="/var/lib/mud_ryu", help="durable state: device records, MUD cache"),
    cfg.StrOpt(
        "signature_policy",
        default="required",
        choices=["required", "if-present", "off"],
        help="MUD file signatures: required (default), verified if present, or off (labs only)",
    ),
    cfg.ListOpt("trust_anchors", default=[], help="PEM files of the CAs whose signers may sign MUD files"),
    cfg.StrOpt(
        "api_token_file",
        default=None,
        help="file holding the bearer token the REST API requires for approve/revoke/forget (unset: refused)",
    ),
    cfg.StrOpt("tls_ca_bundle", default=None, help="TLS roots for MUD servers (default: the system store)"),
    cfg.ListOpt("allowed_networks", default=[], help="lab: MUD server addresses the SSRF guard would refuse"),
    cfg.ListOpt("allowed_hosts", default=[], help="lab: MUD server names whose addresses are all accepted"),
    cfg.ListOpt("static_hosts", default=[], help="lab: name=ip[/ip...] resolved without DNS (e.g. mud.lab=10.0.0.250)"),
    cfg.BoolOpt("require_content_type", default=True, help="refuse MUD files not served as application/mud+json"),
    cfg.IntOpt("max_redirects", default=0, min=0, max=5, help="same-host https redirects followed (0 = none)"),
    cfg.FloatOpt("fetch_deadline", default=10.0, min=0.5, max=120.0, help="total seconds for one fetch"),
    cfg.IntOpt("fetch_workers", default=8, min=1, max=64, help="MUD URLs resolved in parallel by the worker"),
    cfg.IntOpt("worker_memory_mb", default=2048, min=256, help="address-space cap of the resolver worker"),
    cfg.StrOpt(
        "default_policy",
        default="allow",
        choices=[p.value for p in DefaultPolicy],
        help="hosts without a MUD URL: allow, or bootstrap-only (quarantined until they announce one)",
    ),
    cfg.IntOpt("punt_rate_pps", default=100, min=1, help="per-port rate of DHCP/LLDP copies to the controller"),
    cfg.IntOpt("punt_burst", default=20, min=1, help="burst size of that rate limit (packets)"),
    cfg.IntOpt("learn_rate_pps", default=200, min=1, help="per-switch rate of unknown-source packets punted"),
    cfg.StrOpt(
        "first_use",
        default="tofu",
        choices=["tofu", "trusted-authorities", "trusted-signers", "approve"],
        help="first MUD URL of a device: trust on first use, only under trusted_authorities/trusted_signers, or "
        "operator approval for every new device",
    ),
    cfg.ListOpt("trusted_authorities", default=[], help="MUD URL hosts accepted on first use (trusted-authorities)"),
    cfg.ListOpt(
        "trusted_signers",
        default=[],
        help="SHA-256 digests of the SubjectPublicKeyInfo of the signer CAs accepted on first use "
        "(trusted-signers); `mud-ryu verify` prints a CA's ca-spki-sha256",
    ),
    cfg.BoolOpt(
        "allow_big_change",
        default=True,
        help="draft-ietf-iotops-mud-acceptable-urls 'big change': a verified file naming a new canonical URL under "
        "the same pinned signer",
    ),
    cfg.StrOpt(
        "violation_action",
        default="quarantine",
        choices=["quarantine", "keep-last"],
        help="a refused URL change: quarantine the device, or keep its last verified policy",
    ),
    cfg.StrOpt(
        "expired_signature_action",
        default="keep-last",
        choices=["keep-last", "quarantine"],
        help="a device's MUD file whose signer certificate has expired (or is not yet valid) at a refresh: keep its "
        "last verified policy (never wider; alert signature-expired) until the file is signed again, or quarantine",
    ),
    cfg.IntOpt(
        "max_resolving_per_device",
        default=2,
        min=1,
        help="MUD URLs one device may have in resolution at once (more: fetch:busy until one is answered)",
    ),
    cfg.IntOpt("max_resolving_per_port", default=4, min=1, help="the same bound for one access port"),
    cfg.IntOpt(
        "max_resolving_per_shared_port",
        default=16,
        min=1,
        help="the same bound for a port in shared_ports (an access point or hub carrying many devices)",
    ),
    cfg.FloatOpt("min_url_change_interval", default=600.0, min=0.0, help="seconds between accepted URL changes"),
    cfg.FloatOpt(
        "min_pending_interval",
        default=60.0,
        min=0.0,
        help="seconds before an untrusted device may replace the URL change an operator reviews or approved",
    ),
    cfg.ListOpt("uplink_ports", default=[], help="dpid:port pairs that face other switches/routers (not devices)"),
    cfg.ListOpt(
        "server_ports",
        default=[],
        help="dpid:port pairs where the DHCP/DNS/NTP servers and controllers are plugged in: trusted like uplinks",
    ),
    cfg.ListOpt(
        "shared_ports",
        default=[],
        help="dpid:port pairs that legitimately carry many hosts beside a MUD device (an access point, a hub)",
    ),
    cfg.ListOpt("dhcp_servers", default=[], help="addresses of the DHCP servers and relay agents devices may use"),
    cfg.ListOpt(
        "protected_addresses",
        default=[],
        help="addresses only a trusted port may send from or claim, e.g. a static default gateway (host addresses)",
    ),
    cfg.FloatOpt("dns_ttl_floor", default=60.0, min=1.0, help="shortest life of a DNS-learned address (seconds)"),
    cfg.FloatOpt("dns_ttl_ceiling", default=86400.0, min=1.0, help="longest life of a DNS-learned address (seconds)"),
    cfg.IntOpt("dns_max_addresses", default=16, min=1, max=1024, help="addresses kept per DNS name"),
    cfg.ListOpt("dns_servers", default=[], help="addresses the RFC 8520 DNS default and controller URN expand to"),
    cfg.ListOpt("ntp_servers", default=[], help="addresses the RFC 8520 NTP default and controller URN expand to"),
    cfg.ListOpt("controllers", default=[], help="other controller classes: URN=ip[/ip...]"),
    cfg.ListOpt(
        "my_controller",
        default=[],
        help="the my-controller abstraction: addresses for every MUD URL, and/or MUD-URL=ip[/ip...] for one URL",
    ),
    cfg.ListOpt("local_networks", default=[], help="CIDRs of the local-networks abstraction"),
]


@dataclass(frozen=True, slots=True)
class MudSettings:
    state_dir: str = "/var/lib/mud_ryu"
    signature_policy: str = "required"
    trust_anchors: tuple[str, ...] = ()
    tls_ca_bundle: str | None = None
    api_token_file: str | None = None
    allowed_networks: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    static_hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    require_content_type: bool = True
    max_redirects: int = 0
    fetch_deadline: float = 10.0
    fetch_workers: int = 8
    worker_memory_mb: int = 2048
    default_policy: DefaultPolicy = DefaultPolicy.ALLOW
    punt_rate_pps: int = 100
    punt_burst: int = 20
    learn_rate_pps: int = 200
    first_use: str = "tofu"
    trusted_authorities: tuple[str, ...] = ()
    trusted_signers: tuple[str, ...] = ()
    allow_big_change: bool = True
    violation_action: str = "quarantine"
    expired_signature_action: str = "keep-last"
    max_resolving_per_device: int = 2
    max_resolving_per_port: int = 4
    max_resolving_per_shared_port: int = 16
    min_url_change_interval: float = 600.0
    min_pending_interval: float = 60.0
    uplink_ports: frozenset[tuple[int, int]] = frozenset()
    server_ports: frozenset[tuple[int, int]] = frozenset()
    shared_ports: frozenset[tuple[int, int]] = frozenset()
    dhcp_servers: tuple[str, ...] = ()
    protected_addresses: tuple[str, ...] = ()
    dns_ttl_floor: float = 60.0
    dns_ttl_ceiling: float = 86400.0
    dns_max_addresses: int = 16
    dns_servers: tuple[str, ...] = ()
    ntp_servers: tuple[str, ...] = ()
    controllers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    my_controller: tuple[str, ...] = ()  # for every MUD URL without an entry of its own
    my_controller_by_url: dict[str, tuple[str, ...]] = field(default_factory=dict)
    local_networks: tuple[str, ...] = ()

    @property
    def cache_path(self) -> str:
        return f"{self.state_dir}/mud-cache.sqlite3"

    @property
    def device_db_path(self) -> str:
        return f"{self.state_dir}/devices.sqlite3"

    @property
    def dns_db_path(self) -> str:
        return f"{self.state_dir}/dns-bindings.sqlite3"

    @property
    def lease_db_path(self) -> str:
        return f"{self.state_dir}/leases.sqlite3"

    def worker_settings(self) -> dict[str, Any]:
        """The resolver worker's settings file (``fetch.worker.WorkerSettings``)."""
        return {
            "cache_path": self.cache_path,
            "signature_policy": self.signature_policy,
            "trust_anchors": list(self.trust_anchors),
            "tls_ca_bundle": self.tls_ca_bundle,
            "allowed_networks": list(self.allowed_networks),
            "allowed_hosts": list(self.allowed_hosts),
            "require_content_type": self.require_content_type,
            "deadline_s": self.fetch_deadline,
            "max_redirects": self.max_redirects,
            "threads": self.fetch_workers,
            "max_concurrent": self.fetch_workers,
            "memory_limit_mb": self.worker_memory_mb,
            "resolve": {k: list(v) for k, v in self.static_hosts.items()},
            # A big change is a file whose own mud-url names a new canonical URL: the update policy decides on
            # it, so the manager must hand it over instead of refusing it as a mismatch.
            "require_matching_mud_url": not self.allow_big_change,
            "dns_servers": list(self.dns_servers),
        }

    def policy_settings(self) -> PolicySettings:
        return PolicySettings(
            first_use=self.first_use,  # type: ignore[arg-type]  # oslo.config's choices checked the value
            trusted_authorities=frozenset(self.trusted_authorities),
            trusted_signers=frozenset(self.trusted_signers),
            allow_big_change=self.allow_big_change,
            violation_action=self.violation_action,  # type: ignore[arg-type]
            min_change_interval_s=self.min_url_change_interval,
            min_pending_interval_s=self.min_pending_interval,
        )


def _pairs(items: list[str], what: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"[{GROUP}] {what}: expected name=value[/value...], got {item!r}")
        out[key.strip().lower() if what == "static_hosts" else key.strip()] = tuple(
            v.strip() for v in values.split("/") if v.strip()
        )
    return out


def _ports(items: list[str], what: str = "uplink_ports") -> frozenset[tuple[int, int]]:
    out = set()
    for item in items:
        dpid, sep, port = item.partition(":")
        try:
            out.add((int(dpid, 0), int(port, 0)))
        except ValueError:
            raise ValueError(f"[{GROUP}] {what}: expected dpid:port, got {item!r}") from None
        if not sep:
            raise ValueError(f"[{GROUP}] {what}: expected dpid:port, got {item!r}")
    return frozenset(out)


def register(conf: cfg.ConfigOpts) -> None:
    """Register the ``[mud]`` options (idempotent: ryu-manager may import the app module twice)."""
    with contextlib.suppress(cfg.DuplicateOptError):
        conf.register_opts(OPTS, group=GROUP)


def load(conf: cfg.ConfigOpts) -> MudSettings:
    group = conf[GROUP]
    return MudSettings(
        state_dir=group.state_dir,
        signature_policy=group.signature_policy,
        trust_anchors=tuple(group.trust_anchors),
        tls_ca_bundle=group.tls_ca_bundle or None,
        api_token_file=group.api_token_file or None,  # an empty value in the file means the system store
        allowed_networks=tuple(group.allowed_networks),
        allowed_hosts=tuple(group.allowed_hosts),
        static_hosts=_pairs(group.static_hosts, "static_hosts"),
        require_content_type=group.require_content_type,
        max_redirects=group.max_redirects,
        fetch_deadline=group.fetch_deadline,
        fetch_workers=group.fetch_workers,
        worker_memory_mb=group.worker_memory_mb,
        default_policy=DefaultPolicy(group.default_policy),
        punt_rate_pps=group.punt_rate_pps,
        punt_burst=group.punt_burst,
        learn_rate_pps=group.learn_rate_pps,
        first_use=group.first_use,
        trusted_authorities=tuple(group.trusted_authorities),
        trusted_signers=tuple(group.trusted_signers),
        allow_big_change=group.allow_big_change,
        violation_action=group.violation_action,
        expired_signature_action=group.expired_signature_action,
        max_resolving_per_device=group.max_resolving_per_device,
        max_resolving_per_port=group.max_resolving_per_port,
        max_resolving_per_shared_port=group.max_resolving_per_shared_port,
        min_url_change_interval=group.min_url_change_interval,
        min_pending_interval=group.min_pending_interval,
        uplink_ports=_ports(group.uplink_ports),
        server_ports=_ports(group.server_ports, "server_ports"),
        shared_ports=_ports(group.shared_ports, "shared_ports"),
        dhcp_servers=tuple(group.dhcp_servers),
        protected_addresses=tuple(group.protected_addresses),
        dns_ttl_floor=group.dns_ttl_floor,
        dns_ttl_ceiling=group.dns_ttl_ceiling,
        dns_max_addresses=group.dns_max_addresses,
        dns_servers=tuple(group.dns_servers),
        ntp_servers=tuple(group.ntp_servers),
        controllers=_pairs(group.controllers, "controllers"),
        my_controller=tuple(v for v in group.my_controller if "=" not in v),
        my_controller_by_url=_pairs([v for v in group.my_controller if "=" in v], "my_controller"),
        local_networks=tuple(group.local_networks),
    )
