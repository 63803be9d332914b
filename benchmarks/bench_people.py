"""Benchmark of person finding on CPU: PeopleFinder.find per 640x480 frame with one person and
with two (a real photo and its mirror image), stages timed apart (detector, landmark model per
person), warm-up then median/p95/FPS, written as JSON.

    .venv/bin/python benchmarks/bench_people.py --frames 60 --threads 2 --json people.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def stats(ts):
    ts = np.asarray(ts) * 1e3
    return {"median_ms": round(float(np.median(ts)), 2), "p95_ms": round(float(np.percentile(ts, 95)), 2),
            "fps": round(float(1e3 / np.median(ts)), 1)}


def scenes():
    import cv2

    img = cv2.cvtColor(cv2.imread(str(MEDIA / "astronaut.png")), cv2.COLOR_BGR2RGB)
    one = cv2.copyMakeBorder(cv2.resize(img, (480, 480)), 0, 0, 80, 80, cv2.BORDER_REPLICATE)
    hop = cv2.cvtColor(cv2.imread(str(MEDIA / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    half = cv2.copyMakeBorder(cv2.resize(hop, (320, 375)), 105, 0, 0, 0, cv2.BORDER_REPLICATE)
    two = np.hstack([half, half[:, ::-1]])  # a photo and its mirror image side by side
    return {"640x480, 1 person": one, "640x480, 2 people": two}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from streamrecon.types import Frame
    from streamrecon.people import PeopleConfig, PeopleFinder

    rng = np.random.default_rng(0)
    results = {}
    for name, img in scenes().items():
        finder = PeopleFinder(PeopleConfig(num_threads=args.threads))
        det = finder.detector
        total, t_det, t_lmk, counts = [], [], [], []
        for i in range(args.warmup + args.frames):
            f = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
            t0 = time.perf_counter()
            people = finder.find(Frame(i, f, i / 30))
            t1 = time.perf_counter()
            if i >= args.warmup:
                total.append(t1 - t0)
                counts.append(len(people))
                if hasattr(det, "detect_rois"):
                    a = time.perf_counter()
                    rois = det.detect_rois(f)
                    b = time.perf_counter()
                    if rois:
                        det.landmarks(f, rois[0][0])
                        t_lmk.append(time.perf_counter() - b)
                    t_det.append(b - a)
        results[name] = {"find": stats(total), "people_per_frame": float(np.mean(counts)),
                         "detector": stats(t_det) if t_det else None, "landmarks_per_person": stats(t_lmk) if t_lmk else None}
        print(f"{name}: find {results[name]['find']}, people/frame {results[name]['people_per_frame']:.2f}, "
              f"detector {results[name]['detector']}, landmarks/person {results[name]['landmarks_per_person']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "results": results}, indent=2))


if __name__ == "__main__":
    main()
