"""A fitted body as plain numbers (the run manifest, ``people.jsonl``, the mesh stream) and back.

``to_params(fit)`` -> a JSON-able dict:
- ``betas`` [S]: shape (unit-variance PCA coordinates of ``body.model``'s asset);
- ``bones``: the names of the posed bones (``fit.POSED_BONES`` without the root), and ``pose``
  [P, 3]: their local rotations as rotation vectors (radians; anny's 'local-ref' convention; every
  other bone keeps the identity);
- ``root_R`` [3] (rotation vector: body frame -> camera-aligned metric frame), ``root_t`` [3]
  (metres);
- the weak-perspective camera ``scale`` (pixels per metre), ``tx``, ``ty`` (pixels): image x =
  scale x + tx, y = scale y + ty, z = scale (z - z_midhip) (``body.fit``'s image frame);
- quality: ``reprojection_error_pct``, ``mask_inside`` (or None), ``height_px``.

``from_params(params)`` poses the body again (``BodyModel.pose``) and returns a ``BodyFit`` whose
vertices, landmarks and joints equal the original fit's to float rounding. ``body_mesh(fit)`` is
the body as a ``Mesh`` in the image frame with the depth convention of the clothed meshes.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from .fit import POSED_BONES, BodyFit
from .model import BodyModel, matrix_to_rotvec, rotvec_to_matrix


@functools.lru_cache(maxsize=1)
def _model() -> BodyModel:
    return BodyModel()


def _round(a, digits: int) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


def to_params(fit: BodyFit, digits: int = 5) -> dict:
    """``fit`` as a JSON-able dict (module docstring), numbers rounded to ``digits`` decimals."""
    model = _model()
    idx = [model.asset.bone(n) for n in POSED_BONES[1:]]
    nan_free = lambda v: None if v is None or not math.isfinite(v) else round(float(v), 4)  # noqa: E731
    return {
        "betas": _round(fit.betas, digits),
        "bones": list(POSED_BONES[1:]),
        "pose": _round(np.stack([matrix_to_rotvec(fit.rotations[i]) for i in idx]), digits),
        "root_R": _round(matrix_to_rotvec(fit.root_R), digits),
        "root_t": _round(fit.root_t, digits),
        "scale": round(float(fit.scale), 4),
        "tx": round(float(fit.tx), 3),
        "ty": round(float(fit.ty), 3),
        "reprojection_error_pct": nan_free(fit.reprojection_error),
        "mask_inside": nan_free(fit.mask_inside),
        "height_px": round(float(fit.body_height_px), 2),
    }


def from_params(params: dict, model: Optional[BodyModel] = None) -> BodyFit:
    """The ``BodyFit`` of ``params`` (``to_params``'s dict): the body posed again. ValueError names
    a missing or malformed field."""
    model = model or _model()
    try:
        betas = np.asarray(params["betas"], np.float64)
        pose = np.asarray(params["pose"], np.float64)
        bones = list(params.get("bones", POSED_BONES[1:]))
        root_R = rotvec_to_matrix(np.asarray(params["root_R"], np.float64))
        root_t = np.asarray(params["root_t"], np.float64)
        scale, tx, ty = float(params["scale"]), float(params["tx"]), float(params["ty"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"body params: {exc}") from None
    if betas.shape != (model.n_betas,) or pose.shape != (len(bones), 3) or root_t.shape != (3,):
        raise ValueError(f"body params: expected betas [{model.n_betas}], pose [{len(bones)}, 3], root_t [3]; got "
                         f"{list(betas.shape)}, {list(pose.shape)}, {list(root_t.shape)}")
    if not (np.all(np.isfinite(betas)) and np.all(np.isfinite(pose)) and np.all(np.isfinite(root_t))
            and math.isfinite(scale) and scale > 0 and math.isfinite(tx) and math.isfinite(ty)):
        raise ValueError("body params: non-finite values or a scale <= 0")
    rotations = model.identity_pose()
    for name, rv in zip(bones, pose):
        rotations[model.asset.bone(name)] = rotvec_to_matrix(rv)
    verts, joints, lm = model.pose(betas, rotations, root_R, root_t)
    z0 = 0.5 * (lm[23, 2] + lm[24, 2])

    def image(p):
        p = np.asarray(p, np.float64)
        return np.stack([scale * p[:, 0] + tx, scale * p[:, 1] + ty, scale * (p[:, 2] - z0)], 1)

    err = params.get("reprojection_error_pct")
    return BodyFit(betas=betas, rotations=rotations, root_R=root_R, root_t=root_t, scale=scale, tx=tx, ty=ty,
                   vertices=image(verts).astype(np.float32), landmarks=image(lm), joints=image(joints),
                   reprojection_error=float("nan") if err is None else float(err), mask_inside=params.get("mask_inside"),
                   body_height_px=float(params.get("height_px", 0.0)))


def body_mesh(fit: BodyFit, rect=None):
    """The body as a ``Mesh`` in the image frame (frame pixels, z depth pixels) with the clothed
    meshes' depth origin: the body's vertex centroid at z = 0 (``body.conditioning``); ``rect``
    recorded on the mesh when given."""
    from ..types import Mesh

    v = fit.vertices.astype(np.float64).copy()
    v[:, 2] -= v[:, 2].mean()
    return Mesh(v.astype(np.float32), _model().faces, frame="image", rect=None if rect is None else tuple(rect))
