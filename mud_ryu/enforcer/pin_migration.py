"""Start-up migration of signer pins stored before a CA was named by its public key (issue: SKI-only pins).

A pin used to name its CA by the Subject Key Identifier, a value the CA chooses: a second configured anchor could
copy it. Pins now carry the SHA-256 of the CA's SubjectPublicKeyInfo. A stored pin without it is given the SPKI of
the one configured trust anchor whose key id it names; that anchor is what verified the pinned file, since only
configured anchors ever verify. Where several anchors share the key id, or none has it, the pin stays unresolved:
it matches no signer (never wider), and the operator is told which devices need a review.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from cryptography import x509

from mud_ryu.enforcer.state import Alert
from mud_ryu.fetch.signature import ski_hex, spki_sha256

__all__ = ["ALERT_CODE", "anchors_by_key_id", "migrate", "spki_sha256"]
from mud_ryu.policy.store import PinMigration, TrustStore

ALERT_CODE = "pin-unresolved"


def anchors_by_key_id(anchors: Sequence[x509.Certificate]) -> dict[str, frozenset[str]]:
    """Key id (hex) -> SPKI digests of the anchors carrying it; more than one digest is an ambiguous key id."""
    found: defaultdict[str, set[str]] = defaultdict(set)
    for anchor in anchors:
        found[ski_hex(anchor)].add(spki_sha256(anchor))
    return {key_id: frozenset(spkis) for key_id, spkis in found.items()}


def migrate(store: TrustStore, anchors: Sequence[x509.Certificate]) -> tuple[PinMigration, list[Alert]]:
    """Migrate the store's legacy pins; one alert per pin left unresolved."""
    result = store.migrate_legacy_pins(anchors_by_key_id(anchors))
    alerts = [
        Alert(
            ALERT_CODE, identity.mac, identity.dpid, identity.port, "",
            "the pinned signer's CA is named only by its key id and no single configured trust anchor has it: "
            "the pin matches no signer until an operator approves this device's URL again",
        )
        for identity in result.unresolved
    ]  # fmt: skip
    return result, alerts
