"""What the compiler needs to know about the network besides the MUD file itself.

A MUD file names abstractions (DNS names, controller classes, "my-controller", local networks,
other manufacturers and models); this module holds their current expansion as plain values so
the compiler stays pure. The app fills a :class:`NetworkContext` from configuration, learned DNS
answers and its id allocator; ``mud-ryu compile`` fills one from command-line flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from mud_ryu.compiler.pipeline import MAX_MFG_ID, MAX_PROFILE_ID, QUARANTINE_PROFILE_ID

DNS_CONTROLLER_URN = "urn:ietf:params:mud:dns"
NTP_CONTROLLER_URN = "urn:ietf:params:mud:ntp"
FIRST_PROFILE_ID = QUARANTINE_PROFILE_ID + 1
FIRST_MFG_ID = 1  # manufacturer id 0 means "not classified"

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalize_mac(mac: str) -> str:
    """Lower-case colon form; ``ValueError`` for anything else (the caller turns it into a reason)."""
    value = mac.strip().lower().replace("-", ":")
    if not _MAC_RE.match(value):
        raise ValueError(f"not a MAC address: {mac!r}")
    return value


def url_authority(url: str) -> str:
    """The authority of a MUD URL, the key of ``manufacturer``/``same-manufacturer`` (RFC 8520 s8)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # an unparsable authority has no manufacturer
        return ""


def _frozen(mapping: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class DeviceSpec:
    """One device on one switch: its MAC, the port it is attached to, the port toward the rest
    of the network (used only by static forwarding) and the owner id in its cookies."""

    mac: str
    device_port: int
    uplink_port: int
    device_id: int = 1


@dataclass(frozen=True)
class NetworkContext:
    """Expansion of the MUD abstractions at compile time. Every field has a default, so
    ``NetworkContext()`` is valid: then every address set is empty and the ACEs that need
    one compile to no flows (never to a wildcard)."""

    dns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    controllers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    my_controller: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    local_networks: tuple[str, ...] = ()
    profile_ids: Mapping[str, int] = field(default_factory=dict)
    manufacturer_ids: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only views: the context is shared between compilations and must not change under them.
        for name in ("dns", "controllers", "my_controller", "profile_ids", "manufacturer_ids"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "local_networks", tuple(self.local_networks))

    def profile_id(self, mud_url: str) -> int | None:
        return self.profile_ids.get(mud_url)

    def manufacturer_id(self, authority: str) -> int | None:
        return self.manufacturer_ids.get(authority.lower())

    def with_identity(self, mud_url: str) -> NetworkContext:
        """This context plus a profile id for ``mud_url`` and a manufacturer id for its
        authority, allocated as the next free ids when missing (``mud-ryu compile``, tests)."""
        profiles = dict(self.profile_ids)
        mfgs = {k.lower(): v for k, v in self.manufacturer_ids.items()}
        if mud_url not in profiles:
            profiles[mud_url] = max([FIRST_PROFILE_ID - 1, *profiles.values()]) + 1
        authority = url_authority(mud_url)
        if authority not in mfgs:
            mfgs[authority] = max([FIRST_MFG_ID - 1, *mfgs.values()]) + 1
        if profiles[mud_url] > MAX_PROFILE_ID or mfgs[authority] > MAX_MFG_ID:
            raise ValueError("profile or manufacturer id space exhausted")
        return NetworkContext(
            dns=self.dns,
            controllers=self.controllers,
            my_controller=self.my_controller,
            local_networks=self.local_networks,
            profile_ids=profiles,
            manufacturer_ids=mfgs,
        )
