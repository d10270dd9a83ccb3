"""The enforcer's profiles: verified MUD files compiled against the network's values, put in force, recompiled.

A profile is one file in force for one URL, compiled once and shared by every device of that URL on a switch. The
book prepares a verified file (parse, gate its own mud-url, allocate the ids its abstractions need, compile), puts
it in force, and re-expands only the ACEs whose address sets changed (a DNS answer, the operator's my-controller
entry). It computes no flows: a recompilation returns the profile ids that changed, and the caller has the flow
book resend them (:meth:`~mud_ryu.enforcer.flows.FlowBook.sync_profiles`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

from mud_ryu.compiler.compile import compile_profile, quarantine_profile, recompile_sets
from mud_ryu.compiler.context import DNS_CONTROLLER_URN, NTP_CONTROLLER_URN, NetworkContext, url_authority
from mud_ryu.compiler.pipeline import QUARANTINE_PROFILE_ID
from mud_ryu.compiler.types import CompileError
from mud_ryu.dns.bind import normalize_name
from mud_ryu.enforcer import my_controller
from mud_ryu.enforcer.network import EnforcerState
from mud_ryu.enforcer.state import Profile
from mud_ryu.fetch.urlgate import UrlRejected, check_mud_url
from mud_ryu.mudfile import reader as mudfile
from mud_ryu.mudfile.errors import MudFileError
from mud_ryu.mudfile.model import MudFile

log = logging.getLogger(__name__)


class ProfileBook:
    """Compiles and registers the profiles of one enforcer, in its :class:`EnforcerState`."""

    def __init__(self, state: EnforcerState) -> None:
        self._state = state
        # Quarantined devices share one profile: the RFC 8520 local DNS/NTP defaults (DHCP/ARP/ND: bootstrap band).
        self.quarantine = Profile("", "", QUARANTINE_PROFILE_ID, 0, quarantine_profile(self.context()))

    def context(self, mud_urls: Iterable[str] = ()) -> NetworkContext:
        """The network's values for compiling ``mud_urls`` (the files' own mud-urls: my-controller is looked up by
        them, as each file writes it; a URL not given expands to nothing)."""
        state, settings = self._state, self._state.settings
        controllers = dict(settings.controllers)
        if settings.dns_servers:
            controllers.setdefault(DNS_CONTROLLER_URN, settings.dns_servers)
        if settings.ntp_servers:
            controllers.setdefault(NTP_CONTROLLER_URN, settings.ntp_servers)
        return NetworkContext(
            dns=state.dns.current(),
            controllers=controllers,
            my_controller=my_controller.view(
                mud_urls, settings.my_controller, settings.my_controller_by_url, state.my_controller
            ),
            local_networks=settings.local_networks,
            profile_ids=state.profile_ids,
            manufacturer_ids=state.manufacturer_ids,
        )

    def prepare(self, url: str, sha256: str, body: bytes) -> Profile | str:
        """Parse and compile a verified file (not yet in force); return it or a failure reason."""
        current = self._state.profiles.get(url)
        if current is not None and current.sha256 == sha256:
            return current
        try:
            parsed = mudfile.parse(body)
        except MudFileError as error:
            return f"mud:{error.finding.reason}"
        try:
            # The file's own mud-url, through the same gate as every announced URL. A file whose mud-url fails it
            # is invalid: substituting the fetched URL would hide a mismatch the update policy must see.
            canonical = check_mud_url(parsed.mud.mud_url).url
        except UrlRejected:
            return "mud:bad-mud-url"
        # One canonical URL decides the device's manufacturer (its classification and same-manufacturer alike),
        # its model and its my-controller: the raw string never reaches the compiler.
        mud = dataclasses.replace(parsed.mud, mud_url=canonical)
        profile_id = self._state.profile_id(url)
        mfg_id = self._state.manufacturer_id(url_authority(canonical))
        self._allocate_referenced_ids(mud)
        try:
            compiled = compile_profile(mud, self.context((canonical,)), profile_id)
        except CompileError as error:
            return f"compile:{error.reason}"
        names = _dns_names(mud)
        return Profile(url, sha256, profile_id, mfg_id, compiled, canonical, names, mud)

    def _allocate_referenced_ids(self, mud: MudFile) -> None:
        """Give every manufacturer and model an ACE names an id now, even with no such device yet: the ACE then
        compiles to a metadata match, and a device of that manufacturer or model joins it live when it is
        classified -- no recompilation when devices come and go (RFC 8520 s8 abstractions)."""
        for acl in (*mud.from_device, *mud.to_device):
            for ace in acl.aces:
                match = ace.matches.mud
                if match is None:
                    continue
                if match.manufacturer:
                    self._state.manufacturer_id(match.manufacturer)
                if match.model:
                    self._state.profile_id(match.model)

    def register(self, profile: Profile, body: bytes) -> None:
        """Put a prepared file in force for its URL (its bytes kept so a restart compiles the same flows)."""
        state = self._state
        state.store.save_body(profile.sha256, body)
        state.profiles[profile.url] = profile
        state.url_of_profile[profile.profile_id] = profile.url
        state.dns.watch(profile.url, profile.dns_names)

    def install(self, url: str, sha256: str, body: bytes) -> Profile | str:
        """Prepare and register (at start: the files the device rows name)."""
        prepared = self.prepare(url, sha256, body)
        if isinstance(prepared, Profile):
            self.register(prepared, body)
        return prepared

    # ---- recompilation when address sets change
    def recompile(self, selected: Callable[[Profile], bool], changed: frozenset[str], why: str) -> list[int]:
        """Re-expand, in the profiles in force that ``selected`` picks, only the ACEs using the address sets named in
        ``changed`` (``dns:<name>``, ``my-controller``; the compiler's set keys); return the ids of the profiles
        recompiled. The profile's other rules are reused as compiled (``recompile_sets``). A profile that no longer
        compiles keeps its flows: never a widening, and the log says why."""
        profiles = self._state.profiles
        chosen = [(url, p, p.mud) for url, p in profiles.items() if p.mud is not None and selected(p)]
        context = self.context(mud.mud_url for _, _, mud in chosen)
        recompiled: list[int] = []
        for url, profile, mud in chosen:
            try:
                compiled = recompile_sets(profile.compiled, mud, context, changed)
            except CompileError as error:
                log.error("recompiling %s for %s failed (%s): keeping its flows", url, why, error.reason)
                continue
            profiles[url] = dataclasses.replace(profile, compiled=compiled)
            recompiled.append(profile.profile_id)
        return recompiled

    def recompile_for_dns(self, names: frozenset[str]) -> list[int]:
        """Address sets changed for ``names`` (binding keys: lower case, no trailing dot): recompile the profiles
        using them. A file may spell a name otherwise (``example.com.``); its ACEs' set keys are its spellings."""
        profiles = self._state.profiles.values()
        spellings = {s for p in profiles for s in p.dns_names if normalize_name(s) in names}
        changed = frozenset(f"dns:{name}" for name in names | spellings)
        return self.recompile(lambda profile: bool(profile.dns_names & spellings), changed, "new DNS bindings")

    # ---- the operator's my-controller entries
    def my_controller_entries(self) -> list[my_controller.MyControllerEntry]:
        """Every per-URL my-controller entry, sorted by URL (an operator entry wins over the settings')."""
        return my_controller.entries(self._state.settings.my_controller_by_url, self._state.my_controller)

    def set_my_controller(self, url: str, addresses: Iterable[str] | None) -> list[int]:
        """Set (``addresses``) or clear (None: back to the settings) the operator's my-controller entry for a MUD
        URL, durably, then recompile the profiles in force for that URL whose file uses my-controller (their ids
        returned). Raises :class:`~mud_ryu.enforcer.my_controller.MyControllerRefused` (``bad-url:*``,
        ``bad-field``, ``bad-address``, ``too-broad``, ``unknown-entry``) before anything changes, or StoreError."""
        state = self._state
        if addresses is None:
            canonical = my_controller.canonical_url(url)
            if not state.store.clear_my_controller(canonical):
                raise my_controller.MyControllerRefused("unknown-entry", f"no operator entry for {canonical}")
            state.my_controller.pop(canonical, None)
        else:
            canonical, entry = my_controller.check_entry(url, list(addresses))
            state.store.set_my_controller(canonical, entry)
            state.my_controller[canonical] = entry

        def selected(profile: Profile) -> bool:
            assert profile.mud is not None  # recompile skips profiles without their file
            own = {profile.url, my_controller.canonical_url_or_none(profile.file_mud_url or profile.mud.mud_url)}
            return canonical in own and my_controller.uses_my_controller(profile.mud)

        return self.recompile(selected, frozenset({"my-controller"}), f"my-controller of {canonical}")


def _dns_names(mud: MudFile) -> frozenset[str]:
    names: set[str] = set()
    for acl in (*mud.from_device, *mud.to_device):
        for ace in acl.aces:
            for ip in (ace.matches.ipv4, ace.matches.ipv6):
                if ip is not None:
                    names.update(n for n in (ip.src_dnsname, ip.dst_dnsname) if n)
    return frozenset(names)
