"""``mud-ryu validate FILE...``: validate MUD files the way the enforcer would.

Output, one line per finding, all on stdout so that one stream holds the whole verdict in file
order (and ``grep -v ^WARN`` gives the verdicts alone):

    WARN <path> <reason> <json-path>: <message>      (0..n per file, before its verdict)
    OK <path>
    INVALID <path> <reason> <json-path>: <message>

Exit status 0 iff every file is valid (warnings do not fail), 1 otherwise.
"""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = "validate MUD files (strict JSON, YANG, RFC 8520 rules); exit 0 iff all are valid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="MUD file(s) to validate")


def _printable(text: str) -> str:
    """Keep one line per finding: a hostile file must not be able to forge output lines."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.mudfile import reader as mudfile

    status = 0
    for path in args.files:
        shown = _printable(path)
        try:
            parsed = mudfile.load(path)
        except mudfile.MudFileError as exc:
            print(f"INVALID {shown} {_printable(str(exc.finding))}", flush=True)
            status = 1
            continue
        for warning in parsed.warnings:
            print(f"WARN {shown} {_printable(str(warning))}")
        print(f"OK {shown}", flush=True)
    return status
