"""BlazePose's world landmarks: decoding the landmark model's ``Identity_4`` output.

``pose_landmark_full.tflite`` returns, besides the image landmarks, a [1, 117] tensor: 39 points
x 3 (x, y, z) in metres with the origin between the hips, written in the frame of the rotated
region of interest the model was run on (the first 33 are the body landmarks, the last 6
auxiliary). mediapipe (``WorldLandmarkProjectionCalculator``) turns them into the image's axes by
rotating x and y by the ROI's rotation, the same rotation that maps ROI-tensor pixels to frame
pixels (``people.blazepose.roi_matrix``); z is unchanged. Not rotating leaves a direction error of
the ROI's tilt.

World frame of the result: metres, x = image right, y = image down, z = away from the camera,
origin midway between the hips (metric for an average body: it does not tell the person's height).
"""
from __future__ import annotations

import math

import numpy as np

NUM_WORLD = 39
NUM_BODY = 33


def world_landmarks_from_roi(raw117, roi_rotation_rad: float) -> np.ndarray:
    """[33, 3] float64 world landmarks (x right, y down, z away; metres, hips at the origin) from
    the landmark model's raw ``Identity_4`` output ``raw117`` ([117] or [1, 117]: 39 x (x, y, z) in
    the ROI's frame) and the ROI's rotation in radians (``Roi.rotation``). ValueError names the
    argument on bad input."""
    a = np.asarray(raw117, dtype=np.float64)
    if a.size != NUM_WORLD * 3:
        raise ValueError(f"raw117: expected {NUM_WORLD * 3} values (39 x 3), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("raw117: contains non-finite values")
    try:
        rot = float(roi_rotation_rad)
    except (TypeError, ValueError):
        raise ValueError(f"roi_rotation_rad: expected a number, got {roi_rotation_rad!r}") from None
    if not math.isfinite(rot):
        raise ValueError(f"roi_rotation_rad: expected a finite angle, got {rot}")
    p = a.reshape(NUM_WORLD, 3)[:NUM_BODY]
    c, s = math.cos(rot), math.sin(rot)
    out = np.empty((NUM_BODY, 3))
    out[:, 0] = c * p[:, 0] - s * p[:, 1]
    out[:, 1] = s * p[:, 0] + c * p[:, 1]
    out[:, 2] = p[:, 2]
    return out
