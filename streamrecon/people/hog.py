"""Box-only person detectors: the HOG + linear-SVM people detector (``hog_svm``: OpenCV 4's
``HOGDescriptor`` with its default people SVM, reimplemented in numpy, so it works with OpenCV 5),
background subtraction for a static camera, and the whole frame. No keypoints: the mask comes from
GrabCut inside the box (HOG) or the moving pixels (motion), and the crop uses the 'box' rule. A
fallback for machines without the mediapipe models; HOG finds upright, whole people only (not
seated, partial or close-up ones). One instance per thread."""
from __future__ import annotations

from typing import List

import numpy as np

from .candidates import Candidate
from .segmentation import grabcut_mask

WORK_WIDTH = 640  # HOG runs on a copy at most this wide (its cost grows with the pixels searched)
MIN_HEIGHT = 50.0  # smallest person looked for, frame pixels


class HogPeople:
    def __init__(self, min_score: float = 0.5, max_people: int = 4, with_mask: bool = True):
        from ..errors import BackendUnavailableError
        from .hog_svm import ASSET, people_svm

        try:  # the SVM ships with the package: fail now, not on the first frame
            people_svm()
        except (OSError, ValueError) as exc:
            raise BackendUnavailableError(f"hog detector: cannot read its SVM {ASSET} ({exc}); reinstall streamrecon") from None
        self.min_score, self.max_people, self.with_mask = min_score, max_people, with_mask

    def detect(self, image: np.ndarray) -> List[Candidate]:
        import cv2

        from .hog_svm import detect_people

        h, w = image.shape[:2]
        s = min(1.0, WORK_WIDTH / w)
        small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
        # SVM margin -> (0, 1) score: min_score 0.5 keeps margins above 0, OpenCV's hit threshold
        margin = float(np.log(self.min_score / (1.0 - self.min_score)) / 2.0) if 0 < self.min_score < 1 else 0.0
        hits = detect_people(small, max(MIN_HEIGHT * s, 40.0), 0.95 * small.shape[0], margin)
        out = []
        for (x0, y0, x1, y1), m in hits[: self.max_people]:
            box = (max(0.0, x0 / s), max(0.0, y0 / s), min(float(w), x1 / s), min(float(h), y1 / s))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            mask = grabcut_mask(image, box) if self.with_mask else None
            out.append(Candidate(box=box, score=float(1.0 / (1.0 + np.exp(-2.0 * m))), mask=mask))
        return out


class MotionPeople:
    """People as moving foreground on a static camera: OpenCV MOG2 background subtraction, then
    connected components. Stateful (learns the background over the video; the first
    ``warmup`` frames give nothing). No keypoints; the component is the mask."""

    def __init__(self, max_people: int = 4, min_area: float = 0.01, warmup: int = 20,
                 learning_rate: float = 0.001):
        import cv2

        self._sub = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=25, detectShadows=True)
        # After warm-up, learn slowly and require a new colour to hold 30 % of the pixel's weight
        # before it counts as background: a person standing still fades in after ~350 frames
        # (~12 s at 30 fps) instead of the default ~1 s.
        self._sub.setBackgroundRatio(0.7)
        self.learning_rate = learning_rate
        self.max_people, self.min_area, self.warmup = max_people, min_area, warmup
        self._seen = 0

    def reset(self) -> None:
        self.__init__(self.max_people, self.min_area, self.warmup, self.learning_rate)

    def detect(self, image: np.ndarray) -> List[Candidate]:
        import cv2

        rate = -1.0 if self._seen < self.warmup else self.learning_rate
        fg = self._sub.apply(np.ascontiguousarray(image[:, :, ::-1]), learningRate=rate)
        self._seen += 1
        if self._seen <= self.warmup:
            return []
        fg = (fg == 255).astype(np.uint8)  # 127 = shadow
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        fg = cv2.morphologyEx(cv2.morphologyEx(fg, cv2.MORPH_OPEN, k), cv2.MORPH_CLOSE, k, iterations=2)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        area_min = self.min_area * image.shape[0] * image.shape[1]
        comps = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= area_min]
        comps.sort(key=lambda i: -stats[i, cv2.CC_STAT_AREA])
        out = []
        for i in comps[: self.max_people]:
            x, y, w, h, area = stats[i]
            out.append(Candidate(box=(float(x), float(y), float(x + w), float(y + h)),
                                 score=float(min(1.0, area / (0.05 * image.shape[0] * image.shape[1]))),
                                 mask=labels == i))
        return out


class FullFrame:
    """'Detector' for images that show one person filling the frame (e.g. pre-cropped inputs)."""

    def detect(self, image: np.ndarray) -> List[Candidate]:
        h, w = image.shape[:2]
        s = float(max(h, w))
        # the square of side max(H, W) centred on the image: the whole frame, zero-padded
        return [Candidate(box=(0.0, 0.0, float(w), float(h)), score=1.0,
                          meta={"rect": ((w - s) / 2.0, (h - s) / 2.0, s, s)})]
