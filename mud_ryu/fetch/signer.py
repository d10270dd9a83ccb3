"""Who signed a MUD file: the form the update policy pins and compares (draft-ietf-iotops-mud-acceptable-urls s5.1).

The CA is named by the SHA-256 of its SubjectPublicKeyInfo, never by its Subject Key Identifier alone: the SKI is a
value the CA chooses, so a second configured anchor could copy a vendor's SKI and issue a certificate with the
vendor's signer name. The SKI is kept for operators to read. The chain of subject names and subjectAltNames down to
the end entity is recorded, as the draft asks of a pin. One JSON form (:meth:`Signer.to_json`) serves the trust store,
the cache, the worker's wire and the API; it also reads the legacy form stored before the SPKI was recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed, in the form the update policy pins (same CA public key and same end entity on a URL change)."""

    ca_key_id: str  # hex Subject Key Identifier of the trust anchor the chain ends at: shown, never compared
    subject_chain: tuple[str, ...]  # RFC 4514 subjects, signer first, anchor last
    # hex SHA-256 of the anchor's SubjectPublicKeyInfo: the CA's identity. None only in a pin stored before it was
    # recorded (a legacy pin): such a pin matches no signer until it is migrated (truststore.migrate_legacy_pins).
    ca_spki: str | None = None
    alt_names: tuple[tuple[str, ...], ...] = ()  # subjectAltNames of each certificate of subject_chain, same order
    # When the first certificate of the chain verified expires (epoch seconds): how long the verification holds.
    # Not part of who signed (never compared, never pinned or stored); None where it was not verified just now.
    valid_until: float | None = field(default=None, compare=False)

    def __str__(self) -> str:
        keyid = ":".join(self.ca_key_id[i : i + 2] for i in range(0, len(self.ca_key_id), 2))
        spki = f", SPKI sha256 {self.ca_spki[:16]}..." if self.ca_spki else ", legacy pin without SPKI"
        return f"{self.subject_chain[0]} (CA keyid {keyid}{spki})"

    def to_json(self) -> dict[str, object]:
        """The one JSON form of a signer (trust store, cache, worker wire, REST)."""
        return {
            "ca_key_id": self.ca_key_id,
            "ca_spki_sha256": self.ca_spki,
            "subject_chain": list(self.subject_chain),
            "alt_names": [list(names) for names in self.alt_names],
        }

    @classmethod
    def from_json(cls, data: object) -> Signer:
        """Decode :meth:`to_json` (or a legacy form with ``ca_key_id`` and ``subject_chain``/``subjects`` only, as
        stored before the SPKI was recorded); ``ValueError`` on any other shape: stored rows are untrusted input."""
        if not isinstance(data, dict):
            raise ValueError("signer is not an object")
        legacy_subjects = "subjects" if "subjects" in data else "subject_chain"
        allowed = {"ca_key_id", "ca_spki_sha256", "subject_chain", "alt_names", "subjects"}
        if not set(data) <= allowed or "ca_key_id" not in data or legacy_subjects not in data:
            raise ValueError("signer has the wrong keys")
        key_id, chain = data["ca_key_id"], data[legacy_subjects]
        spki, alt = data.get("ca_spki_sha256"), data.get("alt_names", [])
        if not isinstance(key_id, str) or not isinstance(chain, list) or not chain:
            raise ValueError("signer has the wrong types")
        if not all(isinstance(s, str) for s in chain):
            raise ValueError("signer subject chain holds a non-string")
        if spki is not None and not (isinstance(spki, str) and _is_sha256_hex(spki)):
            raise ValueError("signer ca_spki_sha256 is not a SHA-256 hex digest")
        if not isinstance(alt, list) or not all(_strings(n) for n in alt):
            raise ValueError("signer alt_names is not a list of lists of strings")
        if alt and len(alt) != len(chain):
            raise ValueError("signer alt_names does not follow the subject chain")
        return cls(key_id, tuple(chain), spki, tuple(tuple(n) for n in alt))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def spki_sha256(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER SubjectPublicKeyInfo: what names a CA (RFC 7469's pin form)."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def ski_hex(cert: x509.Certificate) -> str:
    """The certificate's Subject Key Identifier (hex), or the RFC 5280 method-1 value when it carries none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


def alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for name in names:
        match name:
            case x509.DNSName() | x509.UniformResourceIdentifier() | x509.RFC822Name():
                out.append(f"{_SAN_LABEL[type(name)]}:{name.value}")
            case x509.IPAddress():
                out.append(f"IP:{name.value}")
            case x509.DirectoryName():
                out.append(f"dirName:{name.value.rfc4514_string()}")
            case _:
                out.append(f"{type(name).__name__}:{name.value!r}")
    return tuple(out)


_SAN_LABEL: dict[type, str] = {x509.DNSName: "DNS", x509.UniformResourceIdentifier: "URI", x509.RFC822Name: "email"}
