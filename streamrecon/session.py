"""One streaming session: source -> pipeline (capture thread, people thread, reconstruction
thread) -> sinks on
the caller's thread (run directory, ZeroMQ publisher), with statistics. Shared by ``run`` and
``live``; the commands own the terminal (progress bar, summary) through ``on_result``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .capture import Source
from .pipeline import Pipeline, PipelineConfig
from .runstats import RunStats

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
