"""Silhouette agreement between a rendered mesh and a person mask: IoU and the boundary F-score
(the contour accuracy of the DAVIS benchmark). Masks are [H, W] bool in the same pixels."""
from __future__ import annotations

import numpy as np


def _pair(pred, gt) -> tuple:
    a, b = np.asarray(pred), np.asarray(gt)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"pred, gt: expected two [H, W] masks of one shape, got {list(a.shape)} and {list(b.shape)}")
    return a.astype(bool), b.astype(bool)


def iou(pred, gt) -> float:
    """|pred & gt| / |pred | gt|; 1.0 when both are empty (they agree that nobody is there)."""
    a, b = _pair(pred, gt)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def boundary(mask) -> np.ndarray:
    """[H, W] bool: mask pixels with a 4-neighbour outside the mask (outside the picture counts as
    outside the mask, so a mask cut by the frame edge has a boundary there)."""
    m = np.asarray(mask, dtype=bool)
    p = np.pad(m, 1, constant_values=False)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~interior


def disk_offsets(radius: float) -> np.ndarray:
    """[K, 2] integer (dy, dx) offsets with dy^2 + dx^2 <= radius^2."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dy * dy + dx * dx <= radius * radius
    return np.stack([dy[keep], dx[keep]], axis=1)


def dilate(mask, radius: float) -> np.ndarray:
    """[H, W] bool: pixels within Euclidean distance ``radius`` of a pixel of ``mask``."""
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    r = int(np.floor(radius))
    p = np.pad(m, r, constant_values=False)
    out = np.zeros_like(m)
    for dy, dx in disk_offsets(radius):
        out |= p[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


def boundary_fscore(pred, gt, tolerance: float = 2.0) -> dict:
    """Boundary precision, recall and F-score: a boundary pixel of one mask counts as matched when a
    boundary pixel of the other lies within ``tolerance`` pixels (Euclidean). Returns
    {'precision', 'recall', 'f'}; all 1.0 when both masks are empty, 0.0 where one side is."""
    if tolerance < 0:
        raise ValueError(f"tolerance: expected >= 0 pixels, got {tolerance}")
    a, b = _pair(pred, gt)
    ba, bb = boundary(a), boundary(b)
    na, nb = np.count_nonzero(ba), np.count_nonzero(bb)
    if na == 0 and nb == 0:
        return {"precision": 1.0, "recall": 1.0, "f": 1.0}
    if na == 0 or nb == 0:
        return {"precision": 0.0, "recall": 0.0, "f": 0.0}
    precision = np.count_nonzero(ba & dilate(bb, tolerance)) / na
    recall = np.count_nonzero(bb & dilate(ba, tolerance)) / nb
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": float(precision), "recall": float(recall), "f": float(f)}


def boundary_fscore_reference(pred, gt, tolerance: float = 2.0) -> dict:
    """Slow twin of :func:`boundary_fscore`: all pairwise distances between boundary pixels."""
    a, b = _pair(pred, gt)
    pa, pb = np.argwhere(boundary(a)).astype(float), np.argwhere(boundary(b)).astype(float)
    if len(pa) == 0 and len(pb) == 0:
        return {"precision": 1.0, "recall": 1.0, "f": 1.0}
    if len(pa) == 0 or len(pb) == 0:
        return {"precision": 0.0, "recall": 0.0, "f": 0.0}
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    precision = float((d.min(axis=1) <= tolerance).mean())
    recall = float((d.min(axis=0) <= tolerance).mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f": f}


def default_tolerance(height: int, width: int) -> float:
    """The DAVIS boundary tolerance: 0.8% of the picture's diagonal, at least 1 pixel."""
    return max(1.0, float(np.ceil(0.008 * np.hypot(height, width))))
