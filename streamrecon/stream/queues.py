"""A bounded queue between two pipeline stages, with a stated policy for a full queue.

- ``"block"`` (files, image folders): the producer waits for room, so nothing is lost; a slow
  consumer slows the producer down (back-pressure).
- ``"latest"`` (cameras, network streams): the producer never waits; the *oldest* queued item is
  dropped to make room and counted in ``dropped``. Latency stays bounded by ``maxsize`` items.

The queue is closed by ``close(end)``: items already queued are still delivered, then every
``get`` returns the end marker. ``close`` never blocks and always succeeds, so a stage can hand its
end of stream (or its error) on from a ``finally`` block even when the queue is full. ``abort``
wakes every waiter at once (shutdown). Thread-safe; one producer and one consumer is the intended
use, more work.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Optional

POLICIES = ("block", "latest")


class Closed(Exception):
    """Raised by ``put`` on a closed or aborted queue (the consumer is gone: stop producing)."""


class BoundedQueue:
    """Bounded FIFO with a drop policy (see module docstring). ``dropped`` counts items the
    ``latest`` policy discarded; ``put_count`` counts accepted items."""

    def __init__(self, maxsize: int, policy: str = "block", name: str = "queue") -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize: must be >= 1, got {maxsize}")
        if policy not in POLICIES:
            raise ValueError(f"policy: expected one of {POLICIES}, got {policy!r}")
        self.maxsize = maxsize
        self.policy = policy
        self.name = name
        self.dropped = 0
        self.put_count = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._end: Any = None
        self._closed = False
        self._aborted = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed or self._aborted

    def put(self, item: Any, timeout: Optional[float] = None) -> bool:
        """Add ``item``. ``block``: wait for room (up to ``timeout`` s; returns False on timeout).
        ``latest``: never waits; drops the oldest item when full. Raises ``Closed`` when the queue
        was closed or aborted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed or self._aborted:
                    raise Closed(self.name)
                if len(self._items) < self.maxsize:
                    break
                if self.policy == "latest":
                    self._items.popleft()
                    self.dropped += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: Optional[float] = None) -> Any:
        """Next item; after ``close(end)`` and once drained, returns ``end``. Raises ``Closed`` when
        aborted and ``TimeoutError`` after ``timeout`` seconds without an item."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._aborted:
                    raise Closed(self.name)
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify_all()
                    return item
                if self._closed:
                    return self._end
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(self.name)
                self._cond.wait(remaining)

    def close(self, end: Any = None) -> None:
        """Mark the end of the stream with ``end`` (delivered after the queued items). Never blocks;
        a second close keeps the first end marker."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._end = end
            self._cond.notify_all()

    def abort(self) -> None:
        """Wake every waiting ``put``/``get`` with ``Closed``; queued items are discarded."""
        with self._cond:
            self._aborted = True
            self._items.clear()
            self._cond.notify_all()
