"""``mud-ryu devices``: the devices the controller enforces; also the shared plumbing of the API commands.

The API commands (``devices``, ``device``, ``alerts``, ``approve``, ``revoke``, ``forget``) talk to the REST API
the Ryu app serves (default ``http://127.0.0.1:8080``). State-changing commands need the API token, from
``--token-file PATH`` or the ``MUD_RYU_TOKEN`` environment variable (this module is the one that reads it).
Exit status: 0 success, 1 the API refused (its error code is printed verbatim), 2 usage or connection trouble.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

NAME = "devices"
HELP = "list the devices the controller enforces (identity, URL, state, signer, profile, flows, last decision)"
DEFAULT_API = "http://127.0.0.1:8080"
TOKEN_ENV = "MUD_RYU_TOKEN"
EXIT_API_ERROR = 1
EXIT_USAGE = 2

if TYPE_CHECKING:  # imported lazily at run time, so `mud-ryu --help` does not load requests
    from mud_ryu.api.client import ApiClient


class Refused(Exception):
    """The CLI itself declines before (or instead of) a state change, with a stable code like the API's (exit 1)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def add_api_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    parser.add_argument("--api", default=DEFAULT_API, metavar="URL", help=f"the REST API (default {DEFAULT_API})")
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"file holding the API token (default: ${TOKEN_ENV}); needed to change state",
    )
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds per call (default 10)")
    if json_output:
        parser.add_argument("--json", action="store_true", help="print the API's JSON instead of text")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_api_arguments(parser)


def call(
    args: argparse.Namespace,
    request: Callable[[ApiClient], dict[str, Any]],
    text: Callable[[Mapping[str, Any]], str],
    *,
    changes_state: bool = False,
) -> int:
    """Run one API call; print ``text(document)`` (or the JSON) on success and the server's error code otherwise."""
    from mud_ryu.api.client import ApiClient, ApiError, ClientError, read_token_file

    try:
        token = read_token_file(args.token_file) if args.token_file else os.environ.get(TOKEN_ENV) or None
        if not args.timeout > 0:
            raise ClientError("--timeout must be a positive number of seconds")
        client = ApiClient(args.api, token, args.timeout)
        if changes_state and client.sends_token_in_clear:
            print("warning: sending the API token over plain http to a host that is not loopback", file=sys.stderr)
        document = request(client)
        output = json.dumps(document, indent=2) if getattr(args, "json", False) else text(document)
    except ApiError as error:
        print(f"error: {error.code} (HTTP {error.status}): {_printable(error.message)}", file=sys.stderr)
        return EXIT_API_ERROR
    except Refused as refused:
        print(f"error: {refused.code}: {_printable(refused.message)}", file=sys.stderr)
        return EXIT_API_ERROR
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyError, TypeError, AttributeError):
        print(
            "error: the API answered with an unexpected document; is the CLI the controller's version?", file=sys.stderr
        )
        return EXIT_USAGE
    print(output)
    return 0


def _printable(text: str) -> str:
    from mud_ryu.api.client import printable

    return printable(text)


def run(args: argparse.Namespace) -> int:
    from mud_ryu.api.client import devices_text

    return call(args, lambda client: client.get("devices"), devices_text)
