"""``mud-ryu verify MUDFILE SIGFILE --ca CA.pem [--at TIME]``: check a MUD file's detached CMS signature.

Prints ``VALID <signer>`` (then the CA's SPKI digest, its key id and the chain of subjects and subjectAltNames)
or ``INVALID <reason-code>: <message>``; exit 0 iff valid. This is the edge
where the clock is read (when ``--at`` is not given); :mod:`mud_ryu.fetch.signature` itself never reads it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

NAME = "verify"
HELP = "verify a MUD file's detached CMS signature against CA certificate(s); exit 0 iff valid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mudfile", metavar="MUDFILE", help="the MUD file, verified byte for byte")
    parser.add_argument("sigfile", metavar="SIGFILE", help="the DER CMS signature (.p7s)")
    parser.add_argument("--ca", required=True, metavar="CA.pem", help="PEM trust anchor(s)")
    parser.add_argument("--at", metavar="ISO-8601-TIME", help="validation time (default: now); UTC if no offset")


def _printable(text: str) -> str:
    """One line per verdict: certificate subjects come from the signature and may hold control characters."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _parse_time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--at: not an ISO-8601 time: {text!r}") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.fetch import signature

    try:
        at = _parse_time(args.at) if args.at else datetime.now(UTC)
    except argparse.ArgumentTypeError as exc:
        print(f"INVALID usage: {_printable(str(exc))}")
        return 2
    try:
        with open(args.mudfile, "rb") as f:
            content = f.read()
        with open(args.sigfile, "rb") as f:
            sig = f.read()
        with open(args.ca, "rb") as f:
            ca = f.read()
    except OSError as exc:
        print(f"INVALID io-error: {_printable(str(exc))}")
        return 1
    try:
        signer = signature.verify_detached(content, sig, signature.load_trust_anchors(ca), at)
    except signature.SignatureError as exc:
        print(f"INVALID {exc.reason}: {_printable(exc.message)}")
        return 1
    print(f"VALID {_printable(str(signer))}")
    # What an operator copies into trusted_signers, and the chain a pin records (draft s5.1).
    print(f"ca-spki-sha256  {signer.ca_spki}")
    print(f"ca-key-id       {signer.ca_key_id}")
    for subject, alt in zip(signer.subject_chain, signer.alt_names or [()] * len(signer.subject_chain), strict=True):
        names = f"  [{', '.join(alt)}]" if alt else ""
        print(f"chain           {_printable(subject + names)}")
    return 0
