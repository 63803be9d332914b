"""BlazePose person detector + 33-landmark model + person segmentation, run with LiteRT on the
``.tflite`` files that the ``mediapipe`` wheel bundles (``mediapipe/modules/pose_detection`` and
``pose_landmark``). The mediapipe package itself is never imported: its Python layer needs
protobuf < 5 and numpy < 2, which clash with the rest of the project, while its model files work
with any LiteRT. Nothing is downloaded.

Pipeline (facts read from mediapipe's pose graphs, re-implemented here; the HOG proposals for
people too small for the letterboxed detector, the search schedule and the untangling of people
pressed together are ours, see ``BlazePose`` and docs/people.md):

1. detector: the frame letterboxed to 224x224, RGB in [-1, 1]; 2254 SSD anchors; each output is a
   face box plus 4 keypoints (0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder, 3
   upper-body point); sigmoid scores, weighted NMS at IoU 0.3.
2. region of interest: centre = keypoint 0, side = 2 |kp1 - kp0| x 1.25, rotated so the body is
   upright.
3. landmark model on the 256x256 ROI, RGB in [0, 1]: 39 landmarks (x, y, z, visibility,
   presence; the first 33 are the body), a pose-presence flag, a 256x256 person-mask logit map
   (both mapped back to frame pixels with the inverse of the ROI warp) and 39 world landmarks
   (metres, hips at the origin, in the ROI's frame: ``body.landmarks.world_landmarks_from_roi``).

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
from .pyramid import covered_fraction, full_tile, search_tasks, split_rounds, tile_matrix
from .segmentation import mask_box, separate_masks

log = logging.getLogger(__name__)

DET_SIZE = 224
LMK_SIZE = 256
NUM_LANDMARKS = 33
SKIP_COVERED = 0.6  # a search strip this much inside tracked people's ROIs is left out of the rolling search
HOG_FRAME_PIXELS = 1_500_000  # the rolling HOG search's share of a frame, at most
STILL_LEVELS = 20  # a search strip none of whose 8x8 blocks changed by more than this (0..255) since its last search is not searched again
HOG_THRESHOLD = 0.0  # SVM margin above which a HOG window is a person proposal (OpenCV's default hit threshold)
HOG_ROI_SIDE = 1.4  # body ROI side / HOG body box height (BlazePose's ROI of a standing person)
HOG_ROI_CENTRE = 0.5  # the ROI centre (mid-hip) below the HOG box top, in box heights
MIN_NEW_HEIGHT = 0.5  # a newly found person shorter than this x min_height is dropped (a patch of grass)
PRESSED_IOU = 0.2  # people whose keypoint boxes overlap this much are pressed together (``_separate_pressed``)
PRESSED_PASSES = 2


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
    33 keypoints (x, y, visibility), 33 world landmarks and a person mask, in frame pixels.

    Where it looks (``pyramid``): the BlazePose detector on the letterboxed frame finds people
    taller than about a quarter of the frame; the HOG pedestrian detector (``hog_svm``) proposes
    smaller ones down to ``min_height`` pixels, whom the landmark model confirms (its presence
    flag) on a body ROI made from the HOG box. The first frame after ``reset`` (or a change of
    frame size) runs the whole HOG search; later frames follow tracked people by their landmarks
    and spread the HOG search over at least ``detect_every`` frames, in shares of at most
    ``HOG_FRAME_PIXELS`` (one share a frame; strips mostly inside tracked people's ROIs, or
    unchanged since their last search, left out), so a small newcomer is found within one round
    of shares (640x480: 5 frames) at about the same cost on every frame."""

    def __init__(self, num_threads: int = 2, min_score: float = 0.5, mask_threshold: float = 0.5,
                 max_people: int = 4, segmentation: str = "pose", detect_every: int = 1,
                 min_height: float = 50.0):
        if detect_every < 1:
            raise ValueError(f"detect_every: expected >= 1, got {detect_every}")
        if not min_height > 0:
            raise ValueError(f"min_height: expected > 0, got {min_height}")
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
        self._lmk_world = l_out.get("Identity_4")
        self.refine = True
        self.min_score = min_score
        self.mask_threshold = mask_threshold
        self.max_people = max_people
        self.detect_every = detect_every
        self.min_height = float(min_height)
        self.detector_runs = 0  # BlazePose detector invocations, for tests and benchmarks
        self.hog_runs = 0  # HOG search strips run
        self._size = None
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
    def detect_tile(self, image: np.ndarray, tile) -> list:
        """The detector on one square ``tile`` (x0, y0, side; frame pixels, may leave the frame:
        black there): [(box [4] x0 y0 x1 y1, keypoints [4, 2], score)] in frame pixels, after the
        detector's weighted NMS, best first."""
        import cv2

        m = tile_matrix(tile, DET_SIZE)
        inp = cv2.warpAffine(image, m, (DET_SIZE, DET_SIZE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = (inp.astype(np.float32) / 127.5 - 1.0)[None]
        self._det.set_tensor(self._det_in, x)
        self._det.invoke()
        self.detector_runs += 1
        raw_boxes = self._det.get_tensor(self._det_boxes)[0]
        raw_scores = self._det.get_tensor(self._det_scores)[0, :, 0]
        boxes, kps, scores = decode_detections(raw_boxes, raw_scores, self._anchors, self.min_score)
        x0, y0, side = tile
        k = side / DET_SIZE
        off = np.array([x0, y0])
        return [(box * DET_SIZE * k + np.tile(off, 2), kp * DET_SIZE * k + off, sc)
                for box, kp, sc in weighted_nms(boxes, kps, scores)]

    def detect_rois(self, image: np.ndarray) -> List[tuple]:
        """[(Roi, score, box)] of the people the detector finds on the letterboxed frame, best
        first."""
        h, w = image.shape[:2]
        return [(roi_from_alignment(kp[0], kp[1]), sc, tuple(float(v) for v in box))
                for box, kp, sc in self.detect_tile(image, full_tile(w, h))]

    def hog_rois(self, image: np.ndarray, tasks) -> List[tuple]:
        """[(Roi, score, box)] of upright people the HOG detector proposes in the search strips
        ``tasks`` (``pyramid.SearchTask``), best first: an upright ROI of side ``HOG_ROI_SIDE`` x
        the body box's height, centred ``HOG_ROI_CENTRE`` of it below its top."""
        from .hog_svm import detect_rows, nms_boxes

        hits = []
        for t in tasks:
            hits += detect_rows(image, t.scale, t.y0, t.y1, HOG_THRESHOLD)
        self.hog_runs += len(tasks)
        out = []
        for box, sc in nms_boxes(hits):
            bh = box[3] - box[1]
            out.append((Roi((box[0] + box[2]) / 2.0, box[1] + HOG_ROI_CENTRE * bh, HOG_ROI_SIDE * bh, 0.0), sc, box))
        return out

    # -- stage 2
    def landmarks(self, image: np.ndarray, roi: Roi, hide=()) -> Optional[Candidate]:
        """Run the landmark model on ``roi``; None if it says no pose is there. ``hide``: [33, 3]
        keypoints (frame pixels) of people already found, whose bodies are painted grey in the
        model's crop so that it takes the person it was sent for (``hide_people``)."""
        import cv2

        h, w = image.shape[:2]
        m = roi_matrix(roi)  # tensor -> frame
        crop = cv2.warpAffine(image, invert_affine(m), (LMK_SIZE, LMK_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        if len(hide):
            crop = hide_people(crop, invert_affine(m), hide)
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
        world = None
        if self._lmk_world is not None:
            from ..body.landmarks import world_landmarks_from_roi

            raw_world = self._lmk.get_tensor(self._lmk_world).reshape(-1)
            if np.all(np.isfinite(raw_world)):
                world = world_landmarks_from_roi(raw_world, roi.rotation).astype(np.float32)
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
        return Candidate(box=box, score=flag, keypoints=kps, mask=mask, layout="blazepose33", world=world,
                         meta={"next_roi": roi_from_alignment(aux[0], aux[1]), "roi": roi, "mask_logit": logit})

    def reset(self) -> None:
        """Forget the previous frame's people and start a new full search (between videos, or
        at a scene cut)."""
        self._prev_rois = []
        self._prev_torsos = []
        self._since_detect = 0  # frames since the letterbox detector last ran
        self._lost = False  # a tracked person was lost on the last frame
        self._fresh = True  # the next frame searches every strip
        self._round = 0
        self._searched = {}  # strip -> the 1/8-scale grey frame rows it was last searched on

    def _set_size(self, w: int, h: int) -> None:
        self._size = (w, h)
        self._tasks = search_tasks(w, h, self.min_height)
        pixels = sum(t.pixels for t in self._tasks)
        self._rounds = split_rounds(self._tasks, max(self.detect_every, int(math.ceil(pixels / HOG_FRAME_PIXELS))))
        self.reset()

    def detect(self, image: np.ndarray) -> List[Candidate]:
        """People in an RGB uint8 frame: detector, then the landmark model per detection. On video,
        a detection near a person of the previous frame uses the ROI derived from that person's
        landmarks instead (as mediapipe tracks): it is better centred and much steadier.

        While people are tracked the letterboxed detector runs on every ``detect_every``-th frame
        only: the tracked ROIs alone go to the landmark model in between, so a tracked person's
        landmarks are the same as with the detector on every frame (only ``det_score`` is None).
        Nobody tracked, or a tracked person lost (the landmark model's presence flag), runs it on
        the next frame. The HOG search for smaller people runs whole on a fresh search, else one
        share (``split_rounds``, at most ``HOG_FRAME_PIXELS``) a frame."""
        h, w = image.shape[:2]
        if self._size != (w, h):
            self._set_size(w, h)
        out = []
        prev, prev_torsos = list(self._prev_rois), list(self._prev_torsos)
        run_detector = not prev or self._lost or self._since_detect + 1 >= self.detect_every
        self._since_detect = 0 if run_detector else self._since_detect + 1
        small = _small_grey(image) if self._tasks else None
        if self._fresh:
            tasks = list(self._tasks)
        else:
            rois = [(r.cx - r.side / 2, r.cy - r.side / 2, r.cx + r.side / 2, r.cy + r.side / 2) for r in prev]
            tasks = [t for t in self._rounds[self._round] if covered_fraction(t.box, rois) < SKIP_COVERED
                     and self._changed(t, small)]
            self._round = (self._round + 1) % len(self._rounds)
        for t in tasks:
            self._searched[t] = small[t.y0 // 8:(t.y1 + 7) // 8].copy()
        fresh, self._fresh = self._fresh, False
        dets = self.detect_rois(image) if run_detector else []
        match = match_rois([roi for roi, _, _ in dets], prev)
        jobs = [(prev[match[i]], score, True, None) for i, (_, score, _) in enumerate(dets) if i in match]
        # people of the previous frame the detector missed (noise, blur, partial view): the
        # landmark model's own presence flag decides whether they are still there
        jobs += [(p, None, True, None) for j, p in enumerate(prev) if j not in match.values()]
        new = [(roi, score, False, None) for i, (roi, score, _) in enumerate(dets) if i not in match]
        if tasks:
            # HOG proposals of people tracked (a tracked torso in the box's middle third) or just
            # found by BlazePose are not sent again; the others are all new: a walker beside a
            # tracked one has an ROI close to theirs, so ROI matching cannot tell them apart
            new += [(roi, score, False, box) for roi, score, box in self.hog_rois(image, tasks)
                    if not any(_torso_in(t, box) for t in prev_torsos)
                    and not any(same_person(roi, r) for r, _, _ in dets)]
        jobs += new[: max(0, self.max_people - len(jobs))]
        self._lost = False
        for roi, score, tracked, hog_box in jobs:
            cand = self.landmarks(image, roi)
            if cand is not None and not tracked:
                if any(_same_skeleton(cand, k) for k in out):
                    # the model took someone already found (two people side by side in one ROI):
                    # again with them painted out of its crop
                    cand = self.landmarks(image, roi, hide=[k.keypoints for k in out])
                if cand is not None and (cand.box[3] - cand.box[1] < MIN_NEW_HEIGHT * self.min_height
                                         or any(_part_of(cand, k) or _same_skeleton(cand, k) or _same_face(cand, k)
                                                for k in out)
                                         or (hog_box is not None and not _fits_box(cand.keypoints, hog_box))):
                    cand = None
            if cand is not None:
                cand.meta["det_score"] = score
                out.append(cand)
            elif tracked:
                self._lost = True
        out = _dedupe(out)
        if fresh and len(out) > 1:
            out = self._separate_pressed(image, out)
        if self._selfie is not None and out:
            self._fuse_masks(image, out)
        elif len(out) > 1:
            for c, m in zip(out, separate_masks([c.mask for c in out], [c.keypoints for c in out])):
                c.mask = m
        for c in out:
            c.meta.pop("mask_logit", None)
        if self._lost:
            self._searched.clear()  # someone vanished: search everywhere again, changed or not
        self._prev_rois = [c.meta["next_roi"] for c in out]
        self._prev_torsos = [_torso(c.keypoints) for c in out]
        return out

    def _changed(self, task, small: np.ndarray) -> bool:
        """Whether ``task``'s strip changed since its last search (a block of 8x8 pixels moved by
        more than ``STILL_LEVELS``): a strip of a still background gives the same answer again,
        so it is skipped (a fixed camera searches where people move, a noisy still frame
        nowhere)."""
        last = self._searched.get(task)
        if last is None:
            return True
        now = small[task.y0 // 8:(task.y1 + 7) // 8]
        return last.shape != now.shape or bool((np.abs(now.astype(np.int16) - last) > STILL_LEVELS).any())

    def _separate_pressed(self, image: np.ndarray, cands: List[Candidate], passes: int = PRESSED_PASSES) -> List[Candidate]:
        """People pressed together (their confident-keypoint boxes overlap, IoU > ``PRESSED_IOU``):
        the landmark model, sent to one of them, mixes up their limbs. Run it again on each such
        person's ROI with the others' bodies painted out (``hide_people``), ``passes`` times, each
        pass hiding the skeletons of the last. Only on a fresh search (a still, a first frame):
        tracking refines people over the frames of a video."""
        boxes = np.asarray([_keypoint_box(c.keypoints) for c in cands])
        ious = _iou_matrix(boxes, boxes)
        np.fill_diagonal(ious, 0.0)
        pressed = [i for i in range(len(cands)) if ious[i].max() > PRESSED_IOU]
        for _ in range(passes if pressed else 0):
            new = list(cands)
            for i in pressed:
                others = [cands[j].keypoints for j in range(len(cands)) if j != i]
                c = self.landmarks(image, cands[i].meta["roi"], hide=others)
                if c is not None:
                    c.meta["det_score"] = cands[i].meta.get("det_score")
                    new[i] = c
            cands = new
        return cands

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


def _small_grey(image: np.ndarray) -> np.ndarray:
    """The frame in grey at 1/8 scale (each pixel the mean of an 8x8 block), int16."""
    import cv2

    h, w = image.shape[:2]
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, (max(1, w // 8), max(1, (h + 7) // 8)), interpolation=cv2.INTER_AREA).astype(np.int16)


def _centre_in(box, other) -> bool:
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return other[0] <= cx < other[2] and other[1] <= cy < other[3]


def _part_of(c: Candidate, k: Candidate) -> bool:
    """``c`` is a part of the bigger person ``k`` (a hand, a held object the landmark model took
    for a small person): its confident-keypoint box lies at least 70% inside ``k``'s body box
    and is less than half as tall."""
    a, b = _keypoint_box(c.keypoints), k.box
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)
    return ix * iy / area > 0.7 and (a[3] - a[1]) < 0.5 * (b[3] - b[1])


def _same_face(c: Candidate, k: Candidate) -> bool:
    """Two landmark results with their faces in one place (the centres of their confident face
    points within a tenth of the taller one's body box): one person, whatever their limbs say."""
    fc, fk = c.keypoints[:11], k.keypoints[:11]
    a, b = fc[fc[:, 2] > 0.5, :2], fk[fk[:, 2] > 0.5, :2]
    if len(a) < 3 or len(b) < 3:
        return False
    size = max(c.box[3] - c.box[1], k.box[3] - k.box[1], 1.0)
    return float(np.linalg.norm(a.mean(0) - b.mean(0))) < 0.1 * size


def _fits_box(kps: np.ndarray, box: tuple) -> bool:
    """The landmark model's skeleton is the upright person a HOG box proposed (not a dog, a
    chair, or a larger person the ROI cut into): its confident keypoints span 0.6-1.6x the box's
    height, its mid-hip lies inside the box, below its nose."""
    ok = kps[:, 2] > 0.5
    if ok.sum() < 5:
        return False
    ys = kps[ok, 1]
    span = (float(ys.max()) - float(ys.min())) / max(box[3] - box[1], 1e-9)
    hx, hy = kps[[23, 24], 0].mean(), kps[[23, 24], 1].mean()
    return 0.6 <= span <= 1.6 and box[0] <= hx <= box[2] and box[1] <= hy <= box[3] and kps[0, 1] < hy


def _torso(kps: np.ndarray) -> tuple:
    """(x, y) frame pixels: the mean of the confident shoulders and hips (of all four if none is)."""
    t = kps[[11, 12, 23, 24]]
    ok = t[:, 2] > 0.5
    p = t[ok, :2] if ok.any() else t[:, :2]
    return float(p[:, 0].mean()), float(p[:, 1].mean())


def _torso_in(torso: tuple, box: tuple) -> bool:
    """A body box (x0, y0, x1, y1) whose middle third (across) holds ``torso``: the same person.
    (A box merely containing the torso may be a neighbour's walking shoulder to shoulder.)"""
    w = box[2] - box[0]
    return box[1] <= torso[1] < box[3] and abs(torso[0] - (box[0] + box[2]) / 2.0) < w / 3.0


def _keypoint_box(kps: np.ndarray, conf: float = 0.5) -> tuple:
    """(x0, y0, x1, y1) of the confident keypoints (all of them when none is): where a tracked
    person surely is (their mask's box may hold a neighbour the segmentation also marked)."""
    pts = kps[kps[:, 2] > conf, :2]
    pts = pts if len(pts) else kps[:, :2]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def same_person(a: Roi, b: Roi) -> bool:
    """Two body ROIs of one person: centres within a quarter of the larger side, sides within
    0.7-1.4x (``match_rois``'s test, symmetric)."""
    side = max(a.side, b.side)
    return math.hypot(a.cx - b.cx, a.cy - b.cy) < 0.25 * side and 0.7 < a.side / max(b.side, 1e-9) < 1.4


def _same_skeleton(c: Candidate, k: Candidate, rel: float = 0.15) -> bool:
    """Two landmark results of one body: their keypoints confident in both (>= 3 of them) lie, by
    median distance, within ``rel`` x the body size."""
    common = (c.keypoints[:, 2] > 0.5) & (k.keypoints[:, 2] > 0.5)
    if common.sum() < 3:
        return False
    pts = c.keypoints[common, :2]
    size = max(float(np.linalg.norm(pts.max(0) - pts.min(0))), 1.0)
    return float(np.median(np.linalg.norm(pts - k.keypoints[common, :2], axis=1))) < rel * size


def _dedupe(cands: List[Candidate], rel: float = 0.15) -> List[Candidate]:
    """Two ROIs can land on the same body: a candidate that is ``_same_skeleton`` as a better
    candidate is the same person. (Masks cannot decide this: the segmentation output covers every
    person inside the ROI.)"""
    kept: List[Candidate] = []
    for c in sorted(cands, key=lambda c: -c.score):
        if not any(_same_skeleton(c, k, rel) for k in kept):
            kept.append(c)
    return kept


HIDE_LIMBS = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25),
              (25, 27), (24, 26), (26, 28), (0, 11), (0, 12))


def hide_people(crop: np.ndarray, frame_to_crop: np.ndarray, keypoints, threshold: float = 0.5,
                grey: int = 127) -> np.ndarray:
    """A copy of a model crop [S, S, 3] with the bodies of ``keypoints`` ([33, 3] each, frame
    pixels; ``frame_to_crop`` the [2, 3] map into the crop) painted ``grey``: thick limbs between
    their confident keypoints (a fifth of the shoulder-to-hip length wide), a disc on the head."""
    import cv2

    out = crop.copy()
    for k in keypoints:
        xy = np.concatenate([k[:, :2], np.ones((len(k), 1))], 1) @ np.asarray(frame_to_crop).T
        ok = k[:, 2] > threshold
        torso = [float(np.linalg.norm(xy[a] - xy[b])) for a, b in ((11, 23), (12, 24)) if ok[a] and ok[b]]
        size = max(torso) if torso else 0.25 * float(np.ptp(xy[ok], axis=0).max()) if ok.sum() > 1 else 0.0
        t = max(2, int(round(0.4 * size)))
        for a, b in HIDE_LIMBS:
            if ok[a] and ok[b]:
                cv2.line(out, tuple(int(v) for v in np.round(xy[a])), tuple(int(v) for v in np.round(xy[b])),
                         (grey,) * 3, t)
        if ok[0]:
            cv2.circle(out, tuple(int(v) for v in np.round(xy[0])), max(2, int(round(0.35 * size))), (grey,) * 3, -1)
    return out
