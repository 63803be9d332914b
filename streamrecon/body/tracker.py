"""The body of every person in a video, frame after frame: each person (by ``person_id``) is
fitted from their BlazePose keypoints and world landmarks, starting from their previous frame's fit
(``BodyFitter``: a few warm Gauss-Newton steps instead of the cold inverse-kinematics start), and
smoothed over time (``BodySmoother``). A person unseen for ``max_gap_s`` starts cold again. One
image (``reconstruct``) is the same with one frame and the offline settings
(``FitConfig.for_reconstruct``).

Owned by one thread: the people stage's (it runs right after the person finder, on its thread).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from .fit import BodyFit, BodyFitter, BodySmoother, FitConfig

log = logging.getLogger(__name__)


@dataclass
class _Track:
    raw: BodyFit
    """the last unsmoothed fit (the next frame's start)"""
    smoother: BodySmoother
    last_t: float


class BodyTracker:
    """``update(crops, t)`` sets ``crop.body`` (a ``BodyFit``, frame pixels) on each person that
    has 33 keypoints and world landmarks (BlazePose's), None on the others. ``seconds``: time
    spent fitting in the last update."""

    def __init__(self, config: FitConfig = FitConfig(), smooth: bool = True, max_gap_s: float = 1.0) -> None:
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s: expected > 0, got {max_gap_s}")
        self.fitter = BodyFitter(config=config)
        self.smooth = smooth
        self.max_gap_s = float(max_gap_s)
        self._tracks: Dict[int, _Track] = {}
        self.seconds = 0.0
        self._warned = False

    @property
    def faces(self) -> np.ndarray:
        """[F, 3] int32 triangles of the body mesh (``BodyFit.vertices`` index them)."""
        return self.fitter.model.faces

    def update(self, crops: List, t: float) -> List:
        """Fit every person of one frame (``t``: its time in seconds); returns ``crops``."""
        t0 = time.perf_counter()
        seen = set()
        for crop in crops:
            crop.body = self._fit_one(crop, t)
            if crop.body is not None:
                seen.add(crop.person_id)
        for pid in [p for p, tr in self._tracks.items() if p not in seen and t - tr.last_t > self.max_gap_s]:
            del self._tracks[pid]
        self.seconds = time.perf_counter() - t0
        return crops

    def _fit_one(self, crop, t: float) -> Optional[BodyFit]:
        kp, world = crop.keypoints, getattr(crop, "world_landmarks", None)
        if kp is None or world is None or np.shape(kp) != (33, 3) or np.shape(world) != (33, 3):
            return None
        track = self._tracks.get(crop.person_id)
        if track is not None and not 0 < t - track.last_t <= self.max_gap_s:
            track = None  # a new person with a reused id, a gap, or time going backwards
        try:
            raw = self.fitter.fit(kp, world, mask=crop.mask, previous=None if track is None else track.raw)
        except ValueError as exc:  # non-finite or degenerate landmarks: no body this frame
            if not self._warned:
                log.warning("body fit failed (%s); this person gets no body this frame", exc)
                self._warned = True
            return None
        if track is None:
            track = _Track(raw, BodySmoother(self.fitter), t)
            self._tracks[crop.person_id] = track
        track.raw, track.last_t = raw, t
        return track.smoother(raw, t) if self.smooth else raw
