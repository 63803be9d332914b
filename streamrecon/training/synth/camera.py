"""The orthographic crop camera: world metres (anny frame, z up, person facing -y) -> crop frame.

The crop frame is the one the network is queried in (``streamrecon.types``): x to the right
in the image, y up, z away from the camera, [-1, 1] across the square crop. The camera looks at the
person after a yaw ``theta`` about the vertical axis (theta = 0: the person faces the camera):

    v = Rz(theta) @ p_world                     (turn the person)
    crop = ((v_x - cx) / r, (v_z - cy) / r, (v_y - cz) / r)

so image x = the person's left when facing the camera, and +z = the person's back. (cx, cy) and r
follow PIFuHD's crop rule on the silhouette's bounding box (r = 0.65 max(w, h), with jitter), cz
is the depth of the body's vertex centroid. The map is a similarity with a reflection
(determinant < 0), so triangle winding must be reversed to stay outward in the crop frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropCamera:
    """``matrix`` [4, 4]: world metres -> crop frame (homogeneous); ``crop_per_metre`` = 1 / r."""

    matrix: np.ndarray
    yaw: float
    crop_per_metre: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] world metres -> [N, 3] crop frame."""
        return points @ self.matrix[:3, :3].T + self.matrix[:3, 3]


def rot_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# v = (x, y, z) world-after-yaw -> (x, z, y) crop axes before scaling.
_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def make_camera(points_world: np.ndarray, yaw: float, rng: np.random.Generator | None = None,
                scale_jitter: float = 0.05, shift_jitter: float = 0.03) -> CropCamera:
    """Camera framing ``points_world`` (the body's vertices) after ``yaw`` with PIFuHD's crop rule.
    ``rng`` None = no jitter (evaluation)."""
    rot = _AXES @ rot_z(yaw)
    v = points_world @ rot.T
    lo, hi = v.min(0), v.max(0)
    cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2
    r = 0.65 * max(hi[0] - lo[0], hi[1] - lo[1])
    if rng is not None:
        r *= float(np.exp(rng.uniform(-scale_jitter, scale_jitter)))
        cx += float(rng.uniform(-shift_jitter, shift_jitter)) * r
        cy += float(rng.uniform(-shift_jitter, shift_jitter)) * r
    cz = float(v[:, 2].mean())
    m = np.eye(4)
    m[:3, :3] = rot / r
    m[:3, 3] = -np.array([cx, cy, cz]) / r
    return CropCamera(m, float(yaw), 1.0 / r)
