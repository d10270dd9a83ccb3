"""The enforcer's DNS events: devices' queries and the answers held for them, the worker's proactive resolutions,
and expiry. Every change recompiles the profiles that use the names and sends each switch only the changed flows
(:meth:`FlowBook._recompile_for_dns`); a held answer is released to its device after those flows (a
:class:`PacketOut` the app sends behind a barrier).
"""

from __future__ import annotations

from collections.abc import Mapping

from mud_ryu.dnsbind import Ignored
from mud_ryu.dnsframe import DnsAnswer, DnsQuery
from mud_ryu.enforcer_flows import FlowBook
from mud_ryu.enforcer_state import Effect, PacketOut

# Held DNS answers that are not released: not from a configured resolver, or answering no query the device sent.
DROPPED_ANSWERS = frozenset({"not-resolver", "unsolicited", "wrong-txid", "wrong-client"})


class DnsEvents(FlowBook):
    def dns_seen(self, scanned: object, now: float, frame: bytes = b"") -> list[Effect]:
        """A punted DNS query or a held DNS answer (:func:`mud_ryu.dnsframe.scan_dns`). Answers from the configured
        resolvers to queries that were seen may add addresses to the names active profiles use; the answer is then
        released to its device after the flows that allow those addresses (``frame``: the held bytes)."""
        if isinstance(scanned, DnsQuery):
            self.dns.query_seen(scanned, now)
            return []
        if not isinstance(scanned, DnsAnswer):
            return []
        device = self.devices.get(scanned.client_mac)
        update = self.dns.answer_seen(scanned, now)
        if isinstance(update, Ignored):
            if update.reason in DROPPED_ANSWERS:
                return []  # spoofed or unsolicited: the device never sees it
            effects: list[Effect] = []
        else:
            effects = [] if update.empty else self._recompile_for_dns(frozenset(update.names()))
        if device is not None and device.state != "absent" and frame:
            effects.append(PacketOut(device.dpid, device.port, frame))
        return effects

    def dns_resolved(self, answers: Mapping[str, tuple[tuple[str, ...], float]], now: float) -> list[Effect]:
        """The worker resolved a profile's names through the configured resolvers: bind them (the same rules as
        answers seen on the wire: TTL clamp, caps, expiry)."""
        names: set[str] = set()
        for name, (addresses, ttl) in answers.items():
            try:
                update = self.dns.seed(name, addresses, ttl, now)
            except ValueError:
                continue
            if not isinstance(update, Ignored):
                names.update(update.names())
        return self._recompile_for_dns(frozenset(names)) if names else []

    def dns_expire(self, now: float) -> list[Effect]:
        """Addresses past their TTL leave their names' sets (after the new ones, if any, went in)."""
        update = self.dns.expire(now)
        return [] if update.empty else self._recompile_for_dns(frozenset(update.names()))
