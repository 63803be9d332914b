"""One streaming session: source -> pipeline (capture thread, people thread, reconstruction
thread, meshing thread) -> sinks on the caller's thread (run directory, ZeroMQ publisher), with
statistics.

``open_session(SessionConfig)`` is the one place that opens and wires the parts (source, stage,
run writer, publisher) for both ``run`` and ``live``; ``Session.run`` streams until the source
ends, the duration passes, Ctrl-C, or a stage fails; the commands own the terminal (progress
bar, summary) through ``on_result``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..errors import UserInputError
from .capture import ReconnectConfig, Source
from .pipeline import Pipeline, PipelineConfig
from .stages import StageConfig
from .stats import RunStats

log = logging.getLogger(__name__)


@dataclass
class SessionResult:
    summary: dict
    interrupted: bool = False


def run_session(
    source: Source,
    stage: Callable,
    pipe_cfg: PipelineConfig,
    writer=None,
    publisher=None,
    on_result: Optional[Callable] = None,
    stats: Optional[RunStats] = None,
    stop_event=None,
    graceful_sigint: bool = False,
) -> SessionResult:
    """Run until the source ends (or ``pipe_cfg.max_frames``), Ctrl-C, or a stage fails (its error
    is re-raised after shutdown). Each ``FrameResult`` is written, then published, then handed to
    ``on_result(result, latency_s)``. The summary goes into the manifest in every case. Setting
    ``stop_event`` (any thread) ends the session gracefully. With ``graceful_sigint`` (the CLI, on
    the main thread) the first Ctrl-C sets the stop event instead of raising: results already
    finished are still written, the summary matches the files, and the run ends within the
    pipeline's join timeout even if a frame is mid-reconstruction; a second Ctrl-C raises."""
    import signal
    import threading

    stats = stats or RunStats()
    stop_event = stop_event or threading.Event()
    sigint = {"hit": False}
    previous = None
    if graceful_sigint and threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):
            if sigint["hit"]:
                raise KeyboardInterrupt
            sigint["hit"] = True
            stop_event.set()

        previous = signal.signal(signal.SIGINT, on_sigint)
    # a stage that splits itself (people, then recon) gets a thread per step
    stages = stage.stages() if hasattr(stage, "stages") else [("recon", stage)]
    pipeline = Pipeline(source, stages, pipe_cfg, stop_event=stop_event)
    interrupted = False
    t0 = time.monotonic()
    try:
        for result in pipeline:
            extra = {}
            if writer is not None:
                t = time.perf_counter()
                writer.write(result)
                extra["write_s"] = time.perf_counter() - t
            if publisher is not None:
                t = time.perf_counter()
                publisher.publish(result)
                extra["publish_s"] = time.perf_counter() - t
            latency = stats.add(result, extra=extra)
            if writer is not None:
                writer.manifest["frames"][-1]["timings"].update(extra, capture_to_done_s=latency)
            if on_result is not None:
                on_result(result, latency)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        interrupted = interrupted or sigint["hit"]
        pipeline.stop()
        summary = stats.summary(pipeline.frames_in, pipeline.dropped, time.monotonic() - t0)
        summary["skipped"] = int(getattr(source, "skipped", 0) or 0)  # undecodable frames of the source
        if publisher is not None:
            summary["published"] = publisher.sent
            publisher.end(pipeline.frames_in)
        if writer is not None:
            writer.finish(summary)
    return SessionResult(summary, interrupted)


@dataclass(frozen=True)
class SessionConfig:
    """What one ``run`` or ``live`` session opens (their flags mirror these fields)."""

    source: Optional[str] = None
    """video file, stream URL, image folder or ``synthetic:...`` (or ``camera``)"""
    camera: Optional[int] = None
    """webcam index instead of ``source``"""
    live: bool = False
    """a live session (``live``): newest frame first, files played at their frame rate"""
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    """how a lost camera or stream is reopened"""
    stage: StageConfig = field(default_factory=StageConfig)
    """the per-frame stages (model, resolution, people, backend)"""
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    """queues and drop policy"""
    out: Optional[str] = None
    """run directory to write (None: none)"""
    mesh_format: str = "obj"
    """mesh file format of the run directory"""
    save_inputs: bool = True
    """store the input frames as JPEG in the run directory"""
    publish: Optional[str] = None
    """ZeroMQ address to publish the meshes on (None: no publisher)"""
    curve_keys: Optional[str] = None
    """CURVE key folder of the publisher (``streamrecon keys generate``)"""
    wait_subscribers: int = 0
    """wait for this many subscribers before reading frames"""
    wait_timeout_s: float = 30.0
    """seconds to wait for them"""
    duration_s: Optional[float] = None
    """stop after this many seconds (None: when the source ends)"""

    def __post_init__(self) -> None:
        if (self.source is None) == (self.camera is None):
            raise UserInputError("pass either a SOURCE (video file, stream URL, image folder, synthetic:...) or --camera N")
        if self.wait_subscribers and not self.publish:
            raise UserInputError("--wait-subscribers needs --publish")
        if self.curve_keys and not self.publish:
            raise UserInputError("--curve-keys needs --publish")
        if self.duration_s is not None and not self.duration_s > 0:
            raise UserInputError(f"--duration: expected seconds > 0, got {self.duration_s}")


class Session:
    """The opened parts of one session: ``source``, ``stage``, ``writer`` (or None), ``publisher``
    (or None). ``run`` streams once; ``close`` releases what is still open (the source belongs to
    the capture thread once ``run`` starts). Used from the caller's thread."""

    def __init__(self, cfg: SessionConfig, source: Source) -> None:
        self.cfg = cfg
        self.source = source
        self.stage = None
        self.writer = None
        self.publisher = None
        self._started = False

    def run(self, on_result: Optional[Callable] = None, stop_event: Optional[threading.Event] = None,
            graceful_sigint: bool = True) -> SessionResult:
        """``run_session`` over the opened parts; ``cfg.duration_s`` sets ``stop_event`` when it passes."""
        stop_event = stop_event or threading.Event()
        timer = None
        if self.cfg.duration_s:
            timer = threading.Timer(self.cfg.duration_s, stop_event.set)
            timer.daemon = True
            timer.start()
        self._started = True
        try:
            return run_session(self.source, self.stage, self.cfg.pipeline, writer=self.writer, publisher=self.publisher,
                               on_result=on_result, stop_event=stop_event, graceful_sigint=graceful_sigint)
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        if not self._started:
            self.source.close()
        if self.publisher is not None:
            self.publisher.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def needs_pacing(source: Source) -> bool:
    """A file or image folder in a live session plays at its frame rate, like a camera (opened with
    ``live=True`` it says it is live, but nothing makes it wait: it would be read as fast as it
    decodes and nearly every frame dropped)."""
    return getattr(source, "kind", "") in ("file", "images") or not source.live


def open_session(cfg: SessionConfig) -> Session:
    """Open the source, build the stage (the model loads here), then the run writer and the
    publisher; on any failure what was opened is closed again and the error raised."""
    from .capture import PacedSource, open_source
    from .run_writer import RunWriter
    from .stages import build_stage, model_label

    source = open_source(cfg.source, camera=cfg.camera, live=True if cfg.live else None, reconnect=cfg.reconnect)
    if cfg.live and needs_pacing(source):
        source = PacedSource(source)
    session = Session(cfg, source)
    try:
        session.stage = build_stage(cfg.stage)
        if cfg.out:
            session.writer = RunWriter(cfg.out, source=cfg.source or source.name, source_kind=source.kind,
                                       model=model_label(cfg.stage), resolution=cfg.stage.resolution,
                                       mesh_format=cfg.mesh_format, mesh_frame=cfg.stage.mesh_frame,
                                       save_inputs=cfg.save_inputs)
        if cfg.publish:
            from ..transport.publisher import MeshPublisher

            session.publisher = MeshPublisher(cfg.publish, curve_keys=cfg.curve_keys)
            if cfg.wait_subscribers and not session.publisher.wait_for_subscribers(cfg.wait_subscribers, cfg.wait_timeout_s):
                raise UserInputError(f"--wait-subscribers: no {cfg.wait_subscribers} subscriber(s) within "
                                     f"{cfg.wait_timeout_s} s on {session.publisher.endpoint}")
    except BaseException:
        session.close()
        raise
    return session
