"""``PeopleFinder``: frame in, people out. Wires a detector backend, the crop rule, the id tracker
and per-person rect smoothing. Stateful across the frames of one video (call ``reset()`` between
videos); owned by one thread (the detection stage's)."""
from __future__ import annotations

import logging
from typing import Dict, List

import numpy as np

from ..errors import BackendUnavailableError
from ..types import Frame, PersonCrop
from .candidates import Candidate
from .config import PeopleConfig
from .crop_rule import choose_rule, crop_rect_from_keypoints, rect_for_rule, rect_from_box
from .segmentation import mask_box
from .smoothing import OneEuroFilter, rect_to_state, state_to_rect
from .tracking import IouTracker

log = logging.getLogger(__name__)
SIZE_SLOWER = 3.0


def make_detector(cfg: PeopleConfig):
    """The detector backend named by ``cfg.detector``. 'auto' falls back from mediapipe to hog
    with one warning naming what is missing; an explicit 'mediapipe' that cannot load raises
    BackendUnavailableError with the install command."""
    if cfg.detector in ("auto", "mediapipe"):
        try:
            from .blazepose import BlazePose

            return BlazePose(num_threads=cfg.num_threads, min_score=cfg.min_score, mask_threshold=cfg.mask_threshold,
                             max_people=cfg.max_people, segmentation=cfg.segmentation,
                             detect_every=cfg.detect_every)
        except BackendUnavailableError as exc:
            if cfg.detector == "mediapipe":
                raise
            log.warning("person detector: mediapipe models unavailable, using OpenCV HOG instead (%s)", exc)
    if cfg.detector in ("auto", "hog"):
        from .hog import HogPeople

        try:
            return HogPeople(min_score=cfg.min_score, max_people=cfg.max_people)
        except BackendUnavailableError as exc:
            if cfg.detector == "hog":
                raise
            log.warning("person detector: no HOG either, treating each frame as one person (%s)", exc)
    from .hog import FullFrame, MotionPeople

    if cfg.detector == "motion":
        return MotionPeople(max_people=cfg.max_people)
    return FullFrame()


class PeopleFinder:
    """``find(frame)`` -> PersonCrops sorted by id: square rect (frame pixels, may leave the image),
    person mask (frame pixels), keypoints, score and a stable ``person_id``. ``meta`` holds
    ``raw_rect`` / ``raw_crop_rule`` / ``raw_keypoints`` (this frame alone, before smoothing and
    rule hysteresis), ``crop_rule`` (the rule behind ``rect``) and ``box`` (the person's box)."""

    def __init__(self, cfg: PeopleConfig = PeopleConfig()):
        self.cfg = cfg
        self.detector = make_detector(cfg)
        self.tracker = IouTracker(cfg.track_iou, cfg.track_max_missed)
        self._filters: Dict[int, OneEuroFilter] = {}
        self._kp_filters: Dict[int, tuple] = {}
        self._rules: Dict[int, tuple] = {}

    def _smooth(self, pid: int, cand: Candidate, t: float, size) -> tuple:
        """Smoothed rect and keypoints of person ``pid``. Keypoints are smoothed first (positions
        by One-Euro, confidences by the same filter so the crop rule does not flip between
        branches on noise), the crop rule runs on them, and the rect is smoothed again."""
        cfg = self.cfg
        keypoints = cand.keypoints
        smooth_cand = cand
        if keypoints is not None:
            kf = self._kp_filters.get(pid)
            if kf is None or kf[1] != keypoints.shape:
                kf = self._kp_filters[pid] = (OneEuroFilter(cfg.smooth_min_cutoff, cfg.smooth_beta, cfg.smooth_d_cutoff),
                                              keypoints.shape)
            keypoints = kf[0](keypoints.astype(np.float64), t).astype(np.float32)
            smooth_cand = Candidate(cand.box, cand.score, keypoints, cand.mask, cand.layout)
        if keypoints is not None:
            rule = self._hold_rule(pid, choose_rule(keypoints, cfg.keypoint_threshold, size))
            vis = mask_box(cand.mask) if cand.mask is not None else None
            rect = rect_for_rule(keypoints, rule, cfg.keypoint_threshold, cfg.margin, vis or cand.box, size)
        else:
            rect, rule = self.raw_rect(smooth_cand, size)
        f = self._filters.get(pid)
        if f is None:
            # the crop size changes only when the person walks towards/away from the camera, but
            # the crop rules amplify keypoint noise most in it (r = 1.45 or 2.7 x a distance):
            # smooth it SIZE_SLOWER times more than the centre
            k = np.array([1.0, 1.0, 1.0 / SIZE_SLOWER])
            f = self._filters[pid] = OneEuroFilter(cfg.smooth_min_cutoff * k, cfg.smooth_beta * k, cfg.smooth_d_cutoff)
        return state_to_rect(f(rect_to_state(rect), t)), keypoints, rule

    def _hold_rule(self, pid: int, wanted: str) -> str:
        """Rule hysteresis: switch to ``wanted`` after ``rule_switch_frames`` frames in a row."""
        cur, cand, n = self._rules.get(pid, (wanted, wanted, 0))
        if wanted == cur:
            cand, n = cur, 0
        else:
            n = n + 1 if wanted == cand else 1
            cand = wanted
            if n >= self.cfg.rule_switch_frames:
                cur, n = wanted, 0
        self._rules[pid] = (cur, cand, n)
        return cur

    def reset(self) -> None:
        """Forget ids and smoothing state (call between videos)."""
        self.tracker.reset()
        self._filters.clear()
        self._kp_filters.clear()
        self._rules.clear()
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    def candidates(self, image) -> List[Candidate]:
        cands = self.detector.detect(image)
        cands = sorted(cands, key=lambda c: -c.score)[: self.cfg.max_people]
        return cands

    def raw_rect(self, cand: Candidate, image_size=None) -> tuple:
        """Crop rect of one candidate, without smoothing, and the rule used. ``image_size``:
        (width, height) of the frame."""
        if "rect" in cand.meta:
            return tuple(cand.meta["rect"]), "full-frame"
        vis = mask_box(cand.mask) if cand.mask is not None else None
        if cand.keypoints is not None:
            return crop_rect_from_keypoints(cand.keypoints, self.cfg.keypoint_threshold, self.cfg.margin,
                                            visible_box=vis or cand.box, image_size=image_size)
        return rect_from_box(vis or cand.box), "box"

    def find(self, frame: Frame) -> List[PersonCrop]:
        if not isinstance(frame, Frame):
            raise TypeError(f"find: expected a streamrecon.types.Frame, got {type(frame).__name__}")
        cands = self.candidates(frame.image)
        ids = self.tracker.update([c.box for c in cands])
        t = frame.pts if frame.pts is not None else frame.timestamp
        out = []
        size = (frame.width, frame.height)
        for pid, cand in zip(ids, cands):
            rect, rule = self.raw_rect(cand, size)
            smoothed, keypoints, used = rect, cand.keypoints, rule
            if self.cfg.smooth:
                smoothed, keypoints, used = self._smooth(pid, cand, t, size)
            out.append(PersonCrop(person_id=pid, rect=smoothed, mask=cand.mask, keypoints=keypoints,
                                  score=float(cand.score),
                                  meta={"raw_rect": tuple(float(v) for v in rect), "crop_rule": used, "raw_crop_rule": rule,
                                        "raw_keypoints": cand.keypoints, "box": tuple(cand.box),
                                        "keypoint_layout": cand.layout}))
        live = {tr.person_id for tr in self.tracker.tracks}
        for state in (self._kp_filters, self._rules):
            for pid in [p for p in state if p not in live]:
                del state[pid]
        for pid in [p for p in self._filters if p not in live]:
            del self._filters[pid]
        return sorted(out, key=lambda c: c.person_id)
