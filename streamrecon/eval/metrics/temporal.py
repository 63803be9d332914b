"""Temporal stability of a reconstructed video: how much the rendered mesh changes between
consecutive frames, next to how much the input (the person mask) changes. For a still subject the
input barely changes, so any change of the render is jitter."""
from __future__ import annotations

import numpy as np

from .silhouette import iou


def silhouette_change(prev, cur) -> float:
    """1 - IoU of two consecutive silhouettes ([H, W] bool): 0 = identical."""
    return 1.0 - iou(prev, cur)


def depth_change(prev_depth, cur_depth) -> float:
    """Median |depth change| over the pixels both depth maps ([H, W], NaN = background) cover; NaN
    when they share no pixel."""
    a, b = np.asarray(prev_depth, dtype=np.float64), np.asarray(cur_depth, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"prev_depth, cur_depth: shapes differ: {list(a.shape)} vs {list(b.shape)}")
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.median(np.abs(a[both] - b[both]))) if both.any() else float("nan")


def stability_summary(render_change, mask_change) -> dict:
    """Summary of per-step changes (sequences of floats, NaN = unknown): ``steps`` with a known
    render change and their mean ``render_change``; the mean ``mask_change`` where masks are known;
    ``jitter`` (and ``jitter_median``) = mean (median) render change beyond the mask change
    (clipped at 0 per step) over the steps where both are known. None when nothing is known."""
    r = np.asarray(render_change, dtype=np.float64)
    m = np.asarray(mask_change, dtype=np.float64)
    if r.shape != m.shape:
        raise ValueError(f"render_change, mask_change: lengths differ: {r.shape} vs {m.shape}")
    rk, mk = np.isfinite(r), np.isfinite(m)
    both = rk & mk
    return {
        "steps": int(rk.sum()),
        "render_change": float(r[rk].mean()) if rk.any() else None,
        "mask_change": float(m[mk].mean()) if mk.any() else None,
        "jitter": float(np.clip(r[both] - m[both], 0.0, None).mean()) if both.any() else None,
        # The median is not dominated by a few failing frames (a lost person changes twice).
        "jitter_median": float(np.median(np.clip(r[both] - m[both], 0.0, None))) if both.any() else None,
    }
