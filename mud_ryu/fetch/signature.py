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

Who signed is a :class:`~mud_ryu.fetch.signer.Signer` (the CA by its public key, the chain of subjects and SANs); the
rules on the signer's certificate itself (KeyUsage, EKU, key sizes) are in :mod:`mud_ryu.fetch.signer_certs`. Both are
re-exported here, where callers import them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification

from mud_ryu.fetch.signer import Signer, alt_names, ski_hex, spki_sha256
from mud_ryu.fetch.signer_certs import SignatureError, check_key_strength, check_key_usage, check_purpose

__all__ = [
    "SignatureError",
    "Signer",
    "load_anchor_files",
    "load_trust_anchors",
    "ski_hex",
    "spki_sha256",
    "verify_detached",
]

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
            check_key_strength(cert)  # the verifier refuses weak CA keys too: say so rather than "untrusted"
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
    check_key_strength(signer)
    _check_signature(parsed, signer)
    check_key_usage(signer)
    check_purpose(signer)
    chain = _verify_chain(signer, bag, trust_anchors, at)
    for cert in chain[1:]:
        check_key_strength(cert)
    return Signer(
        ca_key_id=ski_hex(chain[-1]),
        subject_chain=tuple(c.subject.rfc4514_string() for c in chain),
        ca_spki=spki_sha256(chain[-1]),
        alt_names=tuple(alt_names(c) for c in chain),
        valid_until=min(c.not_valid_after_utc for c in chain).timestamp(),
    )
