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
    """Summary of per-step changes (sequences of floats, NaN ignored): mean render silhouette
    change, mean mask change, and their excess (render change beyond what the input explains,
    clipped at 0 per step: jitter). Values are None when there are no steps."""
    r = np.asarray(render_change, dtype=np.float64)
    m = np.asarray(mask_change, dtype=np.float64)
    if r.shape != m.shape:
        raise ValueError(f"render_change, mask_change: lengths differ: {r.shape} vs {m.shape}")
    ok = np.isfinite(r) & np.isfinite(m)
    if not ok.any():
        return {"steps": 0, "render_change": None, "mask_change": None, "jitter": None}
    return {
        "steps": int(ok.sum()),
        "render_change": float(r[ok].mean()),
        "mask_change": float(m[ok].mean()),
        "jitter": float(np.clip(r[ok] - m[ok], 0.0, None).mean()),
    }
