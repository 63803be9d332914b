"""The body prior's inputs for a synthetic view, with the errors a real detector makes: the true
BlazePose landmarks of the posed body (our asset's regressors on anny's vertices) in the view,
perturbed at the level BlazePose showed on shaded renders of synthetic people, then fitted by the
product's ``BodyFitter`` and rendered into the network's body channels
(``streamrecon.body.conditioning``) exactly as at run time. The network so learns the fitter's
real errors, not a perfect body.

Measured noise (``benchmarks/landmark_noise.py``: BlazePose on 60 shaded renders at 512 px of
training-like subjects, data seed 98, yaw within +-90 degrees; 57 found, of which 38 with the
right pose, 16 with left and right swapped (front and back confused: the renders have no face)
and 3 wrong): per-coordinate robust sigma (1.4826 x MAD) of the 2D keypoints about 1.0-1.4% of
body height on the face, torso, legs and feet, 2-3% on the arms and 3-4% on the hands; of the
world landmarks (scale-aligned) 3-4 cm across the image on the torso and face, 6-10 cm on the arms,
and in depth 4-8 cm on the face and shoulders, 10-13 cm at elbows and knees, 20-35 cm at wrists
and hands, 12-21 cm at ankles and feet.

Frames: the view's "image" is the crop itself, the rect (0, 0, R, R) of the ``types`` image frame
(x_img = (x + 1) / 2 R, y_img = (1 - y) / 2 R for crop-frame x, y).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...body.model import BLAZEPOSE_MIRROR

# per landmark (BlazePose order): 2D sigma per coordinate, % of body height
SIGMA_2D_PCT = np.array([1.10, 0.98, 1.15, 1.14, 0.96, 1.03, 1.07, 1.11, 1.38, 1.18, 1.16, 1.89, 2.04, 2.07,
                         2.98, 2.89, 2.60, 3.15, 3.18, 2.88, 2.41, 3.98, 3.07, 1.35, 1.54, 1.45, 1.39, 1.35,
                         0.84, 1.82, 1.16, 1.24, 1.46])
# per landmark: world-landmark sigma per coordinate (x right, y down, z away), metres
SIGMA_3D_M = 0.01 * np.array([
    [3.8, 3.5, 7.9], [3.2, 3.7, 6.8], [3.1, 3.9, 7.5], [3.8, 4.1, 7.5], [3.5, 3.5, 7.4], [3.5, 3.3, 6.2],
    [3.8, 3.2, 6.6], [3.4, 4.2, 6.3], [4.0, 3.0, 5.9], [2.6, 3.3, 6.0], [2.4, 3.2, 7.0], [5.7, 3.7, 4.3],
    [6.0, 2.7, 4.4], [6.2, 5.3, 10.6], [10.4, 4.0, 12.9], [6.1, 4.7, 24.9], [8.7, 4.8, 30.6], [7.6, 4.4, 26.7],
    [9.3, 5.0, 36.2], [6.9, 5.3, 26.4], [8.0, 5.5, 34.1], [10.2, 6.9, 24.5], [10.2, 5.2, 28.0], [2.4, 0.8, 1.5],
    [2.4, 0.8, 1.5], [3.2, 1.5, 8.2], [2.9, 2.9, 10.3], [3.1, 3.9, 11.7], [2.9, 4.1, 20.9], [3.3, 4.4, 11.7],
    [5.7, 4.5, 21.3], [8.0, 6.5, 12.8], [6.6, 4.9, 16.2]])
SWAP_SHARE = 0.05
"""share of views whose landmarks come left-right swapped (a detector confusing front and back)"""


@dataclass(frozen=True)
class ViewLandmarks:
    """One view's detector-like inputs: ``keypoints`` [33, 3] (x, y in the view's pixels,
    visibility), ``world`` [33, 3] metres (x right, y down, z away; mid-hip at the origin),
    ``height_px`` the body's height in the view's pixels."""

    keypoints: np.ndarray
    world: np.ndarray
    height_px: float


@functools.lru_cache(maxsize=1)
def _body():
    from ...body.model import BodyModel

    return BodyModel()


def body_vertices(anny_vertices: np.ndarray) -> np.ndarray:
    """[V, 3] float32 the body model's vertices (its faces: ``BodyModel.faces``) of a posed anny
    body ([V_anny, 3], its full default mesh)."""
    return np.asarray(anny_vertices, np.float32)[_body().asset.anny_vertex_index]


def true_landmarks(anny_vertices: np.ndarray) -> np.ndarray:
    """[33, 3] BlazePose landmarks (world metres) of a posed anny body ([V_anny, 3], its full
    default mesh as ``synth.bodies`` makes it)."""
    model = _body()
    return model.landmarks(np.asarray(anny_vertices, np.float64)[model.asset.anny_vertex_index])


def view_landmarks(landmarks_world: np.ndarray, cam, res: int) -> ViewLandmarks:
    """The true landmarks as a detector would report them in the view of ``cam`` (a
    ``synth.camera.CropCamera``) at ``res`` pixels, visibility 1."""
    lc = cam.apply(landmarks_world)  # crop frame: x right, y up, z away
    kp = np.stack([(lc[:, 0] + 1.0) * 0.5 * res, (1.0 - lc[:, 1]) * 0.5 * res, np.ones(len(lc))], 1)
    metric = np.stack([lc[:, 0], -lc[:, 1], lc[:, 2]], 1) / cam.crop_per_metre
    metric -= 0.5 * (metric[23] + metric[24])
    height_px = float(lc[:, 1].max() - lc[:, 1].min()) * 0.5 * res
    return ViewLandmarks(kp, metric, height_px)


def perturb(v: ViewLandmarks, rng: np.random.Generator, noise: float = 1.0, swap_share: float = SWAP_SHARE) -> ViewLandmarks:
    """``v`` with the measured detector noise times ``noise`` (module docstring), a world scale
    off by up to 5%, visibilities in [0.85, 1] and, in a share ``swap_share`` of calls, left
    and right swapped."""
    kp = v.keypoints.copy()
    world = v.world * float(rng.uniform(0.95, 1.05))
    kp[:, :2] += rng.normal(size=(33, 2)) * (noise * SIGMA_2D_PCT[:, None] * 0.01 * max(v.height_px, 1.0))
    world = world + rng.normal(size=(33, 3)) * (noise * SIGMA_3D_M)
    kp[:, 2] = rng.uniform(0.85, 1.0, 33)
    if rng.random() < swap_share:
        idx = list(BLAZEPOSE_MIRROR)
        kp[:, :2], world = kp[idx, :2], world[idx]
    world -= 0.5 * (world[23] + world[24])
    return ViewLandmarks(kp, world, v.height_px)


@functools.lru_cache(maxsize=1)
def _fitter():
    from ...body.fit import BodyFitter, FitConfig

    return BodyFitter(_body(), FitConfig(quality=False))


def fitted_body_maps(lm: ViewLandmarks, res: int) -> Tuple[np.ndarray, Optional[object]]:
    """The body the product's fitter makes of ``lm`` (cold, real-time settings), as the network's
    body channels: [3, res, res] float32 (``body.conditioning.BodyMaps.stack``) and the fit."""
    from ...body.conditioning import body_maps

    fit = _fitter().fit(lm.keypoints, lm.world)
    return body_maps(fit, _body().faces, (0.0, 0.0, float(res), float(res)), res).stack(), fit
