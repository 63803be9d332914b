"""BlazePose person detector + 33-landmark model + person segmentation, run with LiteRT on the
``.tflite`` files that the ``mediapipe`` wheel bundles (``mediapipe/modules/pose_detection`` and
``pose_landmark``). The mediapipe package itself is never imported: its Python layer needs
protobuf < 5 and numpy < 2, which clash with the rest of the project, while its model files work
with any LiteRT. Nothing is downloaded.

Pipeline (facts read from mediapipe's pose graphs, re-implemented here):

1. detector: the frame letterboxed to 224x224, RGB in [-1, 1]; 2254 SSD anchors; each output is a
   face box plus 4 keypoints (0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder, 3
   upper-body point); sigmoid scores, weighted NMS at IoU 0.3.
2. region of interest: centre = keypoint 0, side = 2 |kp1 - kp0| x 1.25, rotated so the body is
   upright.
3. landmark model on the 256x256 ROI, RGB in [0, 1]: 39 landmarks (x, y, z, visibility,
   presence; the first 33 are the body), a pose-presence flag and a 256x256 person-mask logit map;
   both are mapped back to frame pixels with the inverse of the ROI warp.

Pure functions (anchors, decoding, NMS, ROI geometry) are separate from ``BlazePose``, the thin
class that owns the two interpreters. A ``BlazePose`` instance is not thread-safe: use it from one
thread (the detection stage's).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import BackendUnavailableError
from .affine import invert_affine
from .candidates import Candidate
from .litert import interpreter, mediapipe_model
from .segmentation import mask_box, separate_masks

log = logging.getLogger(__name__)

DET_SIZE = 224
LMK_SIZE = 256
NUM_LANDMARKS = 33


def model_paths() -> tuple:
    """(pose_detection.tflite, pose_landmark_full.tflite) inside the installed mediapipe wheel.
    Raises BackendUnavailableError when absent."""
    return (mediapipe_model("pose_detection", "pose_detection.tflite", what="mediapipe detector"),
            mediapipe_model("pose_landmark", "pose_landmark_full.tflite", what="mediapipe detector"))


# ----------------------------------------------------------------------------- pure functions


def ssd_anchors(size: int = DET_SIZE, strides=(8, 16, 32, 32, 32)) -> np.ndarray:
    """[N, 2] anchor centres (x, y) normalised to [0, 1], in the model's output order.

    Fixed-size anchors, aspect ratio 1 plus one interpolated scale, so 2 anchors per cell per
    layer; consecutive layers with the same stride share cells (224: 28²·2 + 14²·2 + 7²·6 = 2254).
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)
        n = int(math.ceil(size / strides[i]))
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, min_score: float,
                      size: int = DET_SIZE) -> tuple:
    """Decode the detector's outputs. ``raw_boxes`` [N, 12], ``raw_scores`` [N] (logits).
    Returns (boxes [M, 4] x0 y0 x1 y1, keypoints [M, 4, 2], scores [M]) for scores >= min_score,
    all normalised to the (letterboxed) model input."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.astype(np.float64), -100.0, 100.0)))
    keep = scores >= min_score
    rb, a, s = raw_boxes[keep] / size, anchors[keep], scores[keep]
    cx, cy = rb[:, 0] + a[:, 0], rb[:, 1] + a[:, 1]
    w, h = rb[:, 2], rb[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = rb[:, 4:12].reshape(-1, 4, 2) + a[:, None, :]
    return boxes, kps, s


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> list:
    """Weighted non-maximum suppression: each kept detection is the score-weighted mean of the
    boxes/keypoints overlapping the best remaining one by more than ``iou``; keeps its score.
    Returns a list of (box [4], keypoints [4, 2], score), best first."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    ious = _iou_matrix(boxes, boxes) if len(scores) else np.zeros((0, 0))
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (ious[i] > iou)
        group[i] = True
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), (kps[group].reshape(-1, 8) * w).sum(0).reshape(4, 2) / w.sum(),
                    float(scores[i])))
        alive &= ~group
    return out


def letterbox_params(h: int, w: int, size: int = DET_SIZE) -> tuple:
    """(scale, pad_x, pad_y): frame pixel p -> model pixel p * scale + pad (aspect kept, centred)."""
    scale = size / max(h, w)
    return scale, (size - w * scale) / 2.0, (size - h * scale) / 2.0


@dataclass(frozen=True)
class Roi:
    """A rotated square region in frame pixels: centre (cx, cy), side, rotation (radians; the
    ROI's up direction is rotated by this angle from the image's)."""

    cx: float
    cy: float
    side: float
    rotation: float


def roi_from_alignment(center_xy, scale_xy, scale: float = 1.25) -> Roi:
    """Body ROI from two alignment points in frame pixels (detector kp0/kp1 or the landmark model's
    auxiliary landmarks 33/34): side = 2 |scale - centre| x ``scale``, rotation making the
    centre->scale vector point up (mediapipe's target angle of 90 degrees)."""
    x0, y0 = center_xy
    x1, y1 = scale_xy
    rot = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rot = rot - 2 * math.pi * math.floor((rot + math.pi) / (2 * math.pi))
    side = 2.0 * math.hypot(x1 - x0, y1 - y0) * scale
    return Roi(float(x0), float(y0), float(side), float(rot))


def roi_matrix(roi: Roi, out_size: int = LMK_SIZE) -> np.ndarray:
    """[2, 3] affine map from ROI-tensor pixels (u, v) in [0, out_size) to frame pixels."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    k = roi.side / out_size
    # frame = centre + R @ ((u, v) - out_size/2) * k
    a = np.array([[c * k, -s * k], [s * k, c * k]])
    t = np.array([roi.cx, roi.cy]) - a @ np.array([out_size / 2.0, out_size / 2.0])
    return np.concatenate([a, t[:, None]], 1)


def match_rois(dets: List[Roi], prev: List[Roi]) -> dict:
    """{detection index: previous-frame ROI index}: a detection is the same person as a previous
    ROI whose centre lies within 0.25 x its side and whose side is within 0.7-1.4 x its own;
    pairs are taken closest first, each ROI at most once (so a newcomer beside a tracked person
    is not taken for them when another detection is closer)."""
    pairs = sorted((math.hypot(p.cx - d.cx, p.cy - d.cy), i, j) for i, d in enumerate(dets)
                   for j, p in enumerate(prev)
                   if math.hypot(p.cx - d.cx, p.cy - d.cy) < 0.25 * d.side and 0.7 < p.side / d.side < 1.4)
    match: dict = {}
    for _, i, j in pairs:
        if i not in match and j not in match.values():
            match[i] = j
    return match


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = 7, min_conf: float = 0.5) -> np.ndarray:
    """Refine landmark positions with the landmark model's heatmaps (mediapipe's
    RefineLandmarksFromHeatmap): ``xy`` [N, 2] in landmark-tensor pixels (0..256), ``heatmap``
    [h, w, N] logits. Each landmark whose heatmap cell lies inside the map and whose sigmoid
    window maximum reaches ``min_conf`` moves to the confidence-weighted mean cell of the
    kernel x kernel window around it (cell index / map size, as mediapipe does)."""
    hh, hw, n = heatmap.shape
    out = xy.astype(np.float64).copy()
    scale = LMK_SIZE / hw
    col = np.floor(xy[:, 0] / LMK_SIZE * hw).astype(int)
    row = np.floor(xy[:, 1] / LMK_SIZE * hh).astype(int)
    ok = (col >= 0) & (col < hw) & (row >= 0) & (row < hh)
    off = (kernel - 1) // 2
    # the whole window at once ([kernel^2, N]: one gather, one sigmoid) instead of kernel^2 passes
    # of small numpy calls (4.3 -> ~0.3 ms a frame); sums run over the window in the same order
    d = np.arange(-off, off + 1)
    r = (row[None, :] + np.repeat(d, kernel)[:, None])
    c = (col[None, :] + np.tile(d, kernel)[:, None])
    inside = ok & (r >= 0) & (r < hh) & (c >= 0) & (c < hw)
    idx = np.broadcast_to(np.arange(n), r.shape)
    conf = np.where(inside, _sigmoid(heatmap[np.clip(r, 0, hh - 1), np.clip(c, 0, hw - 1), idx].astype(np.float64)), 0.0)
    s = conf.sum(0)
    wc = (c * conf).sum(0)
    wr = (r * conf).sum(0)
    mx = conf.max(0)
    use = ok & (mx >= min_conf) & (s > 0)
    out[use, 0] = wc[use] / s[use] * scale
    out[use, 1] = wr[use] / s[use] * scale
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------- the backend


class BlazePose:
    """Runs detector + landmark models on frames (one thread). ``detect(image)`` -> Candidates with
    33 keypoints (x, y, visibility) and a person mask, in frame pixels."""

    def __init__(self, num_threads: int = 2, min_score: float = 0.5, mask_threshold: float = 0.5,
                 max_people: int = 4, segmentation: str = "pose", detect_every: int = 1):
        if detect_every < 1:
            raise ValueError(f"detect_every: expected >= 1, got {detect_every}")
        det_path, lmk_path = model_paths()
        self._det = interpreter(det_path, num_threads)
        self._lmk = interpreter(lmk_path, num_threads)
        self._anchors = ssd_anchors()
        d_out = {o["name"]: o["index"] for o in self._det.get_output_details()}
        self._det_in = self._det.get_input_details()[0]["index"]
        self._det_boxes, self._det_scores = d_out["Identity"], d_out["Identity_1"]
        l_out = {o["name"]: o["index"] for o in self._lmk.get_output_details()}
        self._lmk_in = self._lmk.get_input_details()[0]["index"]
        self._lmk_pts, self._lmk_flag, self._lmk_seg = l_out["Identity"], l_out["Identity_1"], l_out["Identity_2"]
        self._lmk_heat = l_out["Identity_3"]
        self.refine = True
        self.min_score = min_score
        self.mask_threshold = mask_threshold
        self.max_people = max_people
        self.detect_every = detect_every
        self.reset()
        self._selfie = None
        if segmentation == "fused":
            from .selfie import SelfieSegmenter

            try:
                self._selfie = SelfieSegmenter(num_threads)
            except BackendUnavailableError as exc:
                log.warning("person masks: selfie-segmentation model unavailable, using the BlazePose masks alone (%s)", exc)
        elif segmentation != "pose":
            raise ValueError(f"segmentation: expected 'pose' or 'fused', got {segmentation!r}")

    # -- stage 1
    def detect_rois(self, image: np.ndarray) -> List[tuple]:
        """[(Roi, score)] of people in an RGB uint8 frame, best first (at most max_people)."""
        import cv2

        h, w = image.shape[:2]
        scale, px, py = letterbox_params(h, w)
        m = np.array([[scale, 0, px], [0, scale, py]], np.float64)
        inp = cv2.warpAffine(image, m, (DET_SIZE, DET_SIZE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = (inp.astype(np.float32) / 127.5 - 1.0)[None]
        self._det.set_tensor(self._det_in, x)
        self._det.invoke()
        raw_boxes = self._det.get_tensor(self._det_boxes)[0]
        raw_scores = self._det.get_tensor(self._det_scores)[0, :, 0]
        boxes, kps, scores = decode_detections(raw_boxes, raw_scores, self._anchors, self.min_score)
        out = []
        for _box, kp, sc in weighted_nms(boxes, kps, scores)[: self.max_people]:
            kp_px = (kp * DET_SIZE - np.array([px, py])) / scale
            out.append((roi_from_alignment(kp_px[0], kp_px[1]), sc))
        return out

    # -- stage 2
    def landmarks(self, image: np.ndarray, roi: Roi) -> Optional[Candidate]:
        """Run the landmark model on ``roi``; None if it says no pose is there."""
        import cv2

        h, w = image.shape[:2]
        m = roi_matrix(roi)  # tensor -> frame
        crop = cv2.warpAffine(image, invert_affine(m), (LMK_SIZE, LMK_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        self._lmk.set_tensor(self._lmk_in, (crop.astype(np.float32) / 255.0)[None])
        self._lmk.invoke()
        flag = float(self._lmk.get_tensor(self._lmk_flag).reshape(-1)[0])
        if flag < 0.5:
            return None
        raw = self._lmk.get_tensor(self._lmk_pts).reshape(39, 5)
        uv = raw[:, :2]
        if self.refine:
            uv = refine_from_heatmap(uv, self._lmk.get_tensor(self._lmk_heat)[0])
        uv1 = np.concatenate([uv, np.ones((39, 1))], 1)
        xy = uv1 @ m.T
        # conf = visibility, zeroed where the model says the point is not present; points may lie
        # outside the frame (the crop rule decides what to do with those)
        conf = _sigmoid(raw[:, 3]) * (_sigmoid(raw[:, 4]) > 0.5)
        kps = np.concatenate([xy[:NUM_LANDMARKS], conf[:NUM_LANDMARKS, None]], 1).astype(np.float32)
        seg = self._lmk.get_tensor(self._lmk_seg)[0, :, :, 0]
        # Warp logits (not probabilities) back: bilinear on logits keeps a sharper boundary.
        logit = cv2.warpAffine(seg.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=-20.0)
        thr = math.log(self.mask_threshold / (1.0 - self.mask_threshold)) if 0 < self.mask_threshold < 1 else 0.0
        mask = logit > thr
        box = mask_box(mask)
        if box is None:
            good = kps[kps[:, 2] > 0.2]
            pts = good[:, :2] if len(good) else kps[:, :2]
            box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        aux = xy[33:35]
        return Candidate(box=box, score=flag, keypoints=kps, mask=mask, layout="blazepose33",
                         meta={"next_roi": roi_from_alignment(aux[0], aux[1]), "roi": roi, "mask_logit": logit})

    def reset(self) -> None:
        """Forget the previous frame's ROIs (between videos)."""
        self._prev_rois = []
        self._since_detect = 0  # frames since the detector last ran
        self._lost = False  # a tracked person was lost on the last frame

    def detect(self, image: np.ndarray) -> List[Candidate]:
        """People in an RGB uint8 frame: detector, then the landmark model per detection. On video,
        a detection near a person of the previous frame uses the ROI derived from that person's
        landmarks instead (as mediapipe tracks): it is better centred and much steadier.

        While people are tracked the detector runs on every ``detect_every``-th frame only: the
        tracked ROIs alone go to the landmark model in between, so a tracked person's landmarks
        are the same as with the detector on every frame (only ``det_score`` is None). Nobody
        tracked, or a tracked person lost (the landmark model's presence flag), runs it on the
        next frame."""
        out = []
        prev = list(self._prev_rois)
        run_detector = not prev or self._lost or self._since_detect + 1 >= self.detect_every
        self._since_detect = 0 if run_detector else self._since_detect + 1
        dets = self.detect_rois(image) if run_detector else []
        match = match_rois([roi for roi, _ in dets], prev)
        jobs = [(prev[match[i]], score, True) if i in match else (roi, score, False)
                for i, (roi, score) in enumerate(dets)]
        # people of the previous frame the detector missed (noise, blur, partial view): the
        # landmark model's own presence flag decides whether they are still there
        jobs += [(p, None, True) for j, p in enumerate(prev) if j not in match.values()]
        self._lost = False
        for roi, score, tracked in jobs:
            cand = self.landmarks(image, roi)
            if cand is not None:
                cand.meta["det_score"] = score
                out.append(cand)
            elif tracked:
                self._lost = True
        out = _dedupe(out)
        if self._selfie is not None and out:
            self._fuse_masks(image, out)
        elif len(out) > 1:
            for c, m in zip(out, separate_masks([c.mask for c in out], [c.keypoints for c in out])):
                c.mask = m
        for c in out:
            c.meta.pop("mask_logit", None)
        self._prev_rois = [c.meta["next_roi"] for c in out]
        return out


    def _fuse_masks(self, image: np.ndarray, cands: List[Candidate]) -> None:
        """Replace the candidates' masks by fused ones (``segmentation.fuse_person_masks``): per
        person, the max of the BlazePose ROI mask logits and of the selfie model run on the ROI
        and on a square crop around the person's box; pixels split by nearest skeleton."""
        import cv2

        from .segmentation import fuse_person_masks
        from .selfie import group_matrix, logit_threshold, roi_polygon

        h, w = image.shape[:2]
        own, regions = [], []
        for c in cands:
            crops = [roi_matrix(c.meta["roi"]), group_matrix([c.box])]
            logit = c.meta["mask_logit"]
            region = np.zeros((h, w), np.uint8)
            for m in crops:
                logit = np.maximum(logit, self._selfie.logits(image, m))
                cv2.fillConvexPoly(region, np.round(roi_polygon(m)).astype(np.int32), 1)
            own.append(logit)
            regions.append(region.astype(bool))
        thr = logit_threshold(self.mask_threshold)
        for c, m in zip(cands, fuse_person_masks(own, None, [c.keypoints for c in cands], regions, thr)):
            c.mask = m


def _dedupe(cands: List[Candidate], rel: float = 0.15) -> List[Candidate]:
    """Two ROIs can land on the same body: a candidate whose keypoints confident in both (>= 3 of
    them) lie, by median distance, within ``rel`` x the body size of a better candidate's is the same person.
    (Masks cannot decide this: the segmentation output covers every person inside the ROI.)"""
    kept: List[Candidate] = []
    for c in sorted(cands, key=lambda c: -c.score):
        dup = False
        for k in kept:
            common = (c.keypoints[:, 2] > 0.5) & (k.keypoints[:, 2] > 0.5)
            if common.sum() < 3:
                continue
            pts = c.keypoints[common, :2]
            size = max(float(np.linalg.norm(pts.max(0) - pts.min(0))), 1.0)
            if float(np.median(np.linalg.norm(pts - k.keypoints[common, :2], axis=1))) < rel * size:
                dup = True
                break
        if not dup:
            kept.append(c)
    return kept
