"""Octree query engine benchmark: octree vs dense queries/IoU and sparse marching cubes vs PyMCubes,
per resolution, on the analytic thin-limbed body (or another field). Writes one JSON file.

    .venv/bin/python benchmarks/bench_octree.py --resolutions 256 512 --out bench_octree.json

Each resolution runs in this process: octree warm-up + repeats (median/p95), the dense grid once
(IoU, PyMCubes on it, repeated) — so the marching-cubes ratio compares runs of the same session.
Reference figures of the original pipeline: ../shared/reference/octree_proxy_counts.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--field", default="body", choices=("body", "sphere", "torus", "fixture"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--init-resolution", type=int, default=None)
    ap.add_argument("--no-lossless", action="store_true")
    ap.add_argument("--modes", nargs="+", default=["exact"], choices=("exact", "fast", "lossy"),
                    help="octree modes per resolution: exact (default config), fast (exact_vertices off), "
                         "lossy (lossless off); the dense grid is evaluated once per resolution")
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench_octree.json")
    args = ap.parse_args()

    import torch

    from streamrecon.occupancy.compare import make_query_fn, query_benchmark
    from streamrecon.occupancy.config import OctreeConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    kw = {}
    if args.init_resolution:
        kw["init_resolution"] = args.init_resolution
    if args.no_lossless:
        kw["lossless"] = False
    mode_kw = {"exact": {}, "fast": {"exact_vertices": False}, "lossy": {"lossless": False}}
    query_fn = make_query_fn(args.field, str(Path(__file__).resolve().parents[2] / "shared"), args.device)
    runs = []
    for n in args.resolutions:
        cache: dict = {}
        for mode in args.modes:
            cfg = OctreeConfig(**{**kw, **mode_kw[mode]})
            t = time.perf_counter()
            res = query_benchmark(query_fn, n, cfg, repeats=args.repeats, dense=not args.no_dense,
                                  device=args.device, cache=cache,
                                  progress=lambda m: print(f"[{n} {mode}] {m}", file=sys.stderr, flush=True))
            res.update(field=args.field, mode=mode, wall_s=time.perf_counter() - t)
            runs.append(res)
            print(json.dumps({k: res.get(k) for k in ("resolution", "mode", "octree_points", "query_fraction",
                                                        "iou_vs_dense", "same_vertex_count", "mc_speedup_kernel",
                                                        "mc_speedup_total")}), flush=True)
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor(),
                       "threads": torch.get_num_threads()},
           "runs": runs}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
