"""ZeroMQ mesh publisher (wire format: ``streamrecon.transport.wire``, spec ``docs/protocol.md``).

An XPUB socket (a PUB that also sees subscriptions, so ``wait_for_subscribers`` can hold a file
run until a recorder is connected). Each mesh is one multipart message ``[TOPIC, header,
buffers...]``. ``SNDHWM`` bounds the messages queued per subscriber: when a subscriber is slow
its queue fills and further messages *to it* are dropped by ZeroMQ; ``send`` never blocks, so a
slow subscriber never stalls the pipeline (subscribers detect the gaps from ``seq``).

Binds ``tcp://127.0.0.1:5555`` by default; binding anything else reachable from other machines logs
a warning, unless ``curve_keys`` names a key folder (``streamrecon.transport.curve``): then only subscribers
whose public key is authorised get in, and the stream is encrypted. Owned by one thread (zmq sockets are not
thread-safe): the consumer thread of the pipeline.
"""
from __future__ import annotations

import logging
import time
from typing import Optional
from urllib.parse import urlsplit

from . import wire
from ..errors import UserInputError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_local(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(address).hostname if "://" in address else None
    return host is not None and (host in LOCAL_HOSTS or host.startswith("127."))


def _wall(monotonic_t: float) -> float:
    """A ``time.monotonic()`` instant as wall-clock ``time.time()`` seconds (the wire's clock)."""
    return time.time() - (time.monotonic() - monotonic_t)


class MeshPublisher:
    """Publishes ``FrameResult`` meshes and the end-of-stream message. ``sent``: mesh messages
    handed to ZeroMQ; ``bytes_sent``: their payload bytes."""

    def __init__(self, address: str = DEFAULT_ADDRESS, sndhwm: int = 4, linger_s: float = 1.0,
                 curve_keys: Optional[str] = None) -> None:
        import zmq

        if not address.startswith(("tcp://", "ipc://", "inproc://")):
            raise UserInputError(f"--publish: expected tcp://HOST:PORT or ipc://PATH, got {address!r}")
        keys = None
        if curve_keys is not None:
            from .curve import server_keys

            keys = server_keys(curve_keys)
        if not is_local(address) and keys is None:
            log.warning("publishing meshes on %s: reachable from other machines, unauthenticated and unencrypted "
                        "(add --curve-keys DIR to admit only authorised subscribers)", address)
        self.address = address
        self._auth = None
        self._own_ctx = keys is not None
        # CURVE: a context of our own, so its ZAP handler serves this socket only
        self._ctx = zmq.Context() if self._own_ctx else zmq.Context.instance()
        if keys is not None:
            from .curve import Authenticator

            self._auth = Authenticator(self._ctx, keys)
        self._sock = self._ctx.socket(zmq.XPUB)
        if keys is not None:
            from .curve import apply_server

            apply_server(self._sock, keys)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # see every subscription, not just the first per topic
        try:
            self._sock.bind(address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            self._close_auth()
            raise UserInputError(f"--publish: cannot bind {address}: {exc.strerror}; is another streamrecon running? pick another port") from None
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.seq = 0
        self.sent = 0
        self.bytes_sent = 0
        self.subscriptions = 0

    def _poll_subscriptions(self, timeout_ms: int = 0) -> None:
        import zmq

        while self._sock.poll(timeout_ms, zmq.POLLIN):
            msg = self._sock.recv()
            if msg[:1] == b"\x01":
                self.subscriptions += 1
            elif msg[:1] == b"\x00":
                self.subscriptions = max(0, self.subscriptions - 1)
            timeout_ms = 0

    def wait_for_subscribers(self, n: int, timeout_s: float) -> bool:
        """Block until ``n`` subscriptions arrived (or ``timeout_s``); True when they did. Then a
        short pause so the subscription is active on the publisher's side too."""
        deadline = time.monotonic() + timeout_s
        while self.subscriptions < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._poll_subscriptions(int(min(left, 0.1) * 1000))
        return True

    def send_mesh(self, mesh, *, frame_index: int, person_id: int = 0, person_index: int = 0,
                  persons_in_frame: int = 1, capture_time: float = 0.0, image_size: tuple = (0, 0)) -> int:
        """Send one mesh (``capture_time`` wall-clock seconds). Never blocks. Returns bytes."""
        import zmq

        parts = wire.encode_mesh(
            mesh, seq=self.seq, frame_index=frame_index, person_id=person_id,
            person_index=person_index, persons_in_frame=persons_in_frame,
            capture_time=capture_time, publish_time=time.time(), image_size=image_size,
        )
        self._sock.send_multipart([wire.TOPIC, *parts], flags=zmq.NOBLOCK, copy=False)
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
            self.send_mesh(p.mesh, frame_index=result.frame.index, person_id=p.crop.person_id,
                           person_index=i, persons_in_frame=len(result.persons), capture_time=cap,
                           image_size=size)

    def end(self, frames: int, repeats: int = 3, gap_s: float = 0.05) -> None:
        """End-of-stream message (recorders stop on it). PUB drops a message for a subscriber
        whose queue is full, so it is sent ``repeats`` times ``gap_s`` apart with the same ``seq``;
        subscribers treat the repeats as one."""
        import zmq

        parts = [wire.TOPIC, *wire.encode_end(seq=self.seq, frames=frames, publish_time=time.time())]
        for i in range(repeats):
            if i:
                time.sleep(gap_s)
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK)
        self.seq += 1

    def close(self) -> None:
        self._sock.close()
        self._close_auth()

    def _close_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_ctx:
            self._ctx.term()  # waits for the socket's linger (bounded by linger_s)
            self._own_ctx = False

    def __enter__(self) -> "MeshPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
