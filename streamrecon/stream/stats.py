"""Run statistics: per-stage seconds per frame, end-to-end latency (capture -> stage done), drops.
Pure bookkeeping; owned by the consumer thread (the supervisor's caller). ``summary`` is the
manifest's ``summary`` object (docs/run_dir.md); ``format_summary`` is the table the CLI prints."""
from __future__ import annotations

import time
from array import array
from typing import Dict, List, Optional

import numpy as np


def percentile(values: List[float], q: float) -> float:
    """q-th percentile (linear interpolation) of ``values``; 0.0 when empty."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


class RunStats:
    """Accumulates one run. ``add(result, done_time)``: a ``FrameResult`` handed to the sinks;
    latency = ``done_time`` (default: now, monotonic) - the frame's capture timestamp, so it
    includes queueing, reconstruction and output writing."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        # array('d'): 8 bytes a value instead of a 32-byte float object (long runs stay flat)
        self.latencies = array("d")
        self.stage_s: Dict[str, array] = {}
        self.frames_done = 0
        self.meshes = 0

    def add(self, result, done_time: Optional[float] = None, extra: Optional[Dict[str, float]] = None) -> float:
        done = time.monotonic() if done_time is None else done_time
        latency = done - result.frame.timestamp
        self.latencies.append(latency)
        self.frames_done += 1
        self.meshes += len(result.persons)
        for k, v in {**result.timings, **(extra or {})}.items():
            self.stage_s.setdefault(k[:-2] if k.endswith("_s") else k, array("d")).append(float(v))
        return latency

    def summary(self, frames_in: int, dropped: int, wall_s: Optional[float] = None) -> dict:
        wall = (time.monotonic() - self.start) if wall_s is None else wall_s
        return {
            "frames_in": int(frames_in),
            "frames_done": self.frames_done,
            "dropped": int(dropped),
            "meshes": self.meshes,
            "latency_s": {"p50": percentile(self.latencies, 50), "p95": percentile(self.latencies, 95)},
            "stage_s": {k: {"mean": float(np.mean(v)), "p95": percentile(v, 95)} for k, v in self.stage_s.items()},
            "fps": self.frames_done / wall if wall > 0 else 0.0,
            "wall_s": wall,
        }


def format_summary(s: dict) -> str:
    """A small text table of ``RunStats.summary``."""
    lines = [
        f"frames: {s['frames_in']} in, {s['frames_done']} done, {s['dropped']} dropped; "
        f"{s['meshes']} meshes; {s['fps']:.2f} fps over {s['wall_s']:.1f} s"
        + (f"; {s['skipped']} undecodable frames skipped" if s.get("skipped") else ""),
        f"latency (capture -> written): p50 {s['latency_s']['p50'] * 1e3:.1f} ms, p95 {s['latency_s']['p95'] * 1e3:.1f} ms",
        f"{'stage':<12} {'mean ms':>10} {'p95 ms':>10}",
    ]
    for k, v in s["stage_s"].items():
        lines.append(f"{k:<12} {v['mean'] * 1e3:>10.2f} {v['p95'] * 1e3:>10.2f}")
    return "\n".join(lines)
