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
from ..transport.publisher import DRAIN_S
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
    ``on_result(result, latency_s)``. The summary goes into the manifest in every case (with
    ``error`` when the run failed). Setting ``stop_event`` (any thread) ends the session
    gracefully. With ``graceful_sigint`` (the CLI, on the main thread) the first Ctrl-C sets the
    stop event instead of raising: results already finished are still written, the summary
    matches the files, and the run ends within the pipeline's join timeout even if a frame is
    mid-reconstruction; a second Ctrl-C raises.

    Frames a resumed writer already holds (``writer.done``) are not reconstructed again; they
    still pass through the people step (a split stage's first) so tracking goes on exactly as in
    an uninterrupted run. A writer that cannot write (``OutputError``: disk full, ...) stops the
    run; the manifest then lists every frame written before, and the error says so."""
    import signal
    import threading

    from ..errors import OutputError, StreamreconError

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
    split = hasattr(stage, "stages")
    stages = stage.stages() if split else [("recon", stage)]
    done = getattr(writer, "done", None) or None
    pipeline = Pipeline(source, stages, pipe_cfg, stop_event=stop_event, skip=done, replay_skipped=split)
    interrupted = False
    failure: Optional[BaseException] = None
    write_failure: Optional[OutputError] = None
    t0 = time.monotonic()
    try:
        for result in pipeline:
            extra = {}
            if writer is not None:
                t = time.perf_counter()
                try:
                    writer.write(result)
                except OutputError as exc:
                    write_failure = exc
                    raise
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
    except BaseException as exc:
        failure = exc
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        interrupted = interrupted or sigint["hit"]
        pipeline.stop()
        summary = stats.summary(pipeline.frames_in, pipeline.dropped, time.monotonic() - t0)
        summary["skipped"] = int(getattr(source, "skipped", 0) or 0)  # undecodable frames of the source
        if done:
            summary["resumed"] = len(done)  # frames kept from the run this one resumed
        if failure is not None:
            summary["error"] = str(failure) if isinstance(failure, StreamreconError) else f"{type(failure).__name__}: {failure}"
        if publisher is not None:
            summary["published"] = publisher.sent
            publisher.end(pipeline.frames_in)
        if writer is not None:
            skipped = list(getattr(source, "skipped_entries", None) or ())
            if skipped:  # what was wrong with each input the source skipped (the first ones)
                writer.manifest["skipped_inputs"] = [{**e, "reason": str(e.get("reason", ""))[:200]}
                                                     for e in skipped[:MAX_SKIPPED_LISTED]]
            try:
                writer.finish(summary)
            except StreamreconError as exc:
                if failure is None:
                    raise
                # the run's own error is the one to report; this one only qualifies it
                finish_error = exc
            else:
                finish_error = None
            if write_failure is not None:
                listed = (f"the {len(writer.manifest['frames'])} frame(s) written before are listed in "
                          f"{writer.root / 'manifest.json'}" if finish_error is None else
                          f"{writer.root / 'manifest.json'} lists the frames up to its last rewrite ({finish_error})")
                raise OutputError(f"{write_failure}; the run stopped there: {listed}",
                                  errno=write_failure.errno, path=write_failure.path) from write_failure
    return SessionResult(summary, interrupted)


MAX_SKIPPED_LISTED = 50
"""skipped inputs listed by name in the manifest (all are counted in ``summary.skipped``)"""


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
    save_body: bool = False
    """also write each person's fitted body as a mesh (``bodies/``) beside the clothed one"""
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
    drain_timeout_s: float = DRAIN_S
    """at the end, seconds the publisher waits for slow subscribers to take the meshes queued for them
    and the end of stream (what is left then is dropped and counted)"""
    overwrite: bool = False
    """when --out holds a run: delete what it wrote there (meshes, frames, masks, manifest.json; nothing
    else) and start again"""
    resume: bool = False
    """when --out holds a run that was stopped (killed, Ctrl-C, disk full): keep the frames its manifest
    lists and make only the others (a video file, image folder or synthetic source, with the same settings)"""

    def __post_init__(self) -> None:
        if (self.source is None) == (self.camera is None):
            raise UserInputError("pass either a SOURCE (video file, stream URL, image folder, synthetic:...) or --camera N")
        if self.wait_subscribers and not self.publish:
            raise UserInputError("--wait-subscribers needs --publish")
        if self.curve_keys and not self.publish:
            raise UserInputError("--curve-keys needs --publish")
        if self.save_body and not self.out:
            raise UserInputError("--save-body writes into the run directory: give --out DIR")
        if self.save_body and not self.stage.body:
            raise UserInputError("--save-body needs the bodies that --no-body turns off: drop one of the two")
        if not _is_int(self.wait_subscribers) or not 0 <= self.wait_subscribers <= MAX_WAIT_SUBSCRIBERS:
            raise UserInputError(f"--wait-subscribers: expected a count in [0, {MAX_WAIT_SUBSCRIBERS}], got {self.wait_subscribers!r}")
        if not _is_seconds(self.wait_timeout_s):
            raise UserInputError(f"--wait-timeout: expected seconds > 0 (at most {MAX_SECONDS:g}), got {self.wait_timeout_s!r}")
        if self.duration_s is not None and not _is_seconds(self.duration_s):
            raise UserInputError(f"--duration: expected seconds > 0 (at most {MAX_SECONDS:g}), got {self.duration_s}")
        if not (isinstance(self.drain_timeout_s, (int, float)) and not isinstance(self.drain_timeout_s, bool)
                and 0 <= self.drain_timeout_s <= MAX_SECONDS):
            raise UserInputError(f"--drain-timeout: expected seconds >= 0 (at most {MAX_SECONDS:g}), got {self.drain_timeout_s!r}")
        if self.overwrite and self.resume:
            raise UserInputError("--overwrite and --resume exclude each other: start the run again, or finish it")
        if (self.overwrite or self.resume) and not self.out:
            raise UserInputError(f"--{'overwrite' if self.overwrite else 'resume'} needs --out")
        if self.resume and (self.live or self.camera is not None):
            raise UserInputError("--resume continues a file run; a live or camera session cannot be resumed")

    @property
    def out_mode(self) -> str:
        """The run writer's mode for ``out``: new, overwrite or resume."""
        return "overwrite" if self.overwrite else "resume" if self.resume else "new"


MAX_WAIT_SUBSCRIBERS = 10_000
MAX_SECONDS = 10.0 ** 7
"""longest wait or duration accepted (115 days; ``threading`` refuses much larger timeouts)"""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_seconds(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v <= MAX_SECONDS


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
            if self.writer is not None:
                self.writer.discard()  # a start-up that wrote nothing leaves no run folder behind
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
    """Open the source, build the stage (the model loads here), then the publisher (bound, and its
    subscribers waited for) and last the run writer, so that a failed start-up leaves no run
    folder; on any failure what was opened is closed again and the error raised. ``--out`` is
    checked first of all (a non-empty folder without --overwrite/--resume, a read-only disk)."""
    from .capture import PacedSource, open_source
    from .run_writer import RunWriter, check_run_dir
    from .stages import build_stage, model_label

    if cfg.out:
        check_run_dir(cfg.out, cfg.out_mode)
    source = open_source(cfg.source, camera=cfg.camera, live=True if cfg.live else None, reconnect=cfg.reconnect)
    if cfg.live and needs_pacing(source):
        source = PacedSource(source)
    session = Session(cfg, source)
    try:
        if cfg.resume and source.live:
            raise UserInputError(f"--resume: {source.name} is a live source; only a file, an image folder or a "
                                 "synthetic source can be resumed")
        session.stage = build_stage(cfg.stage)
        if cfg.publish:
            from ..transport.publisher import MeshPublisher

            session.publisher = MeshPublisher(cfg.publish, curve_keys=cfg.curve_keys, drain_s=cfg.drain_timeout_s)
            if cfg.wait_subscribers and not session.publisher.wait_for_subscribers(cfg.wait_subscribers, cfg.wait_timeout_s):
                raise UserInputError(f"--wait-subscribers: no {cfg.wait_subscribers} subscriber(s) within "
                                     f"{cfg.wait_timeout_s} s on {session.publisher.endpoint}")
        if cfg.out:
            session.writer = RunWriter(cfg.out, source=cfg.source or source.name, source_kind=source.kind,
                                       model=model_label(cfg.stage), resolution=cfg.stage.resolution,
                                       mesh_format=cfg.mesh_format, mesh_frame=cfg.stage.mesh_frame,
                                       save_inputs=cfg.save_inputs, mode=cfg.out_mode,
                                       save_body=cfg.save_body)
    except BaseException:
        session.close()
        raise
    return session
