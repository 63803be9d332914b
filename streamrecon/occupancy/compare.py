"""The query-engine benchmark behind ``streamrecon bench query`` and ``benchmarks/bench_octree.py``:
octree vs dense on one field, in one process, so ratios compare like with like.

Reports (``query_benchmark`` dict): ``dense_points``, ``octree_points``, ``query_fraction``,
``iou_vs_dense``, vertex counts (octree mesh via sparse MC, dense mesh via PyMCubes),
``octree_peak_rss_mib`` (RSS growth of the octree + sparse MC, measured before the dense grid
exists) and ``seconds``: median and p95 over ``repeats`` timed runs after one warm-up.
"""
from __future__ import annotations

import logging
import resource
import statistics
import time
from dataclasses import asdict
from typing import Callable, Optional

import numpy as np
import torch

from .dense import evaluate_dense
from .grid import volume_iou
from .octree import OctreeConfig, evaluate_octree

log = logging.getLogger(__name__)

BENCH_FIELDS = ("body", "sphere", "torus", "fixture")
FIXTURE_DIR = "fixtures/pifuhd_small"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stats(xs) -> dict:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return {"median": statistics.median(xs), "p95": p95, "runs": len(xs)}


def fixture_query_fn(shared_dir: str, device="cpu") -> Callable:
    """query_fn of the fixture PIFuHD model (``pifuhd_small``) on its own input (needs streamrecon.api)."""
    from pathlib import Path

    import cv2

    from ..api import load_model

    d = Path(shared_dir) / FIXTURE_DIR
    model = load_model(str(d / "pifuhd_small.pt"), device=device)
    bgr = cv2.imread(str(d / "input" / "person.png"), cv2.IMREAD_COLOR)
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rect = tuple(float(v) for v in (d / "input" / "person_rect.txt").read_text().split()[:4])
    feats = model.encode(image, rect, None)
    return lambda p: model.query(feats, p)


def make_query_fn(field: str, shared_dir: str = "../shared", device="cpu") -> Callable:
    from ..testing.fields import make_field

    if field not in BENCH_FIELDS:
        raise ValueError(f"field: expected one of {BENCH_FIELDS}, got {field!r}")
    if field == "fixture":
        return fixture_query_fn(shared_dir, device)
    return make_field(field)


def query_benchmark(query_fn: Callable, resolution: int, cfg: OctreeConfig = OctreeConfig(), repeats: int = 3,
                    dense: bool = True, device="cpu", progress: Optional[Callable[[str], None]] = None,
                    cache: Optional[dict] = None) -> dict:
    """Run the octree (warm-up + ``repeats`` timed runs), sparse MC on it, then (``dense``) the
    dense grid, PyMCubes on it and the IoU. See the module docstring for the keys. ``cache``: a
    dict reused across calls on the same field and resolution to evaluate the dense grid once."""
    from ..mesh import extract_mesh, marching_cubes_dense, marching_cubes_sparse

    say = progress or (lambda msg: None)
    n = resolution
    out: dict = {"resolution": n, "dense_points": n**3, "octree_config": asdict(cfg), "device": str(device),
                 "torch_threads": torch.get_num_threads()}
    secs: dict = {}
    rss0 = _rss_mib()
    say(f"octree {n}^3: warm-up")
    grid = evaluate_octree(query_fn, n, cfg, device=device)
    tot, qs, ov = [], [], []
    for r in range(repeats):
        say(f"octree {n}^3: run {r + 1}/{repeats}")
        t = time.perf_counter()
        grid = evaluate_octree(query_fn, n, cfg, device=device)
        tot.append(time.perf_counter() - t)
        qs.append(grid.stats.get("query_s", 0.0))
        ov.append(tot[-1] - qs[-1])
    secs["octree_total"], secs["octree_query"], secs["octree_overhead"] = _stats(tot), _stats(qs), _stats(ov)
    out["octree_points"] = grid.num_queries
    out["query_fraction"] = grid.num_queries / n**3
    out["levels"] = grid.stats.get("levels")

    say("sparse marching cubes")
    gather, kernel = [], []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        cells, vals = grid.surface_cells_and_values()
        c_np, v_np = cells.cpu().numpy(), vals.cpu().numpy()
        t1 = time.perf_counter()
        v_sp, f_sp = marching_cubes_sparse(c_np, v_np, (n, n, n), cfg.level)
        t2 = time.perf_counter()
        gather.append(t1 - t)
        kernel.append(t2 - t1)
    secs["mc_sparse_cells"], secs["mc_sparse_kernel"] = _stats(gather), _stats(kernel)
    secs["mc_sparse_total"] = _stats([a + b for a, b in zip(gather, kernel)])
    out["surface_cells"] = int(len(cells))
    out["vertices_octree"] = int(len(v_sp))
    out["faces_octree"] = int(len(f_sp))
    t = time.perf_counter()
    mesh = extract_mesh(grid)
    secs["extract_mesh"] = time.perf_counter() - t
    out["octree_peak_rss_mib"] = _rss_mib() - rss0
    del mesh

    if dense:
        cache = {} if cache is None else cache
        if cache.get("key") != (n, str(device)):
            say(f"dense {n}^3 ({n**3:,} queries)")
            t = time.perf_counter()
            cache.update(key=(n, str(device)), grid=evaluate_dense(query_fn, n, device=device))
            cache["dense_total"] = time.perf_counter() - t
            values = cache["grid"].to_dense()
            say("PyMCubes on the dense grid")
            pm = []
            for _ in range(max(1, repeats)):
                t = time.perf_counter()
                cache["mc"] = marching_cubes_dense(values, cfg.level)
                pm.append(time.perf_counter() - t)
            cache["mc_pymcubes"] = _stats(pm)
            del values
        dgrid = cache["grid"]
        secs["dense_total"], secs["mc_pymcubes"] = cache["dense_total"], cache["mc_pymcubes"]
        v_d, f_d = cache["mc"]
        out["iou_vs_dense"] = volume_iou(dgrid, grid)
        out["vertices_dense"] = int(len(v_d))
        out["faces_dense"] = int(len(f_d))
        out["same_vertex_count"] = len(v_d) == len(v_sp)
        if len(v_d) == len(v_sp):
            a = v_d[np.lexsort(v_d.T[::-1])]
            b = v_sp[np.lexsort(v_sp.T[::-1])]
            out["max_vertex_diff_voxels"] = float(np.abs(a - b).max(initial=0.0))
        out["mc_speedup_kernel"] = secs["mc_pymcubes"]["median"] / max(secs["mc_sparse_kernel"]["median"], 1e-12)
        out["mc_speedup_total"] = secs["mc_pymcubes"]["median"] / max(secs["mc_sparse_total"]["median"], 1e-12)
    out["seconds"] = secs
    return out
