"""OpenCV's HOG + linear-SVM people detector (ships inside opencv; no model files). Boxes only:
the mask comes from GrabCut inside the box and there are no keypoints, so the crop uses the
'box' rule. A fallback for machines without the mediapipe models; weaker on seated, partial or
close-up people. One instance per thread."""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import BackendUnavailableError
from .candidates import Candidate
from .segmentation import grabcut_mask

WORK_WIDTH = 480  # HOG runs on a copy this wide: its window is 64x128, so people must be >= ~128 px


class HogPeople:
    def __init__(self, min_score: float = 0.5, max_people: int = 4, with_mask: bool = True):
        import cv2

        if not hasattr(cv2, "HOGDescriptor"):
            raise BackendUnavailableError(
                f"hog detector: OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it out of the main "
                "module); install `opencv-python-headless<5` or use `--detector mediapipe`"
            )
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_score, self.max_people, self.with_mask = min_score, max_people, with_mask

    def detect(self, image: np.ndarray) -> List[Candidate]:
        import cv2

        h, w = image.shape[:2]
        s = min(1.0, WORK_WIDTH / w)
        small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
        # pad so that people filling the frame still fit a detection window
        pad = int(0.15 * max(small.shape[:2]))
        small = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rects, weights = self._hog.detectMultiScale(np.ascontiguousarray(small[:, :, ::-1]), winStride=(8, 8),
                                                    padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return []
        weights = np.asarray(weights, np.float64).reshape(-1)
        # SVM margins -> (0, 1) scores
        scores = 1.0 / (1.0 + np.exp(-2.0 * weights))
        keep = cv2.dnn.NMSBoxes([list(map(int, r)) for r in rects], scores.tolist(), self.min_score, 0.4)
        out = []
        for k in np.asarray(keep).reshape(-1)[: self.max_people]:
            x, y, bw, bh = (float(v) for v in rects[k])
            # HOG windows have ~1/8 margin around the body each side
            box = ((x - pad + 0.12 * bw) / s, (y - pad + 0.06 * bh) / s, (x - pad + 0.88 * bw) / s, (y - pad + 0.94 * bh) / s)
            box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            mask = grabcut_mask(image, box) if self.with_mask else None
            out.append(Candidate(box=box, score=float(scores[k]), mask=mask))
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
