"""What a MUD signer certificate must be, beyond chaining to an anchor (RFC 8520 s13.2, RFC 5280, SP 800-131A).

Kept apart from the CMS checks in :mod:`mud_ryu.fetch.signature`: these are rules about certificates, each refusal with
its own reason code -- ``key-usage`` (KeyUsage missing or without digitalSignature), ``eku`` (an Extended Key Usage
that does not permit signing content), ``weak-key`` (RSA below 2048 bits, EC below P-256, on any certificate of
the path: a weak CA key forges the signer as easily as a weak signer key).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mud_ryu.errors import ReasonError


class SignatureError(ReasonError):
    """The signature does not prove the content came from a trusted signer; ``reason`` is stable."""


def check_key_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        # RFC 8520 s13.2: "The Key Usage Extension in the signing certificate MUST be present".
        raise SignatureError("key-usage", "the signer certificate has no KeyUsage extension") from None
    if not usage.digital_signature:
        raise SignatureError("key-usage", "the signer certificate's KeyUsage lacks digitalSignature")


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


def check_purpose(cert: x509.Certificate) -> None:
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return
    if not ekus & _CONTENT_SIGNING_EKUS:
        names = ", ".join(sorted(getattr(oid, "_name", oid.dotted_string) for oid in ekus))
        raise SignatureError("eku", f"the signer certificate's Extended Key Usage ({names}) does not permit signing "
                             "content (anyExtendedKeyUsage, emailProtection, codeSigning or documentSigning)")


def check_key_strength(cert: x509.Certificate) -> None:
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
