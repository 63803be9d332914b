"""CURVE authentication and encryption for the mesh stream (ZeroMQ CurveZMQ, ``zmq.auth``).

A key folder made by ``streamrecon keys generate DIR`` holds::

    server.key, server.key_secret       the publisher's key pair
    client.key, client.key_secret       one subscriber key pair
    authorized_clients/client.key       public keys the publisher lets in (add more *.key files)

The publisher (``--curve-keys DIR``) needs ``server.key_secret`` and ``authorized_clients/``;
a subscriber (``--curve-keys DIR``) needs ``client.key_secret`` and ``server.key``. Copy only
those to each machine. A subscriber without a key, or with a key that is not in
``authorized_clients/``, is refused during the handshake and receives nothing. Every key file is
checked before the socket binds (a malformed one is a one-line error naming it). Secret files are
written mode 0600. Torch-free; ``zmq`` is imported inside the functions.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from ..errors import BackendUnavailableError, UserInputError

log = logging.getLogger(__name__)

SERVER, CLIENT, AUTHORIZED = "server", "client", "authorized_clients"


def _require_curve() -> None:
    import zmq

    if not zmq.has("curve"):
        raise BackendUnavailableError("--curve-keys: this pyzmq/libzmq build has no CURVE support; "
                                      "pip install --force-reinstall pyzmq (wheels bundle libsodium)")


def generate(key_dir: str, force: bool = False) -> dict:
    """Write a server and a client key pair and authorise the client (layout in the module
    docstring). Refuses to overwrite existing keys unless ``force``. Returns the paths."""
    import zmq.auth

    _require_curve()
    root = Path(key_dir)
    existing = [p for p in (root / f"{SERVER}.key_secret", root / f"{CLIENT}.key_secret") if p.exists()]
    if existing and not force:
        raise UserInputError(f"keys generate: {existing[0]} exists; pass --force to replace the keys "
                             "(subscribers holding the old keys will be refused)")
    old_umask = os.umask(0o077)  # secret files are never readable by others, not even briefly
    try:
        (root / AUTHORIZED).mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in (SERVER, CLIENT):
            public, secret = zmq.auth.create_certificates(root, name)
            os.chmod(public, 0o644)
            paths[name], paths[f"{name}_secret"] = public, secret
        paths["authorized"] = str(shutil.copyfile(paths[CLIENT], root / AUTHORIZED / f"{CLIENT}.key"))
    except OSError as exc:
        raise UserInputError(f"keys generate: cannot write to {str(root)!r}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    return paths


def _load(path: Path, secret: bool) -> Tuple[bytes, bytes]:
    """(public, secret) keys of the certificate ``path`` (secret b"" when absent and not needed),
    each checked to be a 40-character Z85 key (32 bytes); ``UserInputError`` naming the file."""
    import zmq.auth

    if not path.is_file():
        raise UserInputError(f"--curve-keys: {path} not found; make keys with 'streamrecon keys generate DIR'")
    try:
        public, sec = zmq.auth.load_certificate(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"--curve-keys: {path} is not a ZeroMQ certificate ({exc})") from None
    if secret and not sec:
        raise UserInputError(f"--curve-keys: {path} holds no secret key")
    for name, key in (("public-key", public), ("secret-key", sec)):
        if key and not _is_z85_key(key):
            raise UserInputError(f"--curve-keys: {path}: its {name} is not a CURVE key (40 Z85 characters); "
                                 "make keys with 'streamrecon keys generate DIR'")
    return public, sec or b""


def _is_z85_key(key: bytes) -> bool:
    from zmq.utils import z85

    if len(key) != 40:
        return False
    try:
        return len(z85.decode(key)) == 32
    except (KeyError, ValueError, TypeError):
        return False


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    authorized_dir: str


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server_public: bytes


def server_keys(key_dir: str) -> ServerKeys:
    """The publisher's keys from ``key_dir``; ``UserInputError`` naming what is missing."""
    _require_curve()
    root = Path(key_dir)
    public, secret = _load(root / f"{SERVER}.key_secret", secret=True)
    auth = root / AUTHORIZED
    clients = sorted(p for p in auth.iterdir() if p.suffix == ".key") if auth.is_dir() else []
    if not clients:
        raise UserInputError(f"--curve-keys: {auth} holds no client public keys (*.key); no subscriber could connect")
    for p in clients:  # pyzmq's ZAP handler would only log a bad one and refuse that client
        _load(p, secret=False)
    return ServerKeys(public, secret, str(auth))


def client_keys(key_dir: str) -> ClientKeys:
    """A subscriber's keys from ``key_dir``; ``UserInputError`` naming what is missing."""
    _require_curve()
    root = Path(key_dir)
    public, secret = _load(root / f"{CLIENT}.key_secret", secret=True)
    server_public, _ = _load(root / f"{SERVER}.key", secret=False)
    return ClientKeys(public, secret, server_public)


def apply_client(sock, keys: ClientKeys) -> None:
    """Make ``sock`` (before ``connect``) a CURVE client of the server whose public key it holds."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server_public


class Authenticator:
    """The publisher's ZAP handler: a thread (pyzmq's ``ThreadAuthenticator``) that admits only
    the public keys in ``authorized_dir``, on the publisher's own context. Owned by the publisher."""

    def __init__(self, ctx, keys: ServerKeys) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("streamrecon.transport.curve.zap"))
        self._auth.start()
        self._auth.configure_curve(domain="*", location=keys.authorized_dir)

    def stop(self) -> None:
        self._auth.stop()


def apply_server(sock, keys: ServerKeys) -> None:
    """Make ``sock`` (before ``bind``) a CURVE server with ``keys``."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
