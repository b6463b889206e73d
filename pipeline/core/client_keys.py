"""CURVE client keys for a secured public endpoint: one loader and one pair of command-line options.

A pipeline that serves beyond loopback (docs/security.md) admits only clients that bring the
server's public key (``server.key``) and their own keypair (``NAME.key_secret``), both written by
``moodwire keys``. ``moodwire listen``, ``moodwire view`` and the examples take them as
``--server-key`` / ``--client-key``; the library takes ``curve=curve_keys(...)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from moodwire.pipeline.core.config import ConfigError
from moodwire.pipeline.core.keys import CurveClient

SERVER_OPTION, CLIENT_OPTION = "--server-key", "--client-key"


def curve_keys(server_key: str | Path | None, client_key: str | Path | None,
               names: tuple[str, str] = ("server_key", "client_key")) -> CurveClient | None:
    """The checked CURVE client keys from two files (both or neither; None for neither).

    ConfigError names the missing or bad one by ``names`` (the parameter or option it came from).
    """
    if server_key is None and client_key is None:
        return None
    if server_key is None or client_key is None:
        given, needed = names if server_key is not None else names[::-1]
        raise ConfigError(f"{given} needs {needed} too: a CURVE client needs the server's public key "
                          "(server.key) and its own keypair (NAME.key_secret), both from `moodwire keys`")
    return CurveClient.from_files(server_key, client_key, *names)


def add_key_options(parser: argparse.ArgumentParser) -> None:
    """``--server-key FILE`` and ``--client-key FILE``, for commands that subscribe to the public endpoint."""
    parser.add_argument(SERVER_OPTION, metavar="FILE",
                        help="the pipeline's CURVE public key (server.key from `moodwire keys`), to reach a "
                             f"public endpoint that has bus.curve_server_secret set; with {CLIENT_OPTION}")
    parser.add_argument(CLIENT_OPTION, metavar="FILE",
                        help=f"this client's CURVE keypair (NAME.key_secret from `moodwire keys`); with {SERVER_OPTION}")


def curve_from_args(args: argparse.Namespace) -> CurveClient | None:
    """The keys given by ``add_key_options``' options, checked; None when neither was given."""
    return curve_keys(args.server_key, args.client_key, (SERVER_OPTION, CLIENT_OPTION))
