"""Speed of the embedded model on the CPU real-time path: encode, queries, and a whole
reconstruction (octree + marching cubes) at resolution 128 and 256 on a held-out-like silhouette.

    python benchmarks/bench_embedded.py [--threads 2] [--repeats 10] [--json out.json]

Reports median and p95 per stage and frames per second of encode + octree + marching cubes
(the reconstruction stage of ``streamrecon run``; capture/detection/publishing not included).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def stats(ts):
    a = np.asarray(ts) * 1000
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95))}


def person_mask(h=480, w=640):
    """A standing person's silhouette drawn with ellipses (no data needed)."""
    import cv2

    m = np.zeros((h, w), np.uint8)
    cx = w // 2
    cv2.ellipse(m, (cx, 80), (26, 34), 0, 0, 360, 1, -1)          # head
    cv2.ellipse(m, (cx, 200), (60, 95), 0, 0, 360, 1, -1)         # torso
    for s in (-1, 1):
        cv2.line(m, (cx + s * 50, 130), (cx + s * 95, 270), 1, 22)  # arms
        cv2.line(m, (cx + s * 25, 280), (cx + s * 40, 450), 1, 30)  # legs
    return m.astype(bool)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from streamrecon.training.evaluate import marching_cubes
    from streamrecon.models.embedded.model import load_default, load_embedded
    from streamrecon.occupancy import evaluate_octree

    model = load_embedded(a.checkpoint) if a.checkpoint else load_default()
    img = np.zeros((480, 640, 3), np.uint8)
    mask = person_mask()
    rect = (320 - 240, 0, 480, 480)
    out = {"threads": a.threads, "torch": torch.__version__}
    for _ in range(2):
        f = model.encode(img, rect, mask)
    ts = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        f = model.encode(img, rect, mask)
        ts.append(time.perf_counter() - t)
    out["encode"] = stats(ts)
    pts = torch.rand(100000, 3) * 2 - 1
    model.query(f, pts)
    ts = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        model.query(f, pts)
        ts.append(time.perf_counter() - t)
    out["query_100k"] = stats(ts)
    for res in (128, 256):
        ts, nq = [], 0
        for k in range(a.repeats + 2):
            t = time.perf_counter()
            f = model.encode(img, rect, mask)
            grid = evaluate_octree(lambda p: model.query(f, p), res)
            v, fc = marching_cubes(grid.to_dense(), res)
            if k >= 2:  # two warm-up frames per resolution
                ts.append(time.perf_counter() - t)
            nq = grid.num_queries
        s = stats(ts)
        s["fps"] = 1000.0 / s["median_ms"]
        s["queries"] = int(nq)
        s["faces"] = int(len(fc))
        out[f"frame_res{res}"] = s
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
