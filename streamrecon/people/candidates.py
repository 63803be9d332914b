"""``Candidate``: one person as a detector backend reports it, before crop rule, tracking and
smoothing. All coordinates are frame pixels (x right, y down, origin top-left)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Candidate:
    """``box``: (x0, y0, x1, y1) body box in frame pixels; ``keypoints``: [K, 3] (x, y, conf) in
    frame pixels or None; ``mask``: [H, W] bool person mask in frame pixels or None;
    ``layout``: keypoint layout name ("blazepose33") or None; ``world``: [33, 3] BlazePose world
    landmarks (metres, hips at the origin, x right, y down, z away from the camera) or None."""

    box: tuple
    score: float
    keypoints: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    layout: Optional[str] = None
    meta: dict = field(default_factory=dict)
    world: Optional[np.ndarray] = None


def box_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0


def rect_to_box(rect) -> tuple:
    x, y, w, h = rect
    return (x, y, x + w, y + h)
