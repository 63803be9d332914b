"""End-to-end ``streamrecon run`` throughput on a 640x480 video (the issue's measure): every stage
of the product (decode, people, network, meshing, writing OBJ + mask + frame JPEG), as a user runs
it. Script, not a test.

    .venv/bin/python benchmarks/bench_run.py --resolution 128 256 --json benchmarks/results/run_embedded_cpu_MACHINE.json

The clip is ``../shared/media/carphone_pristine.mp4`` (176x144, 120 frames, head and shoulders)
upscaled to 640x480 with bicubic interpolation and re-encoded (H.264), made once in a temp folder.
Each resolution runs the CLI in a child process (a fresh process, as a user would; the first
frames include warm-up). Reports the run's own summary (fps over the whole run, per-stage means,
capture-to-written latency) plus the process's user/system CPU seconds and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import emit

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "media" / "carphone_pristine.mp4"


def make_clip(dst: Path, size=(640, 480)) -> Path:
    """``CLIP`` resized to ``size`` (bicubic), H.264, same frame count and rate."""
    import av
    import cv2

    with av.open(str(CLIP)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for f in inp.decode(video=0):
            img = cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_CUBIC)
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return dst


def run_once(video: Path, out_dir: Path, resolution: int, extra: list) -> dict:
    cmd = [str(Path(sys.executable).with_name("streamrecon")), "run", str(video), "--out", str(out_dir),
           "--resolution", str(resolution), "--no-progress", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads((out_dir / "manifest.json").read_text())["summary"]
    n = max(1, summary["frames_done"])
    return {
        "fps": summary["fps"], "frames": summary["frames_done"], "dropped": summary["dropped"],
        "latency_s": summary["latency_s"],
        "stage_mean_ms": {k: 1000.0 * v["mean"] for k, v in summary["stage_s"].items()},
        "process_wall_s": wall,
        "cpu_ms_per_frame": {"user": 1000.0 * (after.ru_utime - before.ru_utime) / n,
                             "system": 1000.0 * (after.ru_stime - before.ru_stime) / n},
        "peak_rss_MiB": after.ru_maxrss / 1024.0,
        "command": " ".join(cmd[1:]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("extra", nargs="*", help="more flags for streamrecon run (after --)")
    args = ap.parse_args()
    res = {"machine": {"platform": platform.platform(), "cores": __import__("os").cpu_count()},
           "input": "carphone_pristine.mp4 upscaled to 640x480 (120 frames)", "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        video = make_clip(Path(tmp) / "clip640.mp4")
        for r in args.resolution:
            res["runs"][str(r)] = out = run_once(video, Path(tmp) / f"run{r}", r, args.extra)
            print(f"resolution {r}: {out['fps']:.2f} fps, latency p50 {out['latency_s']['p50']:.2f} s, "
                  f"CPU {out['cpu_ms_per_frame']['user'] + out['cpu_ms_per_frame']['system']:.0f} ms/frame",
                  file=sys.stderr)
    emit(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
