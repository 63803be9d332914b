"""ZeroMQ addresses of the mesh stream: the accepted forms (``tcp://HOST:PORT``, ``ipc://PATH``,
``inproc://NAME``), a port range check (libzmq itself wraps ``:99999`` to another port without a
word), and whether an address is reachable only from this machine."""
from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import UserInputError

SCHEMES = ("tcp://", "ipc://", "inproc://")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def check_address(address: str, flag: str, bind: bool) -> None:
    """``UserInputError`` (one line naming ``flag``) unless ``address`` is a ZeroMQ address this
    stream uses with a port in range: 1-65535, or for a ``bind`` also 0 or ``*`` (any free port)."""
    if not isinstance(address, str) or not address.startswith(SCHEMES):
        raise UserInputError(f"{flag}: expected tcp://HOST:PORT or ipc://PATH, got {address!r}")
    if not address.startswith("tcp://"):
        return
    host, sep, port = address[len("tcp://"):].rpartition(":")
    if not sep or not host or not port:
        raise UserInputError(f"{flag}: expected tcp://HOST:PORT, got {address!r} (no port)")
    lowest = 0 if bind else 1
    if bind and port == "*":
        return
    any_port = "; 0 or * picks a free port" if bind else ""
    if not port.isdigit():
        raise UserInputError(f"{flag}: port {port!r} of {address!r} is not a number: expected {lowest}-65535{any_port}")
    if not lowest <= int(port) <= 65535:
        raise UserInputError(f"{flag}: port {port!r} of {address!r} is out of range: expected {lowest}-65535{any_port}")


def is_local(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(address).hostname if "://" in address else None
    return host is not None and (host in LOCAL_HOSTS or host.startswith("127."))
