"""ZeroMQ mesh publisher (wire format: ``streamrecon.transport.wire``, spec ``docs/protocol.md``).

An XPUB socket (a PUB that also sees subscriptions, so ``wait_for_subscribers`` can hold a file
run until a recorder is connected). Each mesh is one multipart message ``[TOPIC, header,
buffers...]``. ``SNDHWM`` bounds the messages queued per subscriber: when a subscriber is slow
its queue fills and further meshes *to it* are dropped by ZeroMQ; ``send_mesh`` never blocks, so a
slow subscriber never stalls the pipeline (subscribers detect the gaps from ``seq``). A heartbeat
every ``wire.HEARTBEAT_S`` carries the next ``seq``, so a subscriber also learns of losses at the
end of the stream, and that the publisher is gone when heartbeats stop.

Buffers and shutdown: mesh buffers go to ZeroMQ without a copy (a copy costs a third of the
throughput of 5 MB messages, docs/protocol.md); pyzmq holds each array until libzmq releases it,
and every send is tracked. ``end`` drains, for at most ``drain_s``: it waits until libzmq has taken
every queued mesh, sends the end-of-stream, and waits for the subscribers to read it and leave;
what is still queued then is dropped, counted and logged. ``close`` terminates the publisher's own ZeroMQ
context, so libzmq has released every buffer before it returns (an exiting interpreter frees the
arrays pyzmq holds: a send still in flight then would put freed memory on the wire). Publishers
left open are closed at interpreter exit.

Binds ``tcp://127.0.0.1:5555`` by default; binding anything else reachable from other machines logs
a warning, unless ``curve_keys`` names a key folder (``streamrecon.transport.curve``): then only subscribers
whose public key is authorised get in, and the stream is encrypted.

Threads: the caller's thread (the pipeline's consumer thread) sends meshes, ends and closes; a
heartbeat thread of the publisher's own sends heartbeats. Both touch the socket only under one
lock (ZeroMQ lets a socket move between threads across a full memory barrier, which the lock is).
"""
from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from typing import Optional

from . import wire
from .address import check_address, is_local  # noqa: F401  (is_local: public here too)
from ..errors import UserInputError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DRAIN_S = 3.0
"""Default seconds ``end`` waits for slow subscribers to take what is queued for them."""

_open_publishers: "weakref.WeakSet[MeshPublisher]" = weakref.WeakSet()
_exit_hook = []


def _close_open_publishers() -> None:
    for pub in list(_open_publishers):
        pub.close()


def _register_exit_hook() -> None:
    """Close publishers left open at interpreter exit *before* pyzmq's exit hook drops the arrays
    it holds for zero-copy sends (atexit runs hooks last-registered first, so pyzmq's is
    registered here, then ours)."""
    if not _exit_hook:
        import zmq.utils.garbage  # noqa: F401  (registers pyzmq's hook on import)

        atexit.register(_close_open_publishers)
        _exit_hook.append(True)


def _wall(monotonic_t: float) -> float:
    """A ``time.monotonic()`` instant as wall-clock ``time.time()`` seconds (the wire's clock)."""
    return time.time() - (time.monotonic() - monotonic_t)


class MeshPublisher:
    """Publishes ``FrameResult`` meshes, heartbeats and the end-of-stream message. ``sent``: mesh
    messages handed to ZeroMQ; ``bytes_sent``: their payload bytes; ``dropped_at_end``: messages
    still queued for a subscriber when the drain gave up (set by ``end`` / ``close``)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, sndhwm: int = 4, drain_s: float = DRAIN_S,
                 curve_keys: Optional[str] = None, heartbeat_s: float = wire.HEARTBEAT_S) -> None:
        import zmq

        check_address(address, "--publish", bind=True)
        if not drain_s >= 0:
            raise ValueError(f"drain_s: expected seconds >= 0, got {drain_s}")
        keys = None
        if curve_keys is not None:
            from .curve import server_keys

            keys = server_keys(curve_keys)
        if not is_local(address) and keys is None:
            log.warning("publishing meshes on %s: reachable from other machines, unauthenticated and unencrypted "
                        "(add --curve-keys DIR to admit only authorised subscribers)", address)
        self.address = address
        self.drain_s = float(drain_s)
        self.heartbeat_s = float(heartbeat_s)
        self._auth = None
        # A context of our own: close() terminates it, which returns only once libzmq has released
        # every message (and, with CURVE, its ZAP handler serves this socket only).
        self._ctx = zmq.Context()
        if keys is not None:
            from .curve import Authenticator

            self._auth = Authenticator(self._ctx, keys)
        self._sock = self._ctx.socket(zmq.XPUB)
        if keys is not None:
            from .curve import apply_server

            apply_server(self._sock, keys)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, 0)  # end() drains, bounded; what is left at close is dropped
        # every subscription and every unsubscription (a subscriber leaving), not just the first
        # and last per topic: end() waits for the subscribers to leave
        self._sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        try:
            self._sock.bind(address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            self._close_context()
            raise UserInputError(f"--publish: cannot bind {address}: {exc.strerror}; is another streamrecon running? pick another port") from None
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        """The address actually bound (with ``:0`` or ``:*``, the port the system picked)."""
        log.info("publishing meshes on %s", self.endpoint)
        self.seq = 0
        self.sent = 0
        self.bytes_sent = 0
        self.subscriptions = 0
        self.dropped_at_end = 0
        self._pending: collections.deque = collections.deque()  # trackers of sends libzmq may still hold
        self._lock = threading.Lock()
        self._ended = self._closed = False
        self.bodies_sent = 0
        self._stop_heartbeat = threading.Event()
        self._heartbeat = threading.Thread(target=self._heartbeats, name="mesh-heartbeat", daemon=True)
        _register_exit_hook()
        _open_publishers.add(self)
        self._heartbeat.start()

    # ---- sending (under self._lock) ----------------------------------------------------------
    def _send(self, parts: list, track: bool) -> Optional[object]:
        """Send ``[TOPIC, *parts]`` without blocking; buffers zero-copy (pyzmq keeps them alive
        until libzmq releases them). With ``track`` the last part is a tracked frame whose tracker
        is returned: libzmq releases a message's parts in order, so it is done once the whole
        message has left its queue for every subscriber (or was dropped at the HWM)."""
        import zmq

        self._sock.send(wire.TOPIC, zmq.SNDMORE | zmq.NOBLOCK)
        for p in parts[:-1]:
            self._sock.send(p, zmq.SNDMORE | zmq.NOBLOCK, copy=False)
        last = zmq.Frame(parts[-1], copy=False, track=True) if track else parts[-1]
        self._sock.send(last, zmq.NOBLOCK, copy=False)
        return last.tracker if track else None

    def _poll_subscriptions(self, timeout_ms: int = 0) -> None:
        import zmq

        while self._sock.poll(timeout_ms, zmq.POLLIN):
            msg = self._sock.recv()
            if msg[:1] == b"\x01":
                self.subscriptions += 1
            elif msg[:1] == b"\x00":
                self.subscriptions = max(0, self.subscriptions - 1)
            timeout_ms = 0

    def _prune(self) -> None:
        while self._pending and self._pending[0].done:
            self._pending.popleft()

    def _heartbeats(self) -> None:
        """The heartbeat thread: one heartbeat now and every ``heartbeat_s`` until ``end``/``close``."""
        while True:
            with self._lock:
                if self._ended or self._closed:
                    return
                self._send(wire.encode_heartbeat(next_seq=self.seq, publish_time=time.time()), track=False)
                self._poll_subscriptions()
            if self._stop_heartbeat.wait(self.heartbeat_s):
                return

    # ---- public --------------------------------------------------------------------------------
    def wait_for_subscribers(self, n: int, timeout_s: float) -> bool:
        """Block until ``n`` subscriptions arrived (or ``timeout_s``); True when they did."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                self._poll_subscriptions(0)
                if self.subscriptions >= n:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.01))

    def send_mesh(self, mesh, *, frame_index: int, person_id: int = 0, person_index: int = 0,
                  persons_in_frame: int = 1, capture_time: float = 0.0, image_size: tuple = (0, 0),
                  body: Optional[dict] = None) -> int:
        """Send one mesh (``capture_time`` wall-clock seconds), preceded on ``wire.BODY_TOPIC`` by
        the person's fitted ``body`` (``body.params.to_params``) when given. Never blocks. Returns
        the mesh message's bytes."""
        import zmq

        with self._lock:
            if self._ended or self._closed:
                raise RuntimeError("send_mesh after end() or close()")
            if body is not None:
                payload = wire.encode_body(body, seq=self.seq, frame_index=frame_index, person_id=person_id)
                self._sock.send_multipart([wire.BODY_TOPIC, payload], zmq.NOBLOCK)
                self.bodies_sent += 1
            parts = wire.encode_mesh(
                mesh, seq=self.seq, frame_index=frame_index, person_id=person_id,
                person_index=person_index, persons_in_frame=persons_in_frame,
                capture_time=capture_time, publish_time=time.time(), image_size=image_size,
            )
            self._prune()
            self._pending.append(self._send(parts, track=True))
            self.seq += 1
            self.sent += 1
            n = sum(memoryview(p).nbytes for p in parts)
            self.bytes_sent += n
            self._poll_subscriptions()
        return n

    def publish(self, result) -> None:
        """Every person mesh of a ``FrameResult``."""
        cap = _wall(result.frame.timestamp)
        size = (result.frame.width, result.frame.height)
        for i, p in enumerate(result.persons):
            body = None
            if getattr(p.crop, "body", None) is not None:
                from ..body.params import to_params

                body = to_params(p.crop.body)
            self.send_mesh(p.mesh, frame_index=result.frame.index, person_id=p.crop.person_id,
                           person_index=i, persons_in_frame=len(result.persons), capture_time=cap,
                           image_size=size, body=body)

    def end(self, frames: int) -> int:
        """End the stream, at most ``drain_s`` seconds: no more meshes; wait until libzmq has taken
        every queued mesh (each subscriber's queue is then empty, so the end-of-stream cannot be
        dropped at the high-water mark), send the end-of-stream (one message, its own ``seq``),
        and wait until the subscribers have read it and left. Subscribers already caught up
        keep receiving heartbeats meanwhile. Returns ``dropped_at_end``: messages still queued
        when the time ran out (logged as a warning). Called once; ``close`` follows."""
        import zmq

        deadline = time.monotonic() + self.drain_s
        self._stop_heartbeat.set()
        self._heartbeat.join()
        with self._lock:
            if self._ended or self._closed:
                return self.dropped_at_end
            self._ended = True
            next_beat = time.monotonic() + self.heartbeat_s
            self._prune()
            while self._pending and time.monotonic() < deadline:
                try:
                    self._pending[0].wait(max(0.0, min(0.05, deadline - time.monotonic())))
                except zmq.NotDone:
                    pass
                self._prune()
                if time.monotonic() >= next_beat:  # to the subscribers with room: the publisher is still here
                    self._send(wire.encode_heartbeat(next_seq=self.seq, publish_time=time.time()), track=False)
                    next_beat += self.heartbeat_s
            # A queue that was full is taken out of the send set until libzmq handles the reader's
            # "room again" command; handle pending commands so the drained queues are back in it.
            self._sock.getsockopt(zmq.EVENTS)
            self._poll_subscriptions()
            self._pending.append(self._send(wire.encode_end(seq=self.seq, frames=frames, publish_time=time.time()), track=True))
            self.seq += 1
            self._drain(deadline)
            # A released message may still sit in libzmq's write batch behind a slow subscriber's
            # full kernel buffer, and closing now would lose it. A subscriber leaves once it has
            # read the end-of-stream: wait for them to go (same deadline).
            while self.subscriptions > 0 and time.monotonic() < deadline:
                self._poll_subscriptions(max(1, int(min(deadline - time.monotonic(), 0.05) * 1000)))
            if self.dropped_at_end:
                log.warning("mesh stream: %d message(s) still queued for slow subscribers after the %.1f s drain were "
                            "dropped, the end of stream with them (raise --drain-timeout to wait longer)",
                            self.dropped_at_end, self.drain_s)
            elif self.subscriptions:
                log.info("mesh stream: %d subscriber(s) still connected %.1f s after the end of stream",
                         self.subscriptions, self.drain_s)
            return self.dropped_at_end

    def _drain(self, deadline: float) -> bool:
        """Wait until libzmq released every tracked send, or ``deadline``; ``dropped_at_end`` = the
        messages it still holds. True when nothing is left."""
        import zmq

        for tracker in self._pending:
            try:
                tracker.wait(max(0.0, deadline - time.monotonic()))
            except zmq.NotDone:
                break
        self._prune()
        self.dropped_at_end = len(self._pending)
        return not self._pending

    def close(self) -> None:
        """Stop the heartbeat, drain what ``end`` did not (at most ``drain_s``), drop the rest,
        and terminate the context: every buffer is released when this returns. Idempotent."""
        self._stop_heartbeat.set()
        with self._lock:
            if self._closed:
                return
            if not self._ended and self._pending and self._drain(time.monotonic() + self.drain_s) is False:
                log.warning("mesh stream: %d message(s) still queued for slow subscribers at close were dropped",
                            self.dropped_at_end)
            self._closed = True
            self._sock.close(0)
        self._heartbeat.join()
        _open_publishers.discard(self)
        self._close_context()

    def _close_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()  # returns once libzmq has released every message (linger 0: no wait)

    def __enter__(self) -> "MeshPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
