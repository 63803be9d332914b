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
SCENE_CUT = 40.0  # mean |difference| (0..255) of two frames' 32x24 grey thumbnails that starts a new scene
BODY_HEIGHT_M = 1.7  # world landmarks are smoothed in pixels of this body height (as the keypoints are)


def make_detector(cfg: PeopleConfig):
    """The detector backend named by ``cfg.detector``. 'auto' falls back from mediapipe to hog
    with one warning naming what is missing; an explicit 'mediapipe' that cannot load raises
    BackendUnavailableError with the install command."""
    if cfg.detector in ("auto", "mediapipe"):
        try:
            from .blazepose import BlazePose

            return BlazePose(num_threads=cfg.num_threads, min_score=cfg.min_score, mask_threshold=cfg.mask_threshold,
                             max_people=cfg.max_people, segmentation=cfg.segmentation,
                             detect_every=cfg.detect_every, min_height=cfg.min_height)
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
    person mask (frame pixels), keypoints, world landmarks (metres, hips at the origin), score and
    a stable ``person_id``. ``meta`` holds ``raw_rect`` / ``raw_crop_rule`` / ``raw_keypoints`` /
    ``raw_world_landmarks`` (this frame alone, before smoothing and rule hysteresis),
    ``crop_rule`` (the rule behind ``rect``), ``box`` (the person's box) and ``height_px`` (the
    body's height in frame pixels). A new scene (``_scene_cut``: first frame, size change, a frame
    unlike the last) starts tracking over."""

    def __init__(self, cfg: PeopleConfig = PeopleConfig()):
        self.cfg = cfg
        self.detector = make_detector(cfg)
        self.tracker = IouTracker(cfg.track_iou, cfg.track_max_missed)
        self._filters: Dict[int, OneEuroFilter] = {}
        self._kp_filters: Dict[int, tuple] = {}
        self._world_filters: Dict[int, tuple] = {}
        self._rules: Dict[int, tuple] = {}
        self._thumb = None
        self.scene_cuts = 0  # frames that started a new scene (size change or cut), for tests

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

    def _smooth_world(self, pid: int, world: np.ndarray, height_px: float, t: float) -> np.ndarray:
        """World landmarks [33, 3] (metres) of person ``pid`` through the keypoints' One-Euro
        filter settings, applied in pixels: scaled by this person's pixels per metre (fixed when
        they are first seen), so both follow the same cutoffs."""
        cfg = self.cfg
        wf = self._world_filters.get(pid)
        if wf is None:
            wf = self._world_filters[pid] = (OneEuroFilter(cfg.smooth_min_cutoff, cfg.smooth_beta, cfg.smooth_d_cutoff),
                                             max(height_px, 1.0) / BODY_HEIGHT_M)
        f, k = wf
        return (f(world.astype(np.float64) * k, t) / k).astype(np.float32)

    def _scene_cut(self, image: np.ndarray) -> bool:
        """True on the first frame, a change of frame size, or a frame unlike the previous one
        (mean absolute difference of 32x24 grey thumbnails above ``SCENE_CUT``): the people
        tracked so far are not in it (an image folder of unrelated photos, a cut in a video)."""
        import cv2

        thumb = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (32, 24), interpolation=cv2.INTER_AREA)
        prev, self._thumb = self._thumb, (image.shape[:2], thumb.astype(np.float32))
        if prev is None or prev[0] != image.shape[:2]:
            return True
        return float(np.abs(prev[1] - self._thumb[1]).mean()) > SCENE_CUT

    def _new_scene(self) -> None:
        """Forget the tracked people and their smoothing (ids keep counting up)."""
        self.tracker.forget()
        self._filters.clear()
        self._kp_filters.clear()
        self._world_filters.clear()
        self._rules.clear()
        if hasattr(self.detector, "reset"):
            self.detector.reset()

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
        self._new_scene()
        self.tracker.reset()
        self._thumb = None

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
        if self._scene_cut(frame.image):
            self.scene_cuts += 1
            if self.scene_cuts > 1:
                log.debug("frame %d: a new scene (size change or cut): tracking starts over", frame.index)
            self._new_scene()
        cands = self.candidates(frame.image)
        ids = self.tracker.update([c.box for c in cands])
        t = frame.pts if frame.pts is not None else frame.timestamp
        out = []
        size = (frame.width, frame.height)
        for pid, cand in zip(ids, cands):
            rect, rule = self.raw_rect(cand, size)
            smoothed, keypoints, used = rect, cand.keypoints, rule
            body = (mask_box(cand.mask) if cand.mask is not None else None) or cand.box
            height_px = float(body[3] - body[1])
            world = cand.world
            if self.cfg.smooth:
                smoothed, keypoints, used = self._smooth(pid, cand, t, size)
                if world is not None:
                    world = self._smooth_world(pid, world, height_px, t)
            out.append(PersonCrop(person_id=pid, rect=smoothed, mask=cand.mask, keypoints=keypoints,
                                  score=float(cand.score), world_landmarks=world,
                                  meta={"raw_rect": tuple(float(v) for v in rect), "crop_rule": used, "raw_crop_rule": rule,
                                        "raw_keypoints": cand.keypoints, "raw_world_landmarks": cand.world,
                                        "box": tuple(cand.box), "height_px": height_px,
                                        "keypoint_layout": cand.layout}))
        live = {tr.person_id for tr in self.tracker.tracks}
        for state in (self._kp_filters, self._rules, self._world_filters):
            for pid in [p for p in state if p not in live]:
                del state[pid]
        for pid in [p for p in self._filters if p not in live]:
            del self._filters[pid]
        return sorted(out, key=lambda c: c.person_id)
