"""The pipeline supervisor: a source on a capture thread, then one thread per stage, connected by
``BoundedQueue``s; the caller's thread consumes the last stage's results.

    capture thread --q0--> stage 1 thread --q1--> ... --qn--> caller (``for r in pipeline``)

Rules it enforces (docs/streaming.md):
- ``q0`` uses the source's policy (``latest`` for live sources: stale frames dropped and counted;
  ``block`` for files: nothing lost); later queues always ``block`` (results are never dropped;
  under ``latest`` the queues between two stages hold one item, so a live frame never waits behind
  several others).
- Every thread hands its end of stream on in ``finally`` (``queue.close(_End)``), carrying its
  error if it failed, so a consumer never waits forever.
- The first failure (in time) is re-raised on the caller's thread: a ``StreamreconError`` as is
  (the CLI prints one line), anything else as ``StageError`` naming the stage and frame.
- One stop event. ``stop()`` (or Ctrl-C / an exception in the caller's loop, or leaving the
  ``with`` block) sets it, aborts every queue and joins every thread within ``join_timeout_s``;
  threads still busy in a long call (a decoder blocked on a network read, a network in the middle
  of a frame) are daemons and are reported in the log, never waited for longer.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Container, Iterator, List, Optional, Sequence, Tuple

from .capture import Source, capture_loop
from ..errors import StreamreconError
from .queues import BoundedQueue, Closed

log = logging.getLogger(__name__)

Stage = Tuple[str, Callable[[Any], Any]]


class StageError(RuntimeError):
    """A pipeline stage failed with an unexpected (non-user) error; chained to the original."""


@dataclass(frozen=True)
class PipelineConfig:
    """How stages are connected."""

    policy: str = "auto"
    """Full-queue policy after capture: ``latest`` (drop stale frames), ``block`` (lose nothing),
    or ``auto`` (``latest`` for live sources, ``block`` for files and folders)."""
    queue_size: int = 0
    """Frames waiting between capture and the first stage; 0 = 1 for latest, 4 for block."""
    result_queue_size: int = 4
    """Results waiting between stages and for the consumer (always ``block``)."""
    max_frames: Optional[int] = None
    """Stop after this many captured frames (None = until the source ends)."""
    join_timeout_s: float = 1.5
    """On shutdown, total time to wait for threads to finish before leaving them (daemons)."""

    def __post_init__(self) -> None:
        """One-line ``UserInputError`` naming the flag (``--policy``, ``--queue-size``, ``--max-frames``)."""
        import math

        from ..errors import UserInputError

        if self.policy not in POLICIES:
            raise UserInputError(f"--policy: expected one of {POLICIES}, got {self.policy!r}")
        if not _is_int(self.queue_size) or not 0 <= self.queue_size <= MAX_QUEUE_SIZE:
            raise UserInputError(f"--queue-size: expected a count in [0, {MAX_QUEUE_SIZE}] (0 = 1 for latest, 4 for block), "
                                 f"got {self.queue_size!r}")
        if not _is_int(self.result_queue_size) or not 1 <= self.result_queue_size <= MAX_QUEUE_SIZE:
            raise UserInputError(f"result_queue_size: expected a count in [1, {MAX_QUEUE_SIZE}], got {self.result_queue_size!r}")
        if self.max_frames is not None and (not _is_int(self.max_frames) or self.max_frames < 1):
            raise UserInputError(f"--max-frames: expected a count >= 1 (leave it out for the whole source), got {self.max_frames!r}")
        if not isinstance(self.join_timeout_s, (int, float)) or not (math.isfinite(self.join_timeout_s) and self.join_timeout_s >= 0):
            raise UserInputError(f"join_timeout_s: expected seconds >= 0, got {self.join_timeout_s!r}")


POLICIES = ("auto", "latest", "block")
MAX_QUEUE_SIZE = 1024
"""frames a queue may hold: each is a decoded image (25 MB at 4K), and a deeper queue only adds latency"""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class _Replay:
    """A frame already done (``Pipeline(skip=...)``) that only the first stage sees (its state, e.g.
    a people tracker, advances as in a run that did not skip it); dropped after it."""

    frame: Any


@dataclass
class _End:
    """End-of-stream marker handed down the queues; ``error`` set when ``stage`` failed."""

    stage: str
    error: Optional[BaseException] = None


class Pipeline:
    """Supervisor; constructed, iterated and stopped on the caller's thread. Iterating starts the
    threads and yields the last stage's outputs in capture order. ``frames_in``: frames captured;
    ``dropped``: frames the ``latest`` policy discarded."""

    def __init__(self, source: Source, stages: Sequence[Stage], config: PipelineConfig = PipelineConfig(),
                 stop_event: Optional[threading.Event] = None, skip: Optional[Container[int]] = None,
                 replay_skipped: bool = False) -> None:
        """``skip``: indices of frames not to process (a resumed run's done frames); they are still
        read (a video decodes in order) and, with ``replay_skipped``, handed to the first stage
        only, whose result is dropped."""
        policy = config.policy
        if policy == "auto":
            policy = "latest" if source.live else "block"
        qsize = config.queue_size or (1 if policy == "latest" else 4)
        self.source = source
        self.config = config
        self.policy = policy
        # Setting it from any thread ends the run gracefully: capture stops, the supervisor returns.
        self.stop_event = stop_event or threading.Event()
        self.frames_in = 0
        self.skip = skip
        self.replay_skipped = replay_skipped
        self._stages = list(stages)
        self._queues = [BoundedQueue(qsize, policy, name="frames")]
        for k, (name, _) in enumerate(self._stages):
            # between two stages of a live run one slot: a frame waits there at most one step of
            # the next stage, and older frames are dropped at capture instead of queueing up
            between = k < len(self._stages) - 1
            size = 1 if (between and policy == "latest") else config.result_queue_size
            self._queues.append(BoundedQueue(size, "block", name=f"{name}-out"))
        self._threads: List[threading.Thread] = []
        self._failure: Optional[Tuple[str, BaseException, Any]] = None
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self.left_running: List[str] = []

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in self._queues)

    # -- threads ---------------------------------------------------------------------------
    def _record_failure(self, stage: str, exc: BaseException, item: Any) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = (stage, exc, item)
        # No stop here: what was queued before the failure still flows down (files lose nothing)
        # and the failure follows it in-band; the supervisor stops everything when it arrives.

    def _capture_main(self) -> None:
        out = self._queues[0]
        end = _End("capture")

        def put(frame: Any) -> None:
            if self.skip is not None and frame.index in self.skip:
                if self.replay_skipped:
                    out.put(_Replay(frame))
                return
            out.put(frame)
            self.frames_in += 1

        try:
            capture_loop(self.source, put, self.stop_event, self.config.max_frames)
        except Closed:
            pass
        except BaseException as exc:
            self._record_failure("capture", exc, None)
            end = _End("capture", exc)
        finally:
            out.close(end)
            try:
                self.source.close()
            except Exception:
                log.debug("source close failed", exc_info=True)

    def _stage_main(self, k: int) -> None:
        name, fn = self._stages[k]
        inq, outq = self._queues[k], self._queues[k + 1]
        end = _End(name)
        item = None
        try:
            while True:
                item = inq.get()
                if isinstance(item, _End):
                    end = item  # upstream end (or upstream error): hand it on unchanged
                    break
                if self.stop_event.is_set():
                    break
                if isinstance(item, _Replay):
                    if k == 0:
                        fn(item.frame)
                    continue
                outq.put(fn(item))
        except Closed:
            pass
        except BaseException as exc:
            self._record_failure(name, exc, item)
            end = _End(name, exc)
        finally:
            outq.close(end)

    # -- supervisor ------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            raise RuntimeError("pipeline already started")
        self._started = True
        targets = [("capture", self._capture_main)] + [(n, lambda k=k: self._stage_main(k)) for k, (n, _) in enumerate(self._stages)]
        for name, target in targets:
            t = threading.Thread(target=target, name=f"streamrecon-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def __iter__(self) -> Iterator[Any]:
        if not self._started:
            self.start()
        last = self._queues[-1]
        try:
            while True:
                try:
                    item = last.get(timeout=0.1)  # short waits keep Ctrl-C responsive
                except TimeoutError:
                    if self.stop_event.is_set():
                        break
                    continue
                except Closed:
                    break
                if isinstance(item, _End):
                    break
                yield item
            self._raise_failure()
        finally:
            self.stop()

    def _raise_failure(self) -> None:
        if self._failure is None:
            return
        stage, exc, item = self._failure
        if isinstance(exc, StreamreconError):
            raise exc
        index = getattr(item, "index", getattr(getattr(item, "frame", None), "index", None))
        where = f" on frame {index}" if index is not None else ""
        raise StageError(f"stage '{stage}' failed{where}: {type(exc).__name__}: {exc}") from exc

    def stop(self) -> None:
        """Set the stop event, abort every queue and join the threads (bounded wait). Idempotent."""
        self.stop_event.set()
        if self._stopped:
            return  # joined (or given up on) once already: a second bounded wait would add up
        self._stopped = True
        for q in self._queues:
            q.abort()
        deadline = time.monotonic() + self.config.join_timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.left_running = [t.name for t in self._threads if t.is_alive()]
        if self.left_running:
            log.warning("threads still busy after stop, left as daemons: %s", ", ".join(self.left_running))

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
