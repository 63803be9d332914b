"""Person masks: applying the background choice before the network, mask metrics, and a GrabCut
mask for detectors that only give boxes. Masks are [H, W] bool in frame pixels."""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

import numpy as np


def apply_background(image: np.ndarray, mask: Optional[np.ndarray], background: str = "remove",
                     color=(0, 0, 0)) -> np.ndarray:
    """Image with the background blanked. ``image`` [H, W, 3] uint8 RGB; ``mask`` [H, W] bool
    (True = person) or None (nothing to blank); ``background``: 'keep' returns the image
    unchanged, 'remove' sets pixels outside the mask to ``color`` (RGB). Returns a new array
    for 'remove' (the input is never modified)."""
    if background not in ("keep", "remove"):
        raise ValueError(f"background: expected 'keep' or 'remove', got {background!r}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected uint8 [H, W, 3], got {getattr(image, 'dtype', type(image))} "
                         f"{list(getattr(image, 'shape', []))}")
    if background == "keep" or mask is None:
        return image
    if mask.shape != image.shape[:2] or mask.dtype != np.bool_:
        raise ValueError(f"mask: expected bool {list(image.shape[:2])}, got {mask.dtype} {list(mask.shape)}")
    out = np.empty_like(image)
    out[...] = np.asarray(color, dtype=np.uint8)
    out[mask] = image[mask]
    return out


def union_masks(masks: Iterable[np.ndarray], shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m in masks:
        if m is not None:
            out |= m
    return out


SKELETON_LIMBS = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25),
                  (25, 27), (24, 26), (26, 28), (0, 11), (0, 12), (0, 2), (0, 5), (7, 8))


def separate_masks(masks: List[np.ndarray], keypoints: List[np.ndarray], threshold: float = 0.2) -> List[np.ndarray]:
    """Give each pixel claimed by several person masks to the person whose skeleton (limbs
    between confident BlazePose keypoints) is nearest. ``masks``: [H, W] bool each (a
    segmentation run on one person's ROI marks every person in it); ``keypoints``: [33, 3] each,
    frame pixels. Returns new masks; pixels claimed once are kept as they are."""
    import cv2

    if len(masks) < 2:
        return [m.copy() for m in masks]
    h, w = masks[0].shape
    claims = np.zeros((h, w), np.uint8)
    for m in masks:
        claims += m
    lin = np.flatnonzero(claims > 1)  # contested pixels, flat indices
    if len(lin) == 0:
        return [m.copy() for m in masks]
    ys, xs = np.divmod(lin, w)
    # distances on a grid of at most ~160 px a side: ownership only needs to be right to a few px
    s = min(1.0, 160.0 / max(h, w))
    sh, sw = max(1, int(np.ceil(h * s))), max(1, int(np.ceil(w * s)))
    cell = np.minimum((ys * s).astype(np.intp), sh - 1) * sw + np.minimum((xs * s).astype(np.intp), sw - 1)
    dists = []
    for k in keypoints:
        canvas = np.full((sh, sw), 255, np.uint8)
        for a, b in SKELETON_LIMBS:
            if k[a, 2] > threshold and k[b, 2] > threshold:
                cv2.line(canvas, (int(round(k[a, 0] * s)), int(round(k[a, 1] * s))),
                         (int(round(k[b, 0] * s)), int(round(k[b, 1] * s))), 0, 1)
        if canvas.min() == 255:  # no limb visible: fall back to the confident points
            for x, y, c in k:
                if c > threshold and 0 <= x * s < sw and 0 <= y * s < sh:
                    canvas[int(y * s), int(x * s)] = 0
        d = (cv2.distanceTransform(canvas, cv2.DIST_L2, 3) if canvas.min() == 0
             else np.full((sh, sw), np.inf, np.float32))
        dists.append(d.ravel()[cell])
    d = np.stack(dists)  # [people, contested pixels]
    d[~np.stack([np.ascontiguousarray(m).ravel()[lin] for m in masks])] = np.inf  # only claimants compete
    owner = np.argmin(d, axis=0)
    out = []
    for i, m in enumerate(masks):
        n = np.array(m, copy=True, order="C")
        n.ravel()[lin[owner != i]] = False
        out.append(n)
    return out


def fuse_person_masks(person_logits: Sequence[np.ndarray], group_logit: Optional[np.ndarray],
                      keypoints: Sequence[np.ndarray], regions: Sequence[np.ndarray],
                      threshold: float = 0.0) -> List[np.ndarray]:
    """Per-person masks from several segmentations of one frame. ``person_logits``: [H, W] person
    logits from each person's own ROI (BlazePose mask, selfie model on the ROI, ... already
    max-combined); ``group_logit``: [H, W] logits of a segmentation covering everyone (or None);
    ``keypoints``: [33, 3] per person; ``regions``: [H, W] bool per person (their ROI: a person's
    mask never leaves it). The union of all evidence (max of the logits > ``threshold``) is split
    between people: each claims the union inside their region, pixels claimed by several go to
    the nearest skeleton (``separate_masks``). Returns [H, W] bool per person."""
    if not len(person_logits):
        return []
    fused = np.max(np.stack(list(person_logits) + ([group_logit] if group_logit is not None else [])), axis=0)
    union = fused > threshold
    claims = [union & r for r in regions]
    return separate_masks(claims, list(keypoints))


def fuse_person_masks_reference(person_logits, group_logit, keypoints, regions, threshold: float = 0.0,
                                kp_threshold: float = 0.2) -> List[np.ndarray]:
    """Slow twin of ``fuse_person_masks`` for tests: pixel by pixel, exact full-resolution
    point-to-segment distances to each claiming person's limbs (confident points when no limb)."""
    h, w = person_logits[0].shape
    srcs = list(person_logits) + ([group_logit] if group_logit is not None else [])
    out = [np.zeros((h, w), bool) for _ in person_logits]
    segs = []
    for k in keypoints:
        s = [(k[a, :2], k[b, :2]) for a, b in SKELETON_LIMBS if k[a, 2] > kp_threshold and k[b, 2] > kp_threshold]
        if not s:
            s = [(p[:2], p[:2]) for p in k if p[2] > kp_threshold]
        segs.append(s)

    def dist(p, s):
        best = np.inf
        for a, b in s:
            ab = b - a
            t = 0.0 if not ab.any() else float(np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0))
            best = min(best, float(np.hypot(*(a + t * ab - p))))
        return best

    for y in range(h):
        for x in range(w):
            if max(float(s[y, x]) for s in srcs) <= threshold:
                continue
            who = [i for i, r in enumerate(regions) if r[y, x]]
            if len(who) == 1:
                out[who[0]][y, x] = True
            elif who:
                p = np.array([x + 0.5, y + 0.5])
                out[min(who, key=lambda i: dist(p, segs[i]))][y, x] = True
    return out


def mask_iou(pred: np.ndarray, truth: np.ndarray, ignore: Optional[np.ndarray] = None) -> float:
    """Intersection over union of two bool masks, pixels in ``ignore`` excluded."""
    if pred.shape != truth.shape:
        raise ValueError(f"mask_iou: shapes differ {pred.shape} vs {truth.shape}")
    valid = np.ones(pred.shape, bool) if ignore is None else ~ignore
    inter = np.logical_and(pred, truth)[valid].sum()
    union = np.logical_or(pred, truth)[valid].sum()
    return float(inter / union) if union else 1.0


def mask_box(mask: np.ndarray) -> Optional[tuple]:
    """(x0, y0, x1, y1) of a bool mask (x1, y1 exclusive), or None if empty."""
    import cv2

    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    if w == 0 or h == 0:
        return None
    return (float(x), float(y), float(x + w), float(y + h))


def grabcut_mask(image: np.ndarray, box, max_side: int = 240, iterations: int = 3) -> np.ndarray:
    """Person mask inside an (x0, y0, x1, y1) box by GrabCut on a downscaled copy (for box-only
    detectors). [H, W] bool in frame pixels."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    x0 = int(np.clip(box[0] * s, 0, sw - 2))
    y0 = int(np.clip(box[1] * s, 0, sh - 2))
    x1 = int(np.clip(box[2] * s, x0 + 2, sw))
    y1 = int(np.clip(box[3] * s, y0 + 2, sh))
    gc = np.zeros((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(np.ascontiguousarray(small[:, :, ::-1]), gc, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iterations,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        gc[y0:y1, x0:x1] = cv2.GC_PR_FGD
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    return cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
