"""Whole-person segmentation with mediapipe's selfie-segmentation model (``selfie_segmentation.tflite``,
bundled in the same ``mediapipe==0.10.21`` wheel as the BlazePose models), run by LiteRT.

The model takes a 256x256 RGB image in [0, 1] and returns a 256x256 person probability for every
person in view. It is trained on people filling the frame, so it is run on crops: each person's
BlazePose ROI and a square around the person's box (see ``group_matrix``), edge-replicated where
they leave the frame. Its output is used as logits, warped back to frame pixels
(``SelfieSegmenter.logits``), and fused with the BlazePose ROI masks in
``segmentation.fuse_person_masks``.

Measured on the labelme examples (docs/people.md): the BlazePose ROI mask alone misses limbs cut
by the ROI or the image edge and bleeds onto furniture in crowded ROIs; the fused mask holds
person-mask IoU >= 0.85 on both photos.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np

from ..errors import BackendUnavailableError
from .affine import invert_affine
from .litert import interpreter, mediapipe_model

SIZE = 256
MIN_LOGIT = -20.0


def model_path() -> str:
    """``selfie_segmentation.tflite`` inside the installed mediapipe wheel; BackendUnavailableError
    when absent."""
    return mediapipe_model("selfie_segmentation", "selfie_segmentation.tflite", what="selfie segmentation")


def prob_to_logit(prob: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps] (float32)."""
    p = np.clip(prob.astype(np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p)).astype(np.float32)


def group_matrix(boxes: Iterable, pad: float = 0.25, size: int = SIZE) -> Optional[np.ndarray]:
    """[2, 3] affine map from tensor pixels (u, v) in [0, size) to frame pixels for the square crop
    around all ``boxes`` ((x0, y0, x1, y1) frame pixels): their bounding box grown by ``pad`` x its
    width/height on each side, then squared about its centre (no stretching: people keep their
    aspect ratio). The square may leave the frame (the crop is zero-padded there). None when
    there are no boxes."""
    boxes = np.asarray(list(boxes), np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    side = max(w, h) * (1.0 + 2.0 * pad)
    k = side / size
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return np.array([[k, 0.0, cx - side / 2.0], [0.0, k, cy - side / 2.0]])


class SelfieSegmenter:
    """Runs the selfie-segmentation model on crops of a frame (one thread, like BlazePose)."""

    def __init__(self, num_threads: int = 2):
        self._it = interpreter(model_path(), num_threads, "selfie segmentation")
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]
        shape = tuple(self._it.get_input_details()[0]["shape"])
        if shape != (1, SIZE, SIZE, 3):
            raise BackendUnavailableError(f"selfie segmentation: unexpected model input {shape}, expected (1, 256, 256, 3)")

    def crop_prob(self, crop: np.ndarray) -> np.ndarray:
        """Person probability [256, 256] of a 256x256 uint8 RGB crop."""
        self._it.set_tensor(self._in, (crop.astype(np.float32) * (1.0 / 255.0))[None])
        self._it.invoke()
        return self._it.get_tensor(self._out)[0, :, :, 0].copy()

    def logits(self, image: np.ndarray, tensor_to_frame: np.ndarray) -> np.ndarray:
        """Person logits [H, W] float32 in frame pixels from the model run on the crop that
        ``tensor_to_frame`` ([2, 3], tensor pixel -> frame pixel, e.g. ``blazepose.roi_matrix``
        or ``group_matrix``) maps out; MIN_LOGIT outside the crop."""
        import cv2

        h, w = image.shape[:2]
        m = np.asarray(tensor_to_frame, np.float64)
        # parts of the crop outside the frame repeat its edge pixels: black padding makes the model
        # mark background next to the person (grass below the tripod in camera.png, the wall
        # beside the astronaut's head), edge-replication does not
        crop = cv2.warpAffine(image, invert_affine(m), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        logit = prob_to_logit(self.crop_prob(crop))
        return cv2.warpAffine(logit, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=MIN_LOGIT)


def roi_polygon(tensor_to_frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """[4, 2] frame-pixel corners of the crop that ``tensor_to_frame`` maps out."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [size, size, 1], [0, size, 1]], np.float64)
    return corners @ np.asarray(tensor_to_frame, np.float64).T


def logit_threshold(p: float) -> float:
    """Logit of a probability threshold (0 for p outside (0, 1))."""
    return math.log(p / (1.0 - p)) if 0.0 < p < 1.0 else 0.0
