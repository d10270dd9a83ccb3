"""Builders of CMS signature test vectors: a small PKI made with cryptography, detached signatures made
with cryptography's PKCS7SignatureBuilder, and by hand with asn1crypto where the builder cannot
(two SignerInfos, SHA-1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ONE_YEAR = timedelta(days=365)

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: Key


def _name(cn: str) -> x509.Name:
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Maker")
    return x509.Name([org, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(
    cn: str = "Test MUD CA",
    not_before: datetime = T0 - ONE_YEAR,
    not_after: datetime = T0 + ONE_YEAR,
    *,
    ski: bytes | None = None,
    rsa_bits: int | None = None,
) -> Issued:
    """A self-signed CA; ``ski``: a chosen Subject Key Identifier (a CA picks its own: it may copy another's)."""
    key: Key = rsa.generate_private_key(65537, rsa_bits) if rsa_bits else ec.generate_private_key(ec.SECP256R1())
    key_id = x509.SubjectKeyIdentifier(ski) if ski else x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_id, critical=False)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _usage(*, cert_sign: bool = False, digital_signature: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=not cert_sign and not digital_signature,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_signer(
    ca: Issued,
    cn: str = "mud-signer.example",
    *,
    not_before: datetime = T0 - ONE_YEAR,
    not_after: datetime = T0 + ONE_YEAR,
    rsa_key: bool = False,
    digital_signature: bool = True,
    key_usage: bool = True,
    ekus: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
    rsa_bits: int | None = None,
    curve: ec.EllipticCurve | None = None,
) -> Issued:
    """An end-entity signing certificate, by default without subjectAltName or EKU, like real MUD signers."""
    key: Key = _rsa_key(rsa_bits or 2048) if rsa_key or rsa_bits else ec.generate_private_key(curve or ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if key_usage:
        builder = builder.add_extension(_usage(digital_signature=digital_signature), critical=True)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """RSA of ``bits``; cryptography still generates 1024-bit keys (it refuses only below 1024)."""
    return rsa.generate_private_key(65537, bits)


def sign_detached(
    content: bytes, signer: Issued, *, binary: bool = True, attached: bool = False, pss: bool = False
) -> bytes:
    """DER CMS signature made by cryptography's builder (what `openssl cms -sign -binary` produces)."""
    options = [] if attached else [pkcs7.PKCS7Options.DetachedSignature]
    if binary:
        options.append(pkcs7.PKCS7Options.Binary)
    rsa_padding = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH) if pss else None
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(signer.cert, signer.key, hashes.SHA256(), rsa_padding=rsa_padding)
        .sign(serialization.Encoding.DER, options)
    )


_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


@dataclass(frozen=True)
class HandOptions:
    """One deviation each from a well-formed detached SignerInfo (the defaults give a valid one)."""

    digest: str = "sha256"
    signed_attrs: bool = True  # False: RFC 5652 allows signing the content directly; MUD verification does not
    content_type: str = "data"  # value of the content-type signed attribute
    sid_by_key_id: bool = False  # identify the signer by SubjectKeyIdentifier instead of issuer+serial


def _sid(signer: Issued, by_key_id: bool) -> cms.SignerIdentifier:
    if by_key_id:
        ski = signer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        return cms.SignerIdentifier({"subject_key_identifier": ski})
    cert = asn1_x509.Certificate.load(signer.cert.public_bytes(serialization.Encoding.DER))
    serial = cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number})
    return cms.SignerIdentifier({"issuer_and_serial_number": serial})


def _signer_info(content: bytes, signer: Issued, opts: HandOptions) -> cms.SignerInfo:
    digest = opts.digest
    h = hashes.Hash(_HASHES[digest]())
    h.update(content)
    attr_list = [
        {"type": "content_type", "values": [opts.content_type]},
        {"type": "message_digest", "values": [h.finalize()]},
    ]
    to_sign = cms.CMSAttributes([cms.CMSAttribute(a) for a in attr_list]).dump() if opts.signed_attrs else content
    key = signer.key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(to_sign, ec.ECDSA(_HASHES[digest]()))
        sig_alg = f"{digest}_ecdsa"
    else:
        signature = key.sign(to_sign, padding.PKCS1v15(), _HASHES[digest]())
        sig_alg = "rsassa_pkcs1v15"
    fields = {
        "version": "v3" if opts.sid_by_key_id else "v1",
        "sid": _sid(signer, opts.sid_by_key_id),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": digest}),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": sig_alg}),
        "signature": signature,
    }
    if opts.signed_attrs:
        fields["signed_attrs"] = cms.CMSAttributes([cms.CMSAttribute(a) for a in attr_list])
    return cms.SignerInfo(fields)


def sign_by_hand(content: bytes, signers: list[Issued], opts: HandOptions = HandOptions()) -> bytes:
    """Detached SignedData built with asn1crypto: any number of SignerInfos, each shaped by ``opts``."""
    digest = opts.digest
    der = [s.cert.public_bytes(serialization.Encoding.DER) for s in signers]
    certs = [cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(d)}) for d in der]
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
            "encap_content_info": {"content_type": "data"},
            "certificates": certs,
            "signer_infos": [_signer_info(content, s, opts) for s in signers],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


def ca_pem(*cas: Issued) -> bytes:
    return b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in cas)
