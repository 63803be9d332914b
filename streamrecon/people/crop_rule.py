"""PIFuHD crop rectangles: square, whole body with margin, in frame pixels (may leave the image;
the network input is zero-padded there).

The reference's rules (``facebookresearch/pifuhd`` lib/data/EvalWPoseDataset.py, OpenPose
BODY_25; "confident" = conf > 0.5, "visible" = conf > 0.2, as there) adapted to BlazePose's 33
landmarks:

* ``feet`` ('fullbody_crop'): an ankle/heel/toe is confident -> centre = centre of the box around
  the visible keypoints, half side r = margin x max(box w, box h) (margin 0.65).
* ``mid-hip`` ('fullbody_crop', no foot): both hips visible -> centre = mid-hip, r = 1.45 x the
  largest distance from mid-hip to a confident keypoint, centre y += 0.05 r (the crop runs past
  the bottom edge of the image: the person keeps the scale PIFuHD was trained on).
* ``upper-body`` ('upperbody_crop'): no hips either, both shoulders visible (head-and-shoulders
  video) -> centre = mid-shoulder, r = 0.8 x max(|nose - mid-shoulder| / 0.4,
  |shoulder - mid-shoulder| / 0.3). (The reference's fullbody rule would read OpenPose's missing
  mid-hip as (0, 0).)
* ``visible``: none of these -> the box around the visible keypoints and the person mask,
  r = 0.6 x its larger side.
* ``box``: no keypoints (HOG / motion detectors) -> the same framing of the detector's box.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

# BlazePose 33 landmark indices
BLAZEPOSE_FEET = (27, 28, 29, 30, 31, 32)  # ankles, heels, foot index (toes)
BLAZEPOSE_HIPS = (23, 24)
BLAZEPOSE_SHOULDERS = (11, 12)
BLAZEPOSE_NOSE = 0
CONFIDENT = 0.5
BOX_MARGIN = 0.6
MAX_COORD = 1e7  # pixels; keypoints beyond are garbage (and would overflow the rect arithmetic)


def square_from_center(cx: float, cy: float, r: float) -> Tuple[float, float, float, float]:
    """(x, y, w, h) of the square of half side ``r`` centred at (cx, cy)."""
    return (cx - r, cy - r, 2.0 * r, 2.0 * r)


def rect_from_box(box, margin: float = BOX_MARGIN) -> Tuple[float, float, float, float]:
    """Square around an (x0, y0, x1, y1) box: same centre, half side = margin x larger side."""
    x0, y0, x1, y1 = (float(v) for v in box)
    r = max(margin * max(x1 - x0, y1 - y0), 1.0)
    return square_from_center((x0 + x1) / 2, (y0 + y1) / 2, r)


RULES = ("feet", "mid-hip", "upper-body", "visible")


def _prepare(keypoints, image_size):
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.ndim != 2 or kps.shape[1] != 3 or len(kps) < 33:
        raise ValueError(f"keypoints: expected [33, 3] (x, y, conf) BlazePose keypoints, got {list(kps.shape)}")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(kps).all(axis=1) | (np.abs(kps[:, :2]) > MAX_COORD).any(axis=1)
    if bad.any():  # a NaN/inf/absurd keypoint (a broken detector or file) counts as not seen
        kps = np.where(bad[:, None], 0.0, kps)
    anchor_conf = kps[:, 2].copy()
    if image_size is not None:
        w, h = image_size
        inside = (kps[:, 0] >= 0) & (kps[:, 0] < w) & (kps[:, 1] >= 0) & (kps[:, 1] < h)
        kps = kps.copy()
        kps[~inside, 2] = 0.0
    return kps, anchor_conf


def choose_rule(keypoints: np.ndarray, threshold: float = 0.2, image_size: Optional[tuple] = None,
                confident: float = CONFIDENT) -> str:
    """Which crop rule the keypoints call for (see the module docstring); 'box' if none is visible."""
    kps, anchor_conf = _prepare(keypoints, image_size)
    if not (kps[:, 2] > threshold).any():
        return "box"
    if (kps[list(BLAZEPOSE_FEET), 2] > confident).any():
        return "feet"
    if (anchor_conf[list(BLAZEPOSE_HIPS)] > threshold).all():
        return "mid-hip"
    if (anchor_conf[list(BLAZEPOSE_SHOULDERS)] > threshold).all():
        return "upper-body"
    return "visible"


def rect_for_rule(keypoints: np.ndarray, rule: str, threshold: float = 0.2, margin: float = 0.65,
                  visible_box: Optional[tuple] = None, image_size: Optional[tuple] = None,
                  confident: float = CONFIDENT) -> tuple:
    """Crop rect (x, y, w, h) by the named rule. Every rule can run on any BlazePose output (the
    model always places all 33 points), so a tracker may keep a rule for a few frames after the
    keypoints stop calling for it (hysteresis)."""
    kps, _ = _prepare(keypoints, image_size)
    good = kps[:, 2] > threshold
    if rule == "box" or not good.any():
        if visible_box is None:
            raise ValueError("keypoints: no keypoint above the threshold and no visible_box to fall back on")
        return rect_from_box(visible_box)
    pts = kps[good, :2]
    if rule == "feet":
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        r = margin * max(x1 - x0, y1 - y0)
        return square_from_center((x0 + x1) / 2, (y0 + y1) / 2, max(r, 1.0))
    if rule == "mid-hip":
        c = kps[list(BLAZEPOSE_HIPS), :2].mean(0)
        sure = kps[kps[:, 2] > confident, :2]
        sure = sure if len(sure) else pts
        r = max(1.45 * float(np.sqrt(((sure - c) ** 2).sum(1)).max()), 1.0)
        return square_from_center(c[0], c[1] + 0.05 * r, r)
    if rule == "upper-body":
        c = kps[list(BLAZEPOSE_SHOULDERS), :2].mean(0)
        d = [float(np.linalg.norm(kps[i, :2] - c)) / 0.3 for i in BLAZEPOSE_SHOULDERS]
        d.append(float(np.linalg.norm(kps[BLAZEPOSE_NOSE, :2] - c)) / 0.4)
        return square_from_center(c[0], c[1], max(0.8 * max(d), 1.0))
    if rule != "visible":
        raise ValueError(f"rule: expected one of {RULES + ('box',)}, got {rule!r}")
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    if visible_box is not None:
        x0, y0 = min(x0, visible_box[0]), min(y0, visible_box[1])
        x1, y1 = max(x1, visible_box[2]), max(y1, visible_box[3])
    return rect_from_box((x0, y0, x1, y1))


def crop_rect_from_keypoints(keypoints: np.ndarray, threshold: float = 0.2, margin: float = 0.65,
                             visible_box: Optional[tuple] = None, image_size: Optional[tuple] = None,
                             confident: float = CONFIDENT) -> Tuple[tuple, str]:
    """Crop rect (x, y, w, h) and the name of the rule used, from [33, 3] BlazePose keypoints
    (x, y, conf) in frame pixels. ``threshold``: 'visible' confidence; ``confident``: the
    stricter one for the foot test and the mid-hip radius. ``visible_box``: (x0, y0, x1, y1) of
    the person mask, for the last fallback. ``image_size`` (width, height): keypoints outside
    the image do not count, except hips and shoulders as rule anchors (BlazePose places them
    just past the edge of waist-up / head-and-shoulders frames; dropping them there would make
    the rule flip from frame to frame)."""
    rule = choose_rule(keypoints, threshold, image_size, confident)
    return rect_for_rule(keypoints, rule, threshold, margin, visible_box, image_size, confident), rule
