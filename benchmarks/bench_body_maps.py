"""Body depth maps benchmark: ``streamrecon.body.maps.body_depth_maps`` (crop -> raster conversion,
the native kernel, the mask) and the kernel alone on raster input (its vector path and its
portable one-pixel loop), per map resolution, on one thread, for
- ``sphere``: a closed UV sphere of 13,862 vertices / 27,720 triangles (a fitted body's size),
  radius 0.8 crop units;
- ``body``: the body prior's rest mesh (``streamrecon.body.model.load_asset``, 13,348 vertices /
  26,692 triangles) standing in the crop, 1.8 crop units tall; skipped with a note when that
  module or its asset is missing.
JSON on stdout (and to --json).

    .venv/bin/python benchmarks/bench_body_maps.py --sizes 128 256 --json benchmarks/results/body_maps.json

Each case warms up, then times --repeats calls: median, p95, min (ms) and FPS at the median.
``--reference`` also times the numpy twin once per case (the ratio is from the same run).
"""
from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import emit  # noqa: E402


def cpu_model() -> dict:
    """lscpu's model name and family (the CPU the figures belong to)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model_name": platform.processor() or "unknown", "family": None}

    def field(name):
        found = re.search(rf"^{name}:\s*(.+)$", text, re.MULTILINE)
        return found[1] if found else None

    return {"model_name": field("Model name"), "family": field("CPU family"), "model": field("Model"),
            "cpus": field(r"CPU\(s\)")}


def body_in_crop():
    """The body prior's rest mesh in the crop frame: body x (the person's left) -> crop x, body z
    (up) -> crop y, body y (the person's back) -> crop z (away from the camera); centred, 1.8 crop
    units tall. Vertices float32 [V, 3], faces int32 [F, 3]."""
    from streamrecon.body.model import load_asset

    a = load_asset()
    v = a.vertices.astype(np.float64)[:, [0, 2, 1]]
    v -= 0.5 * (v.min(0) + v.max(0))
    v *= 1.8 / (v[:, 1].max() - v[:, 1].min())
    return v.astype(np.float32), a.faces.astype(np.int32)


def timed(fn, warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        fn()
    t = np.empty(repeats)
    for k in range(repeats):
        t0 = time.perf_counter()
        fn()
        t[k] = time.perf_counter() - t0
    t *= 1e3
    med = float(np.median(t))
    return {"median_ms": round(med, 4), "p95_ms": round(float(np.percentile(t, 95)), 4),
            "min_ms": round(float(t.min()), 4), "fps": round(1e3 / med, 1), "repeats": repeats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--meshes", nargs="+", default=["sphere", "body"], choices=("sphere", "body"))
    ap.add_argument("--n-lat", type=int, default=100, help="latitude bands (100 x 140: 13,862 vertices, 27,720 faces)")
    ap.add_argument("--n-lon", type=int, default=140)
    ap.add_argument("--radius", type=float, default=0.8, help="crop units (the crop spans [-1, 1])")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--reference", action="store_true", help="also time the numpy twin once per size")
    ap.add_argument("--json", default=None, help="also write the JSON here")
    args = ap.parse_args()

    from streamrecon.body.maps import body_depth_maps, body_depth_maps_reference, crop_to_raster
    from streamrecon.native import load_native
    from streamrecon.testing.shapes import uv_sphere

    nat = load_native()
    meshes = {}
    if "sphere" in args.meshes:
        v, f = uv_sphere(radius=args.radius, centre=(0.03, -0.05, 0.1), n_lat=args.n_lat, n_lon=args.n_lon)
        meshes["sphere"] = (v.astype(np.float32), f.astype(np.int32))
    if "body" in args.meshes:
        try:
            meshes["body"] = body_in_crop()
        except (ImportError, OSError) as exc:
            print(f"body mesh skipped: {exc}", file=sys.stderr)
    runs = []
    for name, (v, f) in meshes.items():
        for size in args.sizes:
            raster = crop_to_raster(v, size)
            mask = body_depth_maps(v, f, size)[2]
            cases = {"body_depth_maps": partial(body_depth_maps, v, f, size),
                     "kernel_only": partial(nat.depth_range_maps, raster, f, size, size),
                     "kernel_one_pixel_loop": partial(nat.depth_range_maps, raster, f, size, size, simd=False)}
            run = {"mesh": name, "vertices": len(v), "faces": len(f), "size": size, "covered_pixels": int(mask.sum())}
            run.update({k: timed(fn, args.warmup, args.repeats) for k, fn in cases.items()})
            if args.reference:
                t0 = time.perf_counter()
                body_depth_maps_reference(v, f, size)
                ref_ms = (time.perf_counter() - t0) * 1e3
                run["reference_ms"] = round(ref_ms, 1)
                run["speedup_vs_reference"] = round(ref_ms / run["body_depth_maps"]["median_ms"], 1)
            runs.append(run)
            print(f"[{name} {size}] body_depth_maps median {run['body_depth_maps']['median_ms']:.3f} ms", file=sys.stderr)
    emit({"benchmark": "body_depth_maps",
          "machine": {"cpu": cpu_model(), "python": platform.python_version(), "numpy": np.__version__,
                      "threads": 1},
          "runs": runs}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
