"""Dense reference evaluator: ask ``query_fn`` about every grid point, in chunks.

This is the slow twin of the octree (``octree.py``): N^3 queries, float32 grid of 4 N^3 bytes
(0.5 GiB at N = 512), never float64. Points follow ``grid.grid_points``.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import torch

from .config import DenseConfig
from .grid import DenseOccupancy, check_resolution, grid_points

log = logging.getLogger(__name__)

QueryFn = Callable[[torch.Tensor], torch.Tensor]


def call_query(query_fn: QueryFn, points: torch.Tensor) -> torch.Tensor:
    """One query_fn call with its result checked: float32 [M] on the points' device."""
    out = query_fn(points)
    if not isinstance(out, torch.Tensor) or out.shape != (len(points),):
        desc = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"query_fn: expected a tensor [{len(points)}] of occupancies, got {desc}")
    return out.to(device=points.device, dtype=torch.float32)


def evaluate_dense(
    query_fn: QueryFn,
    resolution: int,
    cfg: DenseConfig = DenseConfig(),
    device: str | torch.device = "cpu",
    progress: Optional[Callable[[int, int], None]] = None,
) -> DenseOccupancy:
    """Evaluate ``query_fn`` at all N^3 grid points. Returns a ``DenseOccupancy`` on ``device``."""
    n = check_resolution(resolution)
    if cfg.batch_points < 1:
        raise ValueError(f"batch_points: expected >= 1, got {cfg.batch_points}")
    device = torch.device(device)
    values = torch.empty((n, n, n), dtype=torch.float32, device=device)
    flat = values.view(-1)
    total = n**3
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, total, cfg.batch_points):
            e = min(total, s + cfg.batch_points)
            lin = torch.arange(s, e, device=device, dtype=torch.int64)
            ijk = torch.stack((lin // (n * n), (lin // n) % n, lin % n), dim=1)
            flat[s:e] = call_query(query_fn, grid_points(ijk, n))
            if progress is not None:
                progress(e, total)
    dt = time.perf_counter() - t0
    log.debug("dense grid %d^3: %d queries in %.2f s", n, total, dt)
    return DenseOccupancy(values, level=cfg.level, num_queries=total, stats={"query_s": dt})
