"""One streaming session: source -> pipeline (capture thread, reconstruction thread) -> sinks on
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
) -> SessionResult:
    """Run until the source ends (or ``pipe_cfg.max_frames``), Ctrl-C, or a stage fails (its error
    is re-raised after shutdown). Each ``FrameResult`` is written, then published, then handed to
    ``on_result(result, latency_s)``. The summary goes into the manifest in every case. Setting
    ``stop_event`` (any thread) ends the session gracefully."""
    stats = stats or RunStats()
    pipeline = Pipeline(source, [("recon", stage)], pipe_cfg, stop_event=stop_event)
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
        pipeline.stop()
        summary = stats.summary(pipeline.frames_in, pipeline.dropped, time.monotonic() - t0)
        if publisher is not None:
            summary["published"] = publisher.sent
            publisher.end(pipeline.frames_in)
        if writer is not None:
            writer.finish(summary)
    return SessionResult(summary, interrupted)
