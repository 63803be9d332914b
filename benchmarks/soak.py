"""Soak test: many frames of the synthetic source through the full streaming pipeline (capture
thread -> reconstruction thread -> run directory + ZeroMQ publisher), with a subscriber that keeps
disconnecting and reconnecting. Checks that memory and thread count stay flat and that lossless
mode (a file-like source, policy ``block``) loses no frame; reports what the subscriber got.

    .venv/bin/python benchmarks/soak.py --frames 10000 --json soak.json

Output (JSON, also printed): frames in/done/written, missing indices, RSS (MiB) at start (after
``--warmup`` frames), end and max with the samples, thread counts, the subscriber's received /
missed (gaps in ``seq`` while connected) / not received (published while it was away or lost) and
its reconnects, wall time and fps. Exit code 1 when a frame was lost or memory/threads grew beyond
the tolerances (``--max-rss-growth-mib``).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from _results import emit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def proc_status() -> dict:
    """VmRSS (MiB) and Threads of this process from /proc/self/status."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlakySubscriber(threading.Thread):
    """Subscribes, stays for ``stay_s``, disconnects for ``away_s``, reconnects; until ``stop``.
    Owns its sockets (one at a time) on its own thread."""

    def __init__(self, address: str, stay_s: float, away_s: float) -> None:
        super().__init__(name="soak-subscriber", daemon=True)
        self.address, self.stay_s, self.away_s = address, stay_s, away_s
        self.stop = threading.Event()
        self.received = self.missed = self.rejected = self.connects = 0
        self.seqs_seen = 0

    def run(self) -> None:
        from streamrecon.transport.subscriber import MeshSubscriber

        while not self.stop.is_set():
            sub = MeshSubscriber(self.address)
            self.connects += 1
            t_end = time.monotonic() + self.stay_s
            try:
                while time.monotonic() < t_end and not self.stop.is_set():
                    msg = sub.recv(timeout=0.1)
                    if msg is not None and msg.header.is_end:
                        self.stop.set()
            finally:
                self.received += sub.received
                self.missed += sub.missed
                self.rejected += sub.rejected
                sub.close()
            self.stop.wait(self.away_s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--size", default="64x48", help="synthetic frame WxH")
    ap.add_argument("--resolution", type=int, default=16, help="sphere tessellation / grid (small: the pipeline is under test)")
    ap.add_argument("--out", default=None, help="run directory (default: a temp folder, removed)")
    ap.add_argument("--json", default=None, help="write the result here")
    ap.add_argument("--warmup", type=int, default=200, help="frames before the 'start' RSS sample")
    ap.add_argument("--sample-every", type=int, default=500)
    ap.add_argument("--stay-s", type=float, default=2.0, help="subscriber: seconds connected")
    ap.add_argument("--away-s", type=float, default=0.5, help="subscriber: seconds disconnected")
    ap.add_argument("--max-rss-growth-mib", type=float, default=16.0,
                    help="allowed RSS growth start -> end (the manifest index is held in memory: ~0.5 KB a frame)")
    a = ap.parse_args(argv)
    if a.frames <= a.warmup:
        ap.error(f"--frames ({a.frames}) must exceed --warmup ({a.warmup}): RSS growth is measured after the warm-up")

    from streamrecon.testing.sources import SyntheticSource
    from streamrecon.stream.pipeline import PipelineConfig
    from streamrecon.transport.publisher import MeshPublisher
    from streamrecon.stream.stages import StageConfig, build_stage
    from streamrecon.stream.run_writer import RunWriter
    from streamrecon.stream.session import run_session

    w, h = (int(v) for v in a.size.lower().split("x"))
    tmp = None
    out = a.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="soak-")
        out = tmp.name
    addr = f"tcp://127.0.0.1:{free_port()}"
    source = SyntheticSource(frames=a.frames, size=(w, h))
    stage = build_stage(StageConfig(model="synthetic", resolution=a.resolution))
    writer = RunWriter(out, source=source.name, source_kind=source.kind, model="synthetic",
                       resolution=a.resolution, mesh_frame="image")
    publisher = MeshPublisher(addr)
    sub = FlakySubscriber(addr, a.stay_s, a.away_s)
    sub.start()
    publisher.wait_for_subscribers(1, 10.0)
    base = proc_status()
    samples = []
    t0 = time.monotonic()

    def on_result(result, latency):
        i = result.frame.index
        if i == a.warmup or (i % a.sample_every == 0 and i):  # not the last frames: capture has ended
            samples.append({"frame": i, "t_s": round(time.monotonic() - t0, 1), **proc_status(),
                            "subscriber_connects": sub.connects})

    try:
        res = run_session(source, stage, PipelineConfig(policy="block"), writer=writer, publisher=publisher,
                          on_result=on_result)
    finally:
        time.sleep(0.3)
        sub.stop.set()
        sub.join(5.0)
        publisher.close()
    wall = time.monotonic() - t0
    after = proc_status()

    m = json.loads((Path(out) / "manifest.json").read_text())
    indices = [f["index"] for f in m["frames"]]
    missing_files = [p["file"] for f in m["frames"] for p in f["persons"] if not (Path(out) / p["file"]).is_file()]
    on_disk = len(os.listdir(Path(out) / "meshes"))
    start = next((s for s in samples if s["frame"] >= a.warmup), samples[0] if samples else after)
    end = samples[-1] if samples else after
    published = res.summary.get("published", 0)
    result = {
        "frames": a.frames, "size": [w, h], "resolution": a.resolution,
        "frames_in": res.summary["frames_in"], "frames_done": res.summary["frames_done"],
        "dropped": res.summary["dropped"], "meshes_in_manifest": len(indices), "mesh_files_on_disk": on_disk,
        "missing_indices": sorted(set(range(a.frames)) - set(indices))[:20],
        "lost_frames": a.frames - len(set(indices)), "manifest_files_missing": len(missing_files),
        "manifest_writes": writer.manifest_writes,
        "rss_mib": {"before_pipeline": round(base["rss_mib"], 1), "start": round(start["rss_mib"], 1),
                    "end": round(end["rss_mib"], 1), "max": round(max(s["rss_mib"] for s in samples), 1) if samples else None,
                    "start_frame": start["frame"]},
        "threads": {"before_pipeline": base["threads"], "during_min": min(s["threads"] for s in samples) if samples else None,
                    "during_max": max(s["threads"] for s in samples) if samples else None, "after": after["threads"]},
        "subscriber": {"published": published, "received": sub.received, "missed_while_connected": sub.missed,
                       "not_received": published - sub.received, "rejected": sub.rejected, "connects": sub.connects},
        "wall_s": round(wall, 1), "fps": round(res.summary["frames_done"] / wall, 1),
        "latency_ms": {k: round(v * 1e3, 1) for k, v in res.summary["latency_s"].items()},
        "samples": samples,
    }
    growth = result["rss_mib"]["end"] - result["rss_mib"]["start"]
    span = max(end["frame"] - start["frame"], 1)
    result["rss_mib"]["growth_kib_per_frame"] = round(growth * 1024 / span, 3)
    ok = (result["lost_frames"] == 0 and result["manifest_files_missing"] == 0 and on_disk == a.frames
          and growth <= a.max_rss_growth_mib
          and result["threads"]["during_max"] == result["threads"]["during_min"])
    result["ok"] = bool(ok)
    emit(result, a.json)
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
