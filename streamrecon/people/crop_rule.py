"""PIFuHD crop rectangles: square, whole body with margin, in frame pixels (may leave the image;
the network input is zero-padded there).

The reference (``facebookresearch/pifuhd``, OpenPose BODY_25 'fullbody' rule) is adapted to
BlazePose's 33 landmarks:

* ``feet``: some ankle/heel/toe is confident -> centre = centre of the box around all confident
  keypoints, half side r = margin x max(box w, box h) (margin 0.65 as in the reference).
* ``mid-hip``: no foot visible but both hips are -> centre = mid-hip, r = 1.45 x the largest
  distance from mid-hip to a confident keypoint, centre y += 0.05 r (the reference's rule for
  partly visible bodies; the crop runs past the bottom edge of the image).
* ``visible``: hips not visible either (head-and-shoulders video) -> the reference has no rule
  (OpenPose reports the missing mid-hip at (0, 0)); we frame what is visible: the box around
  the confident keypoints and the person mask, r = 0.6 x its larger side.
* ``box``: no keypoints (HOG / full-frame detectors) -> the same 'visible' framing of the box.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

# BlazePose 33 landmark indices
BLAZEPOSE_FEET = (27, 28, 29, 30, 31, 32)  # ankles, heels, foot index (toes)
BLAZEPOSE_HIPS = (23, 24)
BOX_MARGIN = 0.6


def square_from_center(cx: float, cy: float, r: float) -> Tuple[float, float, float, float]:
    """(x, y, w, h) of the square of half side ``r`` centred at (cx, cy)."""
    return (cx - r, cy - r, 2.0 * r, 2.0 * r)


def rect_from_box(box, margin: float = BOX_MARGIN) -> Tuple[float, float, float, float]:
    """Square around an (x0, y0, x1, y1) box: same centre, half side = margin x larger side."""
    x0, y0, x1, y1 = (float(v) for v in box)
    r = max(margin * max(x1 - x0, y1 - y0), 1.0)
    return square_from_center((x0 + x1) / 2, (y0 + y1) / 2, r)


def crop_rect_from_keypoints(keypoints: np.ndarray, threshold: float = 0.2, margin: float = 0.65,
                             visible_box: Optional[tuple] = None, image_size: Optional[tuple] = None,
                             feet=BLAZEPOSE_FEET, hips=BLAZEPOSE_HIPS) -> Tuple[tuple, str]:
    """Crop rect (x, y, w, h) and the name of the rule used, from [K, 3] (x, y, conf) keypoints
    in frame pixels. ``visible_box``: (x0, y0, x1, y1) of the person mask, used (with the
    confident keypoints) by the 'visible' fallback. ``image_size`` (width, height): keypoints
    outside the image do not count as visible, except the hips for the mid-hip rule (BlazePose
    places hips just below the bottom edge of waist-up photos; dropping them there would make the
    rule flip from frame to frame)."""
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.ndim != 2 or kps.shape[1] != 3:
        raise ValueError(f"keypoints: expected [K, 3] (x, y, conf), got {list(kps.shape)}")
    hip_conf = kps[[i for i in hips if i < len(kps)], 2].copy()
    if image_size is not None:
        w, h = image_size
        inside = (kps[:, 0] >= 0) & (kps[:, 0] < w) & (kps[:, 1] >= 0) & (kps[:, 1] < h)
        kps = kps.copy()
        kps[~inside, 2] = 0.0
    good = kps[:, 2] > threshold
    if not good.any():
        if visible_box is None:
            raise ValueError("keypoints: no keypoint above the threshold and no visible_box to fall back on")
        return rect_from_box(visible_box), "box"
    pts = kps[good, :2]
    if any(kps[i, 2] > threshold for i in feet if i < len(kps)):
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        r = margin * max(x1 - x0, y1 - y0)
        return square_from_center((x0 + x1) / 2, (y0 + y1) / 2, max(r, 1.0)), "feet"
    if len(hip_conf) == len(hips) and (hip_conf > threshold).all():
        c = kps[list(hips), :2].mean(0)
        r = 1.45 * float(np.sqrt(((pts - c) ** 2).sum(1)).max())
        r = max(r, 1.0)
        return square_from_center(c[0], c[1] + 0.05 * r, r), "mid-hip"
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    if visible_box is not None:
        x0, y0 = min(x0, visible_box[0]), min(y0, visible_box[1])
        x1, y1 = max(x1, visible_box[2]), max(y1, visible_box[3])
    return rect_from_box((x0, y0, x1, y1)), "visible"
