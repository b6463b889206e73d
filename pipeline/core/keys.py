"""ZeroMQ CURVE keys for the public endpoint: making them, loading them, and when they are required.

The public endpoint is open to anyone who can reach it, so it stays on the
loopback interface unless CURVE keys are configured: then the proxy's public
XPUB socket is a CURVE server, and a ZAP handler (pyzmq's ThreadAuthenticator)
admits only clients whose public key lies in the ``bus.curve_clients`` folder.
Key files use the ZeroMQ certificate format (``zmq.auth``, as czmq's
``zcert``), so clients in other languages can read them. See docs/security.md.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import zmq
import zmq.auth
from zmq.utils import z85

from moodwire.pipeline.core.config import BusConfig, ConfigError

SERVER_NAME = "server"
CLIENTS_DIR = "clients"
LOCAL_TRANSPORTS = ("ipc", "inproc")  # reachable only on this machine (ipc: file permissions apply)
KEYS_FIX = "run `moodwire keys DIR` and set bus.curve_server_secret = DIR/server.key_secret and " \
           "bus.curve_clients = DIR/clients"


@dataclass(frozen=True)
class CurveServer:
    """What the proxy needs to make its public socket a CURVE server that admits only listed clients."""

    secret_key: bytes          # z85, 40 bytes
    clients_dir: Path          # folder of authorised clients' ``*.key`` files
    client_keys: frozenset[bytes]  # their z85 public keys, as loaded at start
    publisher_keys: frozenset[bytes] = frozenset()  # keys allowed to publish through bus.ingest


@dataclass(frozen=True)
class CurveClient:
    """What a subscriber needs to reach a CURVE public endpoint: the server's public key and its own keypair."""

    server_key: bytes
    public_key: bytes
    secret_key: bytes

    @classmethod
    def from_files(cls, server_key_file: str | Path, client_secret_file: str | Path,
                   server_setting: str = "--server-key", client_setting: str = "--client-key") -> "CurveClient":
        """Load ``server.key`` (public) and ``client.key_secret``; ConfigError naming the setting on a bad file."""
        server_public, _ = read_key_file(server_key_file, server_setting, "the server's public key (server.key)")
        public, secret = read_key_file(client_secret_file, client_setting,
                                       "this client's keypair (client.key_secret)", secret=True)
        return cls(server_public, public, secret)


# ------------------------------------------------------------------ policy


def is_local_endpoint(endpoint: str) -> bool:
    """True when only this machine can reach ``endpoint``: ipc/inproc, or tcp on a loopback address."""
    url = urlparse(endpoint)
    if url.scheme in LOCAL_TRANSPORTS:
        return True
    if url.scheme != "tcp":
        return False
    host = (url.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # '*', an interface name (eth0) or a host name: reachable from elsewhere
        return False


def check_public_endpoint(endpoint: str, curve: CurveServer | None, setting: str = "bus.public") -> None:
    """Refuse to expose the bus beyond this machine without CURVE; ConfigError that names the fix."""
    if curve is None and endpoint and not is_local_endpoint(endpoint):
        raise ConfigError(
            f"{setting} = {endpoint!r} would be reachable from other machines, which needs CURVE keys: "
            f"{KEYS_FIX}; or keep {setting} on loopback (tcp://127.0.0.1:PORT)")


def server_curve(bus: BusConfig) -> CurveServer | None:
    """The public endpoint's CURVE settings from the config (None: plain, loopback only), all checked."""
    secret_file, clients_dir = bus.curve_server_secret, bus.curve_clients
    if bool(secret_file) != bool(clients_dir):
        missing = "bus.curve_clients" if secret_file else "bus.curve_server_secret"
        raise ConfigError(f"{missing} is not set: bus.curve_server_secret and bus.curve_clients go together "
                          f"(a server key without a list of allowed clients would admit anyone); {KEYS_FIX}")
    curve = None
    if secret_file:
        _, secret = read_key_file(secret_file, "bus.curve_server_secret", "the server's secret key "
                                  "(server.key_secret)", secret=True)
        clients = load_client_keys(clients_dir)
        publishers = (load_client_keys(bus.curve_publishers, "bus.curve_publishers") if bus.curve_publishers
                      else clients)
        curve = CurveServer(secret, Path(clients_dir).expanduser(), clients, publishers)
    check_public_endpoint(bus.public, curve)
    check_public_endpoint(bus.ingest, curve, "bus.ingest")
    return curve


def joining_curve(bus: BusConfig) -> CurveClient | None:
    """A joined host's CURVE client keys for the bus host's endpoints (None: the bus is on loopback, plain).

    As for the bus host's endpoints, keys are required off loopback; ConfigError names what is missing.
    """
    if not bus.server_key and not bus.client_secret and is_local_endpoint(bus.join):
        return None
    missing = [name for name, value in (("bus.server_key", bus.server_key), ("bus.client_secret", bus.client_secret))
               if not value]
    if missing:
        raise ConfigError(f"bus.join = {bus.join!r} is reached over the network, which needs CURVE keys: set "
                          f"{' and '.join(missing)} (the bus host's server.key, and this host's NAME.key_secret "
                          "from `moodwire keys DIR --client NAME` run on the bus host); docs/deployment.md")
    return CurveClient.from_files(bus.server_key, bus.client_secret, "bus.server_key", "bus.client_secret")


# ------------------------------------------------------------------ reading


def read_key_file(path: str | Path, setting: str, what: str, secret: bool = False) -> tuple[bytes, bytes | None]:
    """(public, secret) z85 keys from a ZeroMQ certificate file, checked; ConfigError naming ``setting``."""
    path = Path(path).expanduser()
    where = f"{setting} = {str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file; it must be {what}. {KEYS_FIX}")
    try:
        mode = path.stat().st_mode
        public, secret_key = zmq.auth.load_certificate(path)
    except PermissionError:
        raise ConfigError(f"{where}: cannot be read by this user; fix its owner or permissions "
                          f"(chmod 600 {path})") from None
    except (ValueError, OSError, UnicodeError):
        raise ConfigError(f"{where}: is not a ZeroMQ key file (no public-key line); it must be {what}, "
                          "as `moodwire keys` writes it") from None
    if not _is_z85_key(public):
        raise ConfigError(f"{where}: its public-key is not a 40-character Z85 CURVE key; "
                          "make new keys with `moodwire keys`")
    if not secret:
        return public, None
    if secret_key is None:
        raise ConfigError(f"{where}: holds only a public key; it must be {what}, the .key_secret file")
    if not _is_z85_key(secret_key) or zmq.curve_public(secret_key) != public:
        raise ConfigError(f"{where}: its secret-key is not a valid CURVE key or does not match its public-key; "
                          "make new keys with `moodwire keys`")
    if mode & 0o077:
        raise ConfigError(f"{where}: a secret key must be private, but others may read it (mode "
                          f"{stat.S_IMODE(mode):o}); chmod 600 {path}")
    return public, secret_key


def load_client_keys(folder: str | Path, setting: str = "bus.curve_clients") -> frozenset[bytes]:
    """The z85 public keys of every ``*.key`` file in ``folder``; ConfigError naming ``setting`` if none or bad."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{setting} = {str(path)!r}: no such folder; it must hold the public keys (*.key) "
                          f"of the clients allowed on the public endpoint. {KEYS_FIX}")
    files = sorted(path.glob("*.key"))
    if not files:
        raise ConfigError(f"{setting} = {str(path)!r}: holds no client public keys (*.key), so no client "
                          "could connect; add one with `moodwire keys DIR --client NAME`")
    return frozenset(read_key_file(f, setting, "a client's public key (NAME.key)")[0] for f in files)


def _is_z85_key(key: bytes) -> bool:
    try:
        return len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, IndexError, TypeError):
        return False


# ------------------------------------------------------------------ making


@dataclass(frozen=True)
class MadeKeys:
    """What ``make_keys`` wrote (or found); ``server_made`` is False when an existing server keypair was kept."""

    folder: Path
    server_public: Path
    server_secret: Path
    client_public: Path
    client_secret: Path
    server_made: bool

    def instructions(self) -> str:
        """What to set on the pipeline's machine and what to give each client."""
        kept = "" if self.server_made else " (kept: it existed already)"
        return "\n".join([
            f"server keypair{kept}: {self.server_secret} (secret, stays on the pipeline's machine), "
            f"{self.server_public} (public)",
            f"client keypair: {self.client_secret} (secret, give it to that client only); its public key "
            f"{self.client_public} is now allowed",
            "",
            "on the pipeline's machine, set in the config TOML:",
            "  [bus]",
            '  public = "tcp://0.0.0.0:5560"   # or a LAN address; loopback needs no keys',
            f'  curve_server_secret = "{self.server_secret}"',
            f'  curve_clients = "{self.client_public.parent}"',
            "on the client's machine (with copies of the two files):",
            f"  moodwire listen --endpoint tcp://HOST:5560 --server-key {self.server_public.name} "
            f"--client-key {self.client_secret.name}",
            "restart the pipeline after adding a client: the allowed keys are read when it starts.",
        ])


def make_keys(folder: str | Path, client: str = "client") -> MadeKeys:
    """A server keypair (unless ``folder`` has one) and a client keypair ``client``, secrets 0600.

    Files are made in a private (0700) temporary folder and moved into place, so
    a secret key is never readable by others, even for a moment.
    """
    if not client or client == SERVER_NAME or os.sep in client or client.startswith("."):
        raise ConfigError(f"client name {client!r} is not allowed; use a plain name such as robot1")
    folder = Path(folder).expanduser().absolute()  # absolute: the printed settings work from any directory
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    clients = folder / CLIENTS_DIR
    clients.mkdir(exist_ok=True)
    server_public, server_secret = folder / f"{SERVER_NAME}.key", folder / f"{SERVER_NAME}.key_secret"
    client_public, client_secret = clients / f"{client}.key", folder / f"{client}.key_secret"
    if client_public.exists() or client_secret.exists():
        raise ConfigError(f"a client named {client!r} exists already in {folder}; pick another name with --client")
    server_made = not server_secret.exists()
    with tempfile.TemporaryDirectory(dir=folder, prefix=".keys-") as tmp:  # mode 0700
        made = []
        if server_made:
            made += zip(zmq.auth.create_certificates(tmp, SERVER_NAME), (server_public, server_secret))
        made += zip(zmq.auth.create_certificates(tmp, client), (client_public, client_secret))
        for source, target in made:
            os.chmod(source, 0o600 if source.endswith(".key_secret") else 0o644)
            shutil.move(source, target)
    return MadeKeys(folder, server_public, server_secret, client_public, client_secret, server_made)
