"""Detached CMS signature verification (THREATS row 15, R9): only a valid detached signature passes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu import cli
from mud_ryu.fetch.signature import SignatureError, Signer, load_trust_anchors, verify_detached
from mud_ryu.policy.effects import equivalent_signer
from tests import sigvectors as sv

CONTENT = b'{\n  "ietf-mud:mud": {"mud-version": 1}\n}\n'
LUMINAIRE = Path(__file__).parent / "fixtures" / "corpus" / "signed" / "cisco-luminaire"
AT = sv.T0
LUM_SUBJECT = "CN=luminaire.example.com,O=Demo Luminaire Manufacturer"


@pytest.fixture(scope="module")
def ca() -> sv.Issued:
    return sv.make_ca()


@pytest.fixture(scope="module")
def signer(ca: sv.Issued) -> sv.Issued:
    return sv.make_signer(ca)


def _reason(content: bytes, sig: bytes, anchors: list[x509.Certificate], at: datetime = AT) -> str:
    with pytest.raises(SignatureError) as info:
        verify_detached(content, sig, anchors, at)
    return info.value.reason


def test_valid_signature_names_signer_and_ca(ca: sv.Issued, signer: sv.Issued) -> None:
    result = verify_detached(CONTENT, sv.sign_detached(CONTENT, signer), [ca.cert], AT)
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    spki = ca.cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    chain = (signer.cert.subject.rfc4514_string(), ca.cert.subject.rfc4514_string())
    assert result == Signer(ski.hex(), chain, hashlib.sha256(spki).hexdigest(), ((), ()))
    # How long the verification holds: the first expiry on the chain (never part of who signed, never pinned).
    assert result.valid_until == min(signer.cert.not_valid_after_utc, ca.cert.not_valid_after_utc).timestamp()
    assert "valid_until" not in result.to_json()
    assert str(result).startswith("CN=mud-signer.example,O=Test Maker (CA keyid ")
    assert Signer.from_json(result.to_json()) == result


def test_a_ca_copying_another_cas_key_id_is_told_apart_by_its_public_key(ca: sv.Issued, signer: sv.Issued) -> None:
    # Both anchors configured; the rogue copies the vendor CA's key id and issues the vendor's signer name.
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    rogue = sv.make_ca("Rogue CA", ski=ski)
    forged = sv.make_signer(rogue, "mud-signer.example")
    real = verify_detached(CONTENT, sv.sign_detached(CONTENT, signer), [ca.cert, rogue.cert], AT)
    fake = verify_detached(CONTENT, sv.sign_detached(CONTENT, forged), [ca.cert, rogue.cert], AT)
    assert real.ca_key_id == fake.ca_key_id and real.subject_chain[0] == fake.subject_chain[0]
    assert real.ca_spki != fake.ca_spki
    assert not equivalent_signer(real, fake)
    assert equivalent_signer(real, verify_detached(CONTENT, sv.sign_detached(CONTENT, signer), [ca.cert], AT))


def test_subject_alt_names_are_recorded_along_the_chain(ca: sv.Issued) -> None:
    named = sv.make_signer(ca, sans=[x509.DNSName("mud.maker.example"), x509.UniformResourceIdentifier("urn:x")])
    result = verify_detached(CONTENT, sv.sign_detached(CONTENT, named), [ca.cert], AT)
    assert result.alt_names == (("DNS:mud.maker.example", "URI:urn:x"), ())


@pytest.mark.parametrize(
    ("ekus", "ok"),
    [
        ([ExtendedKeyUsageOID.SERVER_AUTH], False),
        ([ExtendedKeyUsageOID.OCSP_SIGNING], False),
        ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], False),
        ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], True),
        ([ExtendedKeyUsageOID.EMAIL_PROTECTION], True),
        ([ExtendedKeyUsageOID.CODE_SIGNING], True),
        ([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")], True),  # documentSigning
        ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING], True),
    ],
)
def test_extended_key_usage_must_permit_signing_content(
    ca: sv.Issued, ekus: list[x509.ObjectIdentifier], ok: bool
) -> None:
    sig = sv.sign_detached(CONTENT, sv.make_signer(ca, ekus=ekus))
    if ok:
        assert verify_detached(CONTENT, sig, [ca.cert], AT).subject_chain
    else:
        assert _reason(CONTENT, sig, [ca.cert]) == "eku"


def test_weak_keys_are_refused(ca: sv.Issued) -> None:
    assert _reason(CONTENT, sv.sign_detached(CONTENT, sv.make_signer(ca, rsa_bits=1024)), [ca.cert]) == "weak-key"
    p224 = sv.make_signer(ca, curve=ec.SECP224R1())
    assert _reason(CONTENT, sv.sign_detached(CONTENT, p224), [ca.cert]) == "weak-key"
    weak_ca = sv.make_ca("Weak CA", rsa_bits=1024)
    strong_under_weak = sv.make_signer(weak_ca)
    assert _reason(CONTENT, sv.sign_detached(CONTENT, strong_under_weak), [weak_ca.cert]) == "weak-key"
    assert verify_detached(CONTENT, sv.sign_detached(CONTENT, sv.make_signer(ca, rsa_bits=2048)), [ca.cert], AT)


def test_valid_rsa_pkcs1_and_pss(ca: sv.Issued) -> None:
    rsa_signer = sv.make_signer(ca, rsa_key=True)
    for pss in (False, True):
        result = verify_detached(CONTENT, sv.sign_detached(CONTENT, rsa_signer, pss=pss), [ca.cert], AT)
        assert result.subject_chain[0] == rsa_signer.cert.subject.rfc4514_string()


def test_hand_built_single_signer_is_valid(ca: sv.Issued, signer: sv.Issued) -> None:
    # guards the hand builder: the failing vectors below differ from this one in one respect each
    assert verify_detached(CONTENT, sv.sign_by_hand(CONTENT, [signer]), [ca.cert], AT).subject_chain[0]


def test_tampered_content(ca: sv.Issued, signer: sv.Issued) -> None:
    sig = sv.sign_detached(CONTENT, signer)
    assert _reason(CONTENT.replace(b"1", b"2"), sig, [ca.cert]) == "digest-mismatch"


def test_wrong_ca(signer: sv.Issued) -> None:
    other = sv.make_ca("Other CA")
    assert _reason(CONTENT, sv.sign_detached(CONTENT, signer), [other.cert]) == "untrusted-chain"


def test_ca_with_same_name_but_other_key(signer: sv.Issued) -> None:
    impostor = sv.make_ca()  # same subject as the real CA, different key
    assert _reason(CONTENT, sv.sign_detached(CONTENT, signer), [impostor.cert]) == "untrusted-chain"


def test_expired_and_not_yet_valid(ca: sv.Issued) -> None:
    old = sv.make_signer(ca, not_before=AT - 2 * sv.ONE_YEAR, not_after=AT - sv.ONE_YEAR)
    assert _reason(CONTENT, sv.sign_detached(CONTENT, old), [ca.cert]) == "expired"
    future = sv.make_signer(ca, not_before=AT + sv.ONE_YEAR / 2, not_after=AT + sv.ONE_YEAR)
    assert _reason(CONTENT, sv.sign_detached(CONTENT, future), [ca.cert]) == "not-yet-valid"


def test_expired_ca() -> None:
    old_ca = sv.make_ca(not_before=AT - 2 * sv.ONE_YEAR, not_after=AT - sv.ONE_YEAR / 2)
    good = sv.make_signer(old_ca, not_before=AT - 2 * sv.ONE_YEAR, not_after=AT + sv.ONE_YEAR)
    assert _reason(CONTENT, sv.sign_detached(CONTENT, good), [old_ca.cert]) == "expired"


def test_signer_cert_as_anchor_is_not_trusted(signer: sv.Issued) -> None:
    # an EE certificate configured as "CA" must not make its own signatures trusted via a bogus chain
    other = sv.make_signer(sv.make_ca("Other CA"))
    assert _reason(CONTENT, sv.sign_detached(CONTENT, other), [signer.cert]) == "untrusted-chain"


def test_crlf_mangled_text_mode_signature(ca: sv.Issued, signer: sv.Issued) -> None:
    sig = sv.sign_detached(CONTENT, signer, binary=False)
    assert _reason(CONTENT, sig, [ca.cert]) == "digest-mismatch"
    assert verify_detached(CONTENT.replace(b"\n", b"\r\n"), sig, [ca.cert], AT)  # what it really signed


def test_two_signers(ca: sv.Issued, signer: sv.Issued) -> None:
    second = sv.make_signer(ca, "second.example")
    assert _reason(CONTENT, sv.sign_by_hand(CONTENT, [signer, second]), [ca.cert]) == "several-signers"


def test_attached_instead_of_detached(ca: sv.Issued, signer: sv.Issued) -> None:
    assert _reason(CONTENT, sv.sign_detached(CONTENT, signer, attached=True), [ca.cert]) == "attached-not-detached"


def test_weak_digest_sha1(ca: sv.Issued) -> None:
    rsa_signer = sv.make_signer(ca, rsa_key=True)
    assert (
        _reason(CONTENT, sv.sign_by_hand(CONTENT, [rsa_signer], sv.HandOptions(digest="sha1")), [ca.cert])
        == "weak-digest"
    )


def test_signer_identified_by_key_id_is_valid(ca: sv.Issued, signer: sv.Issued) -> None:
    sig = sv.sign_by_hand(CONTENT, [signer], sv.HandOptions(sid_by_key_id=True))
    assert verify_detached(CONTENT, sig, [ca.cert], AT).subject_chain[0] == signer.cert.subject.rfc4514_string()


def test_signed_attributes_required_with_content_type_data(ca: sv.Issued, signer: sv.Issued) -> None:
    no_attrs = sv.sign_by_hand(CONTENT, [signer], sv.HandOptions(signed_attrs=False))
    assert _reason(CONTENT, no_attrs, [ca.cert]) == "missing-signed-attributes"
    other_type = sv.sign_by_hand(CONTENT, [signer], sv.HandOptions(content_type="signed_data"))
    assert _reason(CONTENT, other_type, [ca.cert]) == "content-type"


def test_key_usage_without_digital_signature(ca: sv.Issued) -> None:
    no_ds = sv.make_signer(ca, digital_signature=False)
    assert _reason(CONTENT, sv.sign_detached(CONTENT, no_ds), [ca.cert]) == "key-usage"


def test_key_usage_must_be_present(ca: sv.Issued) -> None:
    # RFC 8520 s13.2: the Key Usage extension MUST be present (not merely right when present).
    no_ku = sv.make_signer(ca, key_usage=False)
    assert _reason(CONTENT, sv.sign_detached(CONTENT, no_ku), [ca.cert]) == "key-usage"


def _resign_fields(sig: bytes, edit: str) -> bytes:
    info = cms.ContentInfo.load(sig)
    sd = info["content"]
    if edit == "drop-certs":
        sd["certificates"] = []
    elif edit == "flip-signature":
        si = sd["signer_infos"][0]
        raw = bytearray(si["signature"].native)
        raw[-1] ^= 1
        si["signature"] = bytes(raw)
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump(force=True))


def test_signer_cert_missing_and_bad_signature(ca: sv.Issued) -> None:
    rsa_signer = sv.make_signer(ca, rsa_key=True)
    sig = sv.sign_detached(CONTENT, rsa_signer)
    assert _reason(CONTENT, _resign_fields(sig, "drop-certs"), [ca.cert]) == "signer-cert-missing"
    assert _reason(CONTENT, _resign_fields(sig, "flip-signature"), [ca.cert]) == "bad-signature"


def test_garbage_is_malformed(ca: sv.Issued) -> None:
    assert _reason(CONTENT, b"not DER at all", [ca.cert]) == "malformed"
    assert _reason(CONTENT, b"", [ca.cert]) == "malformed"


def _luminaire() -> tuple[bytes, bytes, tuple[x509.Certificate, ...]]:
    return (
        (LUMINAIRE / "Luminaire_150.json").read_bytes(),
        (LUMINAIRE / "Luminaire_150.p7s").read_bytes(),
        load_trust_anchors((LUMINAIRE / "luminaire-cacert.pem").read_bytes()),
    )


def test_luminaire_valid_in_2018_expired_now() -> None:
    content, sig, anchors = _luminaire()
    result = verify_detached(content, sig, anchors, datetime(2018, 12, 1, tzinfo=UTC))
    assert result.subject_chain == (LUM_SUBJECT, "O=Demo Luminaire Manufacturer")
    assert result.ca_key_id == "b6b582ed65a98099448e509c50df484150ffbc35"
    assert _reason(content, sig, list(anchors), datetime(2026, 11, 27, tzinfo=UTC)) == "expired"
    assert _reason(content + b"\n", sig, list(anchors), datetime(2018, 12, 1, tzinfo=UTC)) == "digest-mismatch"


def test_load_trust_anchors_rejects_empty() -> None:
    with pytest.raises(SignatureError) as info:
        load_trust_anchors(b"")
    assert info.value.reason == "malformed"


_, _LUM_SIG, _LUM_ANCHORS = _luminaire()
_LUM_AT = datetime(2018, 12, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.integers(0, len(_LUM_SIG) - 1).map(lambda n: _LUM_SIG[:n])))
def test_random_or_truncated_signatures_only_raise_signature_error(sig: bytes) -> None:
    with pytest.raises(SignatureError):
        verify_detached(b"{}", sig, _LUM_ANCHORS, _LUM_AT)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_LUM_SIG) - 1), st.integers(1, 255))
def test_flipped_bytes_never_crash(pos: int, xor: int) -> None:
    mangled = bytearray(_LUM_SIG)
    mangled[pos] ^= xor
    content = (LUMINAIRE / "Luminaire_150.json").read_bytes()
    try:
        result = verify_detached(content, bytes(mangled), _LUM_ANCHORS, _LUM_AT)
    except SignatureError:
        return
    # a flip that still verifies (e.g. inside an unsigned, unused field) must not change who signed
    assert result.subject_chain[0] == LUM_SUBJECT


def test_cli_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(LUMINAIRE / "Luminaire_150.json"), str(LUMINAIRE / "Luminaire_150.p7s"), "--ca"]
    ca = str(LUMINAIRE / "luminaire-cacert.pem")
    assert cli.main(["verify", *args, ca, "--at", "2018-12-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out.startswith(f"VALID {LUM_SUBJECT} (CA keyid b6:b5")
    assert cli.main(["verify", *args, ca]) == 1
    assert capsys.readouterr().out.startswith("INVALID expired: ")
    bad = tmp_path / "bad.p7s"
    bad.write_bytes(b"junk")
    assert cli.main(["verify", args[0], str(bad), "--ca", ca, "--at", "2018-12-01"]) == 1
    assert capsys.readouterr().out.startswith("INVALID malformed: ")


def test_cli_verify_prints_the_spki_and_chain_and_the_new_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ca: sv.Issued
) -> None:
    args = [str(LUMINAIRE / "Luminaire_150.json"), str(LUMINAIRE / "Luminaire_150.p7s"), "--ca"]
    ca_file = LUMINAIRE / "luminaire-cacert.pem"
    assert cli.main(["verify", *args, str(ca_file), "--at", "2018-12-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out.splitlines()
    anchor = load_trust_anchors(ca_file.read_bytes())[0]
    spki = anchor.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert out[1] == f"ca-spki-sha256  {hashlib.sha256(spki).hexdigest()}"
    assert out[2] == "ca-key-id       b6b582ed65a98099448e509c50df484150ffbc35"
    assert out[3] == f"chain           {LUM_SUBJECT}"
    (tmp_path / "ca.pem").write_bytes(sv.ca_pem(ca))
    (tmp_path / "m.json").write_bytes(CONTENT)
    for name, issued in (("eku", sv.make_signer(ca, ekus=[x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])),
                         ("weak-key", sv.make_signer(ca, rsa_bits=1024))):  # fmt: skip
        (tmp_path / f"{name}.p7s").write_bytes(sv.sign_detached(CONTENT, issued))
        at = AT.isoformat()
        code = cli.main(["verify", str(tmp_path / "m.json"), str(tmp_path / f"{name}.p7s"), "--ca",
                         str(tmp_path / "ca.pem"), "--at", at])  # fmt: skip
        assert code == 1 and capsys.readouterr().out.startswith(f"INVALID {name}: ")
