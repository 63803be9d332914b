"""Synthetic BlazePose inputs made from our own posed body (so the fitter's target is exactly
representable), for the body tests."""
from __future__ import annotations

import numpy as np

from streamrecon.body.model import BodyModel, rotvec_to_matrix

SCALE = 400.0
"""pixels per metre of the synthetic camera"""
OFFSET = np.array([320.0, 400.0])
"""image position of the camera frame's origin (pixels)"""


def random_pose(model: BodyModel, rng: np.random.Generator, sigma: float = 0.35):
    """(betas [S], rotations [J, 3, 3], root_R [3, 3]): a random shape (N(0, 1) betas) and a random
    pose of the fitter's bones, elbows and knees bent inside their limits, the person roughly
    facing the camera."""
    from streamrecon.body.fit import CAMERA_FROM_BODY, POSED_BONES

    a = model.asset
    rots = np.tile(np.eye(3), (model.n_bones, 1, 1))
    limits = list(a.limit_bones)
    for name in POSED_BONES[1:]:
        b = a.bone(name)
        small = name.startswith(("spine", "neck", "head", "clavicle"))
        r = rng.normal(0.0, sigma * (0.3 if small else 1.0), 3)
        if name.startswith(("lowerarm01", "lowerleg01")):
            m = limits.index(b)
            comp = np.array([a.limit_lo[m][0] + rng.uniform(0.2, 1.7), rng.normal(0, 0.05), rng.normal(0, 0.05)])
            r = a.limit_frames[m] @ comp
        rots[b] = rotvec_to_matrix(r)
    root_R = CAMERA_FROM_BODY @ rotvec_to_matrix(rng.normal(0.0, 0.3, 3))
    return rng.normal(0.0, 1.0, model.n_betas), rots, root_R


def synthetic_inputs(model: BodyModel, betas, rots, root_R, rng, noise_m: float = 0.0):
    """BlazePose-like inputs of a posed body: (keypoints [33, 3] pixels + visibility 1,
    world [33, 3] metres with the mid-hip at the origin, true vertices [V, 3] and joints [J, 3] in
    the fit's image frame). ``noise_m``: Gaussian noise (std, per coordinate) added to the world
    landmarks in metres and to the keypoints in pixels at the same scale."""
    v, j, lm = model.pose(betas, rots, root_R, np.zeros(3))
    mid = 0.5 * (lm[23] + lm[24])
    world = lm - mid + rng.normal(0.0, noise_m, lm.shape)
    kp = np.ones((33, 3))
    kp[:, :2] = SCALE * lm[:, :2] + OFFSET + rng.normal(0.0, noise_m * SCALE, (33, 2))

    def image(p):
        return np.concatenate([SCALE * p[:, :2] + OFFSET, SCALE * (p[:, 2:] - mid[2])], 1)

    return kp, world, image(v.astype(np.float64)), image(j)
