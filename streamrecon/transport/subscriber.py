"""Python client of the mesh stream (spec ``docs/protocol.md``)::

    from streamrecon.transport.subscriber import MeshSubscriber
    with MeshSubscriber("tcp://127.0.0.1:5555") as sub:
        for msg in sub:                      # until the publisher's end-of-stream
            print(msg.header.frame_index, msg.mesh.num_vertices, sub.latency(msg))

``recv`` returns the next message; ``recv_latest`` drains what is queued and keeps the newest mesh
(what a viewer wants: latency stays bounded however slow the consumer). Messages lost on the way
(publisher-side high-water mark, late join) are counted in ``missed`` from gaps in ``seq``;
messages skipped by ``recv_latest`` in ``skipped``; malformed ones in ``rejected`` (logged, never
trusted: the decoder checks every size before allocating, and ``MAXMSGSIZE`` caps what ZeroMQ
itself accepts). Owned by one thread.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator, Optional

from . import wire
from ..errors import ProtocolError, UserInputError

log = logging.getLogger(__name__)


class MeshSubscriber:
    def __init__(self, address: str = "tcp://127.0.0.1:5555", rcvhwm: int = 4, strict: bool = False,
                 curve_keys: Optional[str] = None) -> None:
        """``curve_keys``: a key folder (``streamrecon.transport.curve``) to authenticate to a CURVE publisher."""
        import zmq

        if not address.startswith(("tcp://", "ipc://", "inproc://")):
            raise UserInputError(f"--connect: expected tcp://HOST:PORT or ipc://PATH, got {address!r}")
        keys = None
        if curve_keys is not None:
            from .curve import client_keys

            keys = client_keys(curve_keys)
        self.address = address
        self.strict = strict
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        if keys is not None:
            from .curve import apply_client

            apply_client(self._sock, keys)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_FACES * 12)  # largest legal part
        self._sock.setsockopt(zmq.SUBSCRIBE, wire.TOPIC)
        try:
            self._sock.connect(address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise UserInputError(f"--connect: cannot connect to {address}: {exc.strerror}") from None
        self.received = 0
        self.missed = 0
        self.skipped = 0
        self.rejected = 0
        self.ended = False
        self._last_seq: Optional[int] = None

    def _read(self, timeout_ms: Optional[int]) -> Optional[wire.MeshMessage]:
        """One raw message decoded (None on timeout); malformed ones are counted and skipped
        (raised with ``strict``)."""
        import zmq

        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            wait = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(wait if wait is not None else -1, zmq.POLLIN):
                return None
            frames = self._sock.recv_multipart(copy=False)
            try:
                if frames[0].bytes != wire.TOPIC:
                    raise ProtocolError(f"unexpected topic {frames[0].bytes[:32]!r}")
                msg = wire.decode([f.buffer for f in frames[1:]])
            except ProtocolError as exc:
                self.rejected += 1
                if self.strict:
                    raise
                log.warning("rejected a message from %s: %s", self.address, exc)
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            seq = msg.header.seq
            if seq == self._last_seq and msg.header.is_end:
                continue  # a repeat of the end-of-stream (see MeshPublisher.end)
            if self._last_seq is not None and seq > self._last_seq + 1:
                self.missed += seq - self._last_seq - 1
            # seq < last: a restarted publisher; count from its new numbering
            self._last_seq = seq
            if msg.header.is_end:
                self.ended = True
            else:
                self.received += 1
            return msg

    def recv(self, timeout: Optional[float] = None) -> Optional[wire.MeshMessage]:
        """Next message (a mesh or the end-of-stream); None after ``timeout`` seconds."""
        return self._read(None if timeout is None else int(timeout * 1000))

    def recv_latest(self, timeout: Optional[float] = None) -> Optional[wire.MeshMessage]:
        """Wait up to ``timeout`` for a message, then drain the queue and return the newest one
        (an end-of-stream wins over meshes). Earlier meshes drained are counted in ``skipped``."""
        msg = self.recv(timeout)
        if msg is None or msg.header.is_end:
            return msg
        while True:
            nxt = self._read(0)
            if nxt is None:
                return msg
            if nxt.header.is_end:
                return nxt
            self.skipped += 1
            msg = nxt

    def __iter__(self) -> Iterator[wire.MeshMessage]:
        """Mesh messages until the end-of-stream message (which is not yielded)."""
        while True:
            msg = self.recv()
            if msg is None or msg.header.is_end:
                return
            yield msg

    @staticmethod
    def latency(msg: wire.MeshMessage, now: Optional[float] = None) -> float:
        """Seconds from capture to ``now`` (wall clock; across hosts the clocks must agree)."""
        return (time.time() if now is None else now) - msg.header.capture_time

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> "MeshSubscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
