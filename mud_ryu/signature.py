"""Detached CMS (RFC 5652) signature verification of MUD files (RFC 8520 section 13).

Pure: bytes in, :class:`Signer` out or :class:`SignatureError` raised; the validation time is
injected (``at``), the clock is never read here.

``cryptography`` has no public CMS verification, so the SignedData is parsed with asn1crypto and
each step is checked with cryptography primitives. The trust decision itself (chain to an anchor,
validity periods, CA constraints) is made by cryptography's ``x509.verification`` verifier; our own
chain walk (:func:`_classify_chain_failure`) only picks the reason code after it has said no.

Reason codes (stable): malformed, several-signers, attached-not-detached, weak-digest,
unsupported-algorithm, missing-signed-attributes, content-type, digest-mismatch,
signer-cert-missing, bad-signature, key-usage, eku, weak-key, untrusted-chain, expired, not-yet-valid.

Who signed (:class:`Signer`) is named by the trust anchor's public key (SHA-256 of its SubjectPublicKeyInfo), never
by its Subject Key Identifier alone: the SKI is a value the CA chooses, so a second configured anchor could copy a
vendor's SKI and issue a certificate with the vendor's signer name. The SKI is kept for operators to read. The chain
of subject names and subjectAltNames down to the end entity is recorded, as draft-ietf-iotops-mud-acceptable-urls
s5.1 asks of a pin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification

from mud_ryu.errors import ReasonError

# Only SHA-2 of at least 256 bits: SHA-1 and MD5 collisions make a signature over them worthless.
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_WEAK_DIGESTS = frozenset({"md2", "md5", "sha1", "sha224", "sha512_224", "sha512_256"})
# Signature algorithm OIDs that carry their own hash; it must be the SignerInfo's digest.
_RSA_WITH_HASH = {"sha256_rsa": "sha256", "sha384_rsa": "sha384", "sha512_rsa": "sha512"}
_ECDSA_WITH_HASH = {"sha256_ecdsa": "sha256", "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512"}
# What cryptography raises on a certificate it cannot decode (names and extensions decode lazily).
_CERT_PARSE_ERRORS = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
)
_WEAK_SIGNATURE_ALGORITHMS = frozenset({"md2_rsa", "md5_rsa", "sha1_rsa", "sha224_rsa", "sha1_ecdsa", "sha224_ecdsa"})


class SignatureError(ReasonError):
    """The signature does not prove the content came from a trusted signer; ``reason`` is stable."""


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed, in the form the update policy pins (same CA public key and same end entity on a URL change)."""

    ca_key_id: str  # hex Subject Key Identifier of the trust anchor the chain ends at: shown, never compared
    subject_chain: tuple[str, ...]  # RFC 4514 subjects, signer first, anchor last
    # hex SHA-256 of the anchor's SubjectPublicKeyInfo: the CA's identity. None only in a pin stored before it was
    # recorded (a legacy pin): such a pin matches no signer until it is migrated (truststore.migrate_legacy_pins).
    ca_spki: str | None = None
    alt_names: tuple[tuple[str, ...], ...] = ()  # subjectAltNames of each certificate of subject_chain, same order

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


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What the checks need, pulled out of the lazily-parsed asn1crypto tree in one guarded step."""

    signer_count: int
    attached: bool
    digest_name: str
    signature_algorithm: str
    pss_params: Any
    signed_attrs_der: bytes | None  # re-tagged as SET OF, as RFC 5652 5.4 says it is signed
    content_types: list[str]
    message_digests: list[bytes]
    signature: bytes
    sid_kind: str
    sid_issuer_der: bytes
    sid_serial: int
    sid_key_id: bytes
    certificates: list[bytes]


def load_trust_anchors(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Parse one or more PEM certificates; an empty or broken bundle is an error, never 'trust nothing'."""
    try:
        anchors = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise SignatureError("malformed", f"trust anchor PEM: {exc}") from exc
    if not anchors:
        raise SignatureError("malformed", "trust anchor PEM holds no certificate")
    return anchors


def load_anchor_files(paths: Sequence[str]) -> tuple[x509.Certificate, ...]:
    """Trust anchors from PEM files (each may hold several certificates)."""
    anchors: list[x509.Certificate] = []
    for path in paths:
        with open(path, "rb") as handle:
            anchors.extend(load_trust_anchors(handle.read()))
    return tuple(anchors)


def _attr_values(attrs: Any, name: str) -> list[Any]:
    out: list[Any] = []
    for attr in attrs:
        if attr["type"].native == name:
            out.extend(attr["values"])
    return out


def _parse(signature_der: bytes) -> _Parsed:
    info = cms.ContentInfo.load(signature_der, strict=True)
    if info["content_type"].native != "signed_data":
        raise SignatureError("malformed", f"ContentInfo holds {info['content_type'].native}, not signed_data")
    sd = info["content"]
    signer_infos = list(sd["signer_infos"])
    if len(signer_infos) != 1:
        return _Parsed(len(signer_infos), False, "", "", None, None, [], [], b"", "", b"", 0, b"", [])
    si = signer_infos[0]
    eci = sd["encap_content_info"]
    attached = not isinstance(eci["content"], core.Void)
    attrs = si["signed_attrs"]
    attrs_der: bytes | None = None
    content_types: list[str] = []
    digests: list[bytes] = []
    if not isinstance(attrs, core.Void):
        raw = attrs.dump()
        attrs_der = b"\x31" + raw[1:]  # [0] IMPLICIT -> SET OF; length bytes are unchanged
        content_types = [v.native for v in _attr_values(attrs, "content_type")]
        digests = [v.native for v in _attr_values(attrs, "message_digest")]
        if eci["content_type"].native != "data":
            content_types.append(str(eci["content_type"].native))
    sig_alg = si["signature_algorithm"]
    sid = si["sid"]
    issuer_der, serial, key_id = b"", 0, b""
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
    else:
        key_id = sid.chosen.native
    certs: list[bytes] = []
    if not isinstance(sd["certificates"], core.Void):
        certs = [c.chosen.dump() for c in sd["certificates"] if c.name == "certificate"]
    return _Parsed(
        signer_count=1,
        attached=attached,
        digest_name=str(si["digest_algorithm"]["algorithm"].native),
        signature_algorithm=str(sig_alg["algorithm"].native),
        pss_params=sig_alg["parameters"].native if sig_alg["algorithm"].native == "rsassa_pss" else None,
        signed_attrs_der=attrs_der,
        content_types=content_types,
        message_digests=digests,
        signature=bytes(si["signature"].native),
        sid_kind=str(sid.name),
        sid_issuer_der=issuer_der,
        sid_serial=int(serial),
        sid_key_id=bytes(key_id),
        certificates=certs,
    )


def _parse_guarded(signature_der: bytes) -> _Parsed:
    try:
        return _parse(signature_der)
    except SignatureError:
        raise
    except Exception as exc:
        # asn1crypto parses lazily and raises ValueError, TypeError, KeyError, IndexError... from deep
        # inside; whatever it raises while we read the structure means the DER is not a usable CMS.
        raise SignatureError("malformed", f"not a DER CMS SignedData: {type(exc).__name__}: {exc}") from exc


def _digest(name: str, data: bytes) -> bytes:
    h = hashes.Hash(_DIGESTS[name]())
    h.update(data)
    return h.finalize()


def _load_certificate(der: bytes) -> x509.Certificate:
    cert = x509.load_der_x509_certificate(der)
    # cryptography decodes names and extensions lazily: touch them now so a broken certificate is
    # "malformed" here rather than a ValueError escaping from a later comparison.
    _ = (cert.subject, cert.issuer, cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc)
    return cert


def _find_signer(parsed: _Parsed, certs: Sequence[x509.Certificate]) -> x509.Certificate:
    for cert in certs:
        if parsed.sid_kind == "issuer_and_serial_number":
            if cert.serial_number == parsed.sid_serial and cert.issuer.public_bytes() == parsed.sid_issuer_der:
                return cert
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == parsed.sid_key_id:
                return cert
    raise SignatureError("signer-cert-missing", "the SignedData does not carry the signer's certificate")


def _check_signature(parsed: _Parsed, cert: x509.Certificate) -> None:
    assert parsed.signed_attrs_der is not None
    alg = parsed.signature_algorithm
    hash_alg = _DIGESTS[parsed.digest_name]()
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError("malformed", f"signer public key: {exc}") from exc
    bad = SignatureError("bad-signature", f"signature ({alg}) does not verify with the signer's key")
    try:
        if isinstance(key, rsa.RSAPublicKey) and (alg == "rsassa_pkcs1v15" or alg in _RSA_WITH_HASH):
            if alg in _RSA_WITH_HASH and _RSA_WITH_HASH[alg] != parsed.digest_name:
                raise SignatureError("bad-signature", f"{alg} disagrees with digest {parsed.digest_name}")
            key.verify(parsed.signature, parsed.signed_attrs_der, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, rsa.RSAPublicKey) and alg == "rsassa_pss":
            params = parsed.pss_params or {}
            pss_hash = params.get("hash_algorithm", {}).get("algorithm")
            mgf = params.get("mask_gen_algorithm", {})
            mgf_hash = (mgf.get("parameters") or {}).get("algorithm")
            if pss_hash != parsed.digest_name or mgf.get("algorithm") != "mgf1" or mgf_hash != parsed.digest_name:
                raise SignatureError("bad-signature", "RSASSA-PSS parameters disagree with the digest algorithm")
            salt = int(params.get("salt_length", 20))
            key.verify(parsed.signature, parsed.signed_attrs_der, padding.PSS(padding.MGF1(hash_alg), salt), hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey) and (alg == "ecdsa" or alg in _ECDSA_WITH_HASH):
            if alg in _ECDSA_WITH_HASH and _ECDSA_WITH_HASH[alg] != parsed.digest_name:
                raise SignatureError("bad-signature", f"{alg} disagrees with digest {parsed.digest_name}")
            key.verify(parsed.signature, parsed.signed_attrs_der, ec.ECDSA(hash_alg))
        else:
            raise SignatureError(
                "unsupported-algorithm", f"signature algorithm {alg} with a {type(key).__name__} key is not supported"
            )
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        if isinstance(exc, SignatureError):
            raise
        raise bad from exc


def _check_key_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        # RFC 8520 s13.2: "The Key Usage Extension in the signing certificate MUST be present".
        raise SignatureError("key-usage", "the signer certificate has no KeyUsage extension") from None
    if not usage.digital_signature:
        raise SignatureError("key-usage", "the signer certificate's KeyUsage lacks digitalSignature")


def _classify_chain_failure(
    signer: x509.Certificate, bag: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], at: datetime
) -> SignatureError:
    """Pick the reason after the verifier refused: walk issuer names up from the signer (at most 8 steps)
    and report the first weak key or validity-period problem on that path; otherwise the chain is untrusted."""
    pool = [*bag, *anchors]
    cert: x509.Certificate | None = signer
    seen: set[bytes] = set()
    while cert is not None and len(seen) < 8:
        fp = cert.fingerprint(hashes.SHA256())
        if fp in seen:
            break
        seen.add(fp)
        try:
            _check_key_strength(cert)  # the verifier refuses weak CA keys too: say so rather than "untrusted"
        except SignatureError as weak:
            return weak
        if at > cert.not_valid_after_utc:
            return SignatureError("expired", f"{cert.subject.rfc4514_string()} expired {cert.not_valid_after_utc}")
        if at < cert.not_valid_before_utc:
            return SignatureError(
                "not-yet-valid", f"{cert.subject.rfc4514_string()} is valid only from {cert.not_valid_before_utc}"
            )
        if cert.issuer == cert.subject:
            break
        cert = next((c for c in pool if c.subject == cert.issuer), None)
    return SignatureError("untrusted-chain", "no valid chain from the signer to a configured trust anchor")


def _alt_names(cert: x509.Certificate) -> tuple[str, ...]:
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
# RFC 5280 4.2.1.12: an EKU, when present, limits the key to its purposes. Signing a MUD file is signing content:
# S/MIME (emailProtection), code or document signing, or no restriction (anyExtendedKeyUsage).
_CONTENT_SIGNING_EKUS = frozenset(
    {
        x509.ObjectIdentifier("2.5.29.37.0"),  # anyExtendedKeyUsage
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.4"),  # emailProtection
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.3"),  # codeSigning
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # documentSigning (RFC 9336)
    }
)
MIN_RSA_BITS = 2048  # NIST SP 800-131A: RSA below 2048 bits is disallowed for signatures
MIN_EC_BITS = 256  # P-256 and larger


def _check_purpose(cert: x509.Certificate) -> None:
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return
    if not ekus & _CONTENT_SIGNING_EKUS:
        names = ", ".join(sorted(getattr(oid, "_name", oid.dotted_string) for oid in ekus))
        raise SignatureError("eku", f"the signer certificate's Extended Key Usage ({names}) does not permit signing "
                             "content (anyExtendedKeyUsage, emailProtection, codeSigning or documentSigning)")


def _check_key_strength(cert: x509.Certificate) -> None:
    """Every certificate on the path: a weak CA key forges the signer as easily as a weak signer key."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError("malformed", f"public key of {cert.subject.rfc4514_string()}: {exc}") from exc
    who = cert.subject.rfc4514_string()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise SignatureError("weak-key", f"{who}: RSA {key.key_size} bits; >= {MIN_RSA_BITS} required")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        raise SignatureError("weak-key", f"{who}: EC {key.curve.name}; P-256 or larger required")
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise SignatureError("unsupported-algorithm", f"{who}: {type(key).__name__} key")


def _verify_chain(
    signer: x509.Certificate, bag: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], at: datetime
) -> list[x509.Certificate]:
    # MUD signer certificates carry no subjectAltName, which the default client policy demands:
    # accept any EE extensions, but require BasicConstraints on CAs (KeyUsage is checked by hand).
    ca_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, None
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=verification.ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    intermediates = [c for c in bag if c != signer]
    try:
        return list(verifier.verify(signer, intermediates).chain)
    except verification.VerificationError as exc:
        raise _classify_chain_failure(signer, bag, anchors, at) from exc


def verify_detached(
    content: bytes, signature_der: bytes, trust_anchors: Sequence[x509.Certificate], at: datetime
) -> Signer:
    """Verify ``signature_der`` (DER CMS SignedData) over the exact ``content`` bytes at time ``at``."""
    if at.tzinfo is None:
        raise ValueError("'at' must be timezone-aware")
    at = at.astimezone(UTC)
    if not trust_anchors:
        raise SignatureError("untrusted-chain", "no trust anchor configured")
    parsed = _parse_guarded(signature_der)
    if parsed.signer_count != 1:
        raise SignatureError("several-signers", f"{parsed.signer_count} SignerInfos; exactly one is accepted")
    if parsed.attached:
        raise SignatureError("attached-not-detached", "the signature embeds content; a detached one is required")
    if parsed.digest_name not in _DIGESTS:
        code = "weak-digest" if parsed.digest_name in _WEAK_DIGESTS else "unsupported-algorithm"
        raise SignatureError(code, f"digest algorithm {parsed.digest_name}; SHA-256/384/512 required")
    if parsed.signature_algorithm in _WEAK_SIGNATURE_ALGORITHMS:
        raise SignatureError("weak-digest", f"signature algorithm {parsed.signature_algorithm}")
    if parsed.signed_attrs_der is None:
        raise SignatureError("missing-signed-attributes", "signed attributes are required")
    if parsed.content_types != ["data"]:
        raise SignatureError("content-type", f"content-type attribute/eContentType {parsed.content_types} is not data")
    if len(parsed.message_digests) != 1:
        raise SignatureError("malformed", f"{len(parsed.message_digests)} messageDigest values; exactly one required")
    if parsed.message_digests[0] != _digest(parsed.digest_name, content):
        raise SignatureError("digest-mismatch", "messageDigest differs from the digest of the content bytes")
    try:
        bag = [_load_certificate(der) for der in parsed.certificates]
    except _CERT_PARSE_ERRORS as exc:
        raise SignatureError("malformed", f"certificate in SignedData: {exc}") from exc
    signer = _find_signer(parsed, bag)
    _check_key_strength(signer)
    _check_signature(parsed, signer)
    _check_key_usage(signer)
    _check_purpose(signer)
    chain = _verify_chain(signer, bag, trust_anchors, at)
    for cert in chain[1:]:
        _check_key_strength(cert)
    return Signer(
        ca_key_id=ski_hex(chain[-1]),
        subject_chain=tuple(c.subject.rfc4514_string() for c in chain),
        ca_spki=spki_sha256(chain[-1]),
        alt_names=tuple(_alt_names(c) for c in chain),
    )
