"""The lab's two small PKIs, generated fresh at every lab start (never checked in, never reused).

* TLS: a CA and a server certificate for ``mud.lab`` (subjectAltName DNS:mud.lab, plus any aliases: the
  abstractions scenario serves several manufacturers' authorities from one server), which the MUD server
  presents and the controller trusts through its TLS CA bundle setting.
* MUD signing: a CA and one signer certificate (KeyUsage digitalSignature, no subjectAltName, like
  real MUD signers), whose detached CMS signatures the enforcer verifies against the CA.

Validity is a window around ``now`` (passed in: the caller owns the clock). Keys are P-256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BEFORE = timedelta(days=1)  # tolerate a little clock skew between the lab's processes
AFTER = timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mud_ryu lab"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BEFORE)
        .not_valid_after(now + AFTER)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_ca(cn: str, now: datetime) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(cn, _name(cn), key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _issue(ca: Issued, cn: str, now: datetime, extra: list[x509.ExtensionType]) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(cn, ca.cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def tls_server(ca: Issued, hostname: str, now: datetime, aliases: Sequence[str] = ()) -> Issued:
    """A server certificate for ``hostname`` and ``aliases`` (one server, several MUD authorities)."""
    san = x509.SubjectAlternativeName([x509.DNSName(name) for name in (hostname, *aliases)])
    return _issue(ca, hostname, now, [san, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])


def mud_signer(ca: Issued, cn: str, now: datetime) -> Issued:
    """An end-entity signing certificate without subjectAltName (like real MUD signers)."""
    return _issue(ca, cn, now, [])


def sign_detached(content: bytes, signer: Issued) -> bytes:
    """DER CMS SignedData over the exact bytes (Binary: no CRLF conversion), content not embedded."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(signer.cert, signer.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )


@dataclass(frozen=True)
class LabPki:
    """Where the generated material was written (paths the server and the controller settings name)."""

    tls_ca: Path  # PEM: the controller's TLS CA bundle
    server_cert: Path  # PEM: mud.lab certificate
    server_key: Path
    signing_ca: Path  # PEM: the controller's MUD trust anchor
    signer: Issued  # kept in memory to sign the lab's MUD files


def create(directory: Path, hostname: str, now: datetime, aliases: Sequence[str] = ()) -> LabPki:
    """Generate both PKIs into ``directory`` (created; private keys written 0600). ``aliases``: more names the
    server certificate carries (the MUD server answering for several manufacturers' authorities)."""
    directory.mkdir(parents=True, exist_ok=True)
    tls_ca = make_ca("mud_ryu lab TLS CA", now)
    server = tls_server(tls_ca, hostname, now, aliases)
    sign_ca = make_ca("mud_ryu lab MUD signing CA", now)
    signer = mud_signer(sign_ca, "mud_ryu lab MUD signer", now)
    paths = LabPki(directory / "tls-ca.pem", directory / "server.pem", directory / "server.key",
                   directory / "mud-signing-ca.pem", signer)  # fmt: skip
    paths.tls_ca.write_bytes(tls_ca.cert_pem)
    paths.server_cert.write_bytes(server.cert_pem)
    paths.server_key.touch(mode=0o600)
    paths.server_key.write_bytes(server.key_pem)
    paths.signing_ca.write_bytes(sign_ca.cert_pem)
    return paths
