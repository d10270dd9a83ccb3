"""``mud-ryu upgrade OLD.json [-o NEW.json]``: convert the pre-RFC draft dialect to RFC 8520.

Every rewrite is printed to stderr (``upgrade: <note>``) so that the reinterpretations can be
reviewed. The result is validated with the same validator as ``mud-ryu validate``; only a valid
result is written (to NEW.json, or stdout by default). Exit status 0 on success, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

NAME = "upgrade"
HELP = "convert a pre-RFC 8520 draft-dialect MUD file (access-lists, ethernet-acl-type, ...) to RFC 8520"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="OLD.json", help="MUD file in the pre-RFC dialect")
    parser.add_argument("-o", "--output", metavar="NEW.json", help="write here instead of stdout")


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".mud-ryu-upgrade-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> int:
    from mud_ryu.mudfile import reader as mudfile
    from mud_ryu.mudfile import upgrade as dialect_upgrade

    try:
        with open(args.source, "rb") as fh:
            data = fh.read(mudfile.MAX_FILE_BYTES + 1)
    except OSError as exc:
        print(f"upgrade: cannot read {args.source}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        if len(data) > mudfile.MAX_FILE_BYTES:
            raise mudfile.MudFileError("file-too-large", "/", f"more than {mudfile.MAX_FILE_BYTES} bytes")
        converted, notes = dialect_upgrade.upgrade(data)
    except mudfile.MudFileError as exc:
        print(f"upgrade: {args.source}: {exc.finding}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"upgrade: {note}", file=sys.stderr)
    try:
        parsed = mudfile.parse(converted)
    except mudfile.MudFileError as exc:
        print(f"upgrade: result is still INVALID: {exc.finding}; nothing written", file=sys.stderr)
        return 1
    for warning in parsed.warnings:
        print(f"upgrade: WARN {warning}", file=sys.stderr)
    if args.output:
        _write_atomically(args.output, converted)
    else:
        sys.stdout.buffer.write(converted)
        sys.stdout.flush()
    return 0
