"""Python client of the mesh stream (spec ``docs/protocol.md``)::

    from streamrecon.transport.subscriber import MeshSubscriber
    with MeshSubscriber("tcp://127.0.0.1:5555") as sub:
        for msg in sub:                      # until the end-of-stream, or the publisher is gone
            print(msg.header.frame_index, msg.mesh.num_vertices, sub.latency(msg))
        if not sub.ended:
            print("missed the end of stream; last messages missed:", sub.missed)

``recv`` returns the next mesh or the end-of-stream; ``recv_latest`` drains what is queued and
keeps the newest mesh (what a viewer wants: latency stays bounded however slow the consumer).
Heartbeats are consumed inside: they tell the publisher is alive and which ``seq`` comes next, so
messages lost on the way (publisher-side high-water mark, the end of the stream) are counted in
``missed`` from gaps in ``seq``; once the publisher has been heard, ``LOST_AFTER_S`` without any
message means it is gone (``lost``; ``recv`` returns None). Messages skipped by ``recv_latest``
are counted in ``skipped``; malformed ones (bad checksum included) in ``rejected``: never trusted
(the decoder checks every size before allocating, and ``MAXMSGSIZE`` caps what ZeroMQ itself
accepts) and logged at most once per ``REJECT_LOG_S`` with a count. ``connection_state`` tells
"no publisher" from "refused by a CURVE publisher". Owned by one thread.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Iterator, Optional

from . import wire
from .address import check_address
from ..errors import ProtocolError, UserInputError

log = logging.getLogger(__name__)

LOST_AFTER_S = 3 * wire.HEARTBEAT_S
"""Seconds without any message (a heartbeat comes every ``wire.HEARTBEAT_S``) after which a
publisher that was heard is taken as gone."""
REJECT_LOG_S = 5.0
"""At most one warning per this many seconds about rejected messages (the rest are counted)."""


class MeshSubscriber:
    def __init__(self, address: str = "tcp://127.0.0.1:5555", rcvhwm: int = 4, strict: bool = False,
                 curve_keys: Optional[str] = None, lost_after_s: float = LOST_AFTER_S, bodies: bool = False) -> None:
        """``curve_keys``: a key folder (``streamrecon.transport.curve``) to authenticate to a CURVE
        publisher. ``lost_after_s``: silence after which a publisher heard before is gone (0: never).
        ``bodies``: also receive the fitted-body messages (``wire.BODY_TOPIC``) and attach each to
        its mesh (``MeshMessage.body``)."""
        import zmq

        check_address(address, "--connect", bind=False)
        keys = None
        if curve_keys is not None:
            from .curve import client_keys

            keys = client_keys(curve_keys)
        self.address = address
        self.strict = strict
        self.lost_after_s = lost_after_s
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        if keys is not None:
            from .curve import apply_client

            apply_client(self._sock, keys)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_FACES * 12)  # largest legal part
        self._sock.setsockopt(zmq.SUBSCRIBE, wire.TOPIC)
        if bodies:
            self._sock.setsockopt(zmq.SUBSCRIBE, wire.BODY_TOPIC)
        self._bodies: dict = {}  # seq -> body params, until their mesh arrives
        # Socket events (connected, refused, ...): libzmq blocks its I/O thread when a monitor's
        # queue is full, and a refused client retries ~10 times a second, so the queue has no
        # high-water mark and is read on every receive.
        monitor_addr = f"inproc://streamrecon.subscriber.monitor.{id(self):x}"
        self._sock.monitor(monitor_addr, zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                           | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        self._monitor = self._ctx.socket(zmq.PAIR)
        self._monitor.setsockopt(zmq.RCVHWM, 0)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._monitor.connect(monitor_addr)
        try:
            self._sock.connect(address)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise UserInputError(f"--connect: cannot connect to {address}: {exc.strerror}") from None
        self.received = 0
        self.missed = 0
        self.skipped = 0
        self.rejected = 0
        self.heartbeats = 0
        self.ended = False
        self.publisher_next_seq: Optional[int] = None
        """The ``seq`` the publisher's next message will carry, from its latest heartbeat."""
        self._last_seq: Optional[int] = None
        self._heard: Optional[float] = None  # monotonic time of the last valid message
        self._warned_at = -math.inf
        self._unlogged = 0
        self._state = "no publisher answered"

    # ---- state ---------------------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        """The publisher was heard, sent no end-of-stream, and has been silent ``lost_after_s``."""
        return (not self.ended and self._heard is not None and self.lost_after_s > 0
                and time.monotonic() - self._heard > self.lost_after_s)

    def connection_state(self) -> str:
        """What the socket saw of the publisher, in words: ``no publisher answered`` (nothing
        listens at the address, or nothing got through), ``connected``, ``refused by the publisher
        (CURVE key not authorised)``, ``handshake failed (...)``, ``disconnected``."""
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor is not None and self._monitor.poll(0, zmq.POLLIN):
            ev = recv_monitor_message(self._monitor)
            kind = ev["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED or (kind == zmq.EVENT_CONNECTED and self._state == "no publisher answered"):
                self._state = "connected"
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._state = "refused by the publisher (CURVE key not authorised)"
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self._state = "handshake failed (a CURVE publisher without --curve-keys here, or the reverse, or not a ZeroMQ peer)"
            elif kind == zmq.EVENT_DISCONNECTED and self._state == "connected":
                self._state = "disconnected"
        return self._state

    # ---- receiving -----------------------------------------------------------------------------
    def _log_rejected(self, exc: ProtocolError) -> None:
        now = time.monotonic()
        if now - self._warned_at < REJECT_LOG_S:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more rejected since the last warning)" if self._unlogged else ""
        log.warning("rejected a message from %s: %s%s", self.address, exc, more)
        self._warned_at, self._unlogged = now, 0

    def _expect(self, next_seq: int) -> None:
        """The publisher's next message carries ``next_seq``: those before it not seen yet are lost
        (ZeroMQ keeps order on a connection, so nothing earlier can still arrive)."""
        if self._last_seq is not None and next_seq > self._last_seq + 1:
            self.missed += next_seq - self._last_seq - 1
        # below the last seen: a restarted publisher; count from its new numbering
        self._last_seq = next_seq - 1

    def _read(self, timeout_ms: Optional[int]) -> Optional[wire.MeshMessage]:
        """The next mesh or end-of-stream (None on timeout, or once the publisher is ``lost``);
        heartbeats are taken in here, malformed messages counted and skipped (raised with ``strict``)."""
        import zmq

        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            self.connection_state()  # keeps the monitor's queue short
            now = time.monotonic()
            waits = [] if deadline is None else [deadline - now]
            if self._heard is not None and self.lost_after_s > 0 and not self.ended:
                waits.append(self._heard + self.lost_after_s - now + 0.001)
            wait_ms = -1 if not waits else max(0, int(min(waits) * 1000))
            if not self._sock.poll(wait_ms, zmq.POLLIN):
                if self.lost or (deadline is not None and time.monotonic() >= deadline):
                    return None
                continue
            frames = self._sock.recv_multipart(copy=False)
            try:
                if frames[0].bytes == wire.BODY_TOPIC:
                    if len(frames) != 2:
                        raise ProtocolError(f"body message: expected 2 parts, got {len(frames)}")
                    b = wire.decode_body(frames[1].buffer)
                    self._bodies[b["seq"]] = b["body"]
                    while len(self._bodies) > 64:  # bodies whose mesh was dropped
                        self._bodies.pop(next(iter(self._bodies)))
                    continue
                if frames[0].bytes != wire.TOPIC:
                    raise ProtocolError(f"unexpected topic {frames[0].bytes[:32]!r}")
                msg = wire.decode([f.buffer for f in frames[1:]])
            except ProtocolError as exc:
                self.rejected += 1
                if self.strict:
                    raise
                self._log_rejected(exc)
                continue
            h = msg.header
            self._heard = time.monotonic()
            if h.is_heartbeat:
                self.heartbeats += 1
                self.publisher_next_seq = h.seq
                self._expect(h.seq)
                continue
            if h.is_end and h.seq == self._last_seq:
                continue  # a repeat of the end-of-stream
            self._expect(h.seq)
            self._last_seq = h.seq
            if h.is_end:
                self.ended = True
            else:
                self.received += 1
                msg.body = self._bodies.pop(h.seq, None)
            return msg

    def recv(self, timeout: Optional[float] = None) -> Optional[wire.MeshMessage]:
        """Next message (a mesh or the end-of-stream); None after ``timeout`` seconds, or when the
        publisher is ``lost``."""
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
        """Mesh messages until the end-of-stream message (which is not yielded) or the publisher
        is ``lost``."""
        while True:
            msg = self.recv()
            if msg is None or msg.header.is_end:
                return
            yield msg

    @staticmethod
    def latency(msg: wire.MeshMessage, now: Optional[float] = None) -> float:
        """Seconds from capture to ``now`` (wall clock; across hosts the clocks must agree)."""
        return (time.time() if now is None else now) - msg.header.capture_time

    def _close_sockets(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
        self._sock.close(0)

    def close(self) -> None:
        if self._unlogged:
            log.warning("rejected %d more message(s) from %s since the last warning", self._unlogged, self.address)
            self._unlogged = 0
        if self._sock.closed:
            return
        self._close_sockets()

    def __enter__(self) -> "MeshSubscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
