"""Scenes made from our own body model (no anny needed): a fitted body as the manifest holds it
(``body.params`` dicts), a "clothed" mesh = that body pushed out along its normals, flattened
meshes, and run directories of a short clip of them, for the 3D evaluate tests."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

W, H = 160, 210
RECT = (-20.0, 5.0, 200.0, 200.0)
SCALE = 100.0  # pixels per metre: a ~1.7 m person is ~170 px tall


def body_params(seed: int = 0, sigma: float = 0.25, t: float = 0.0, seed_to: Optional[int] = None,
                tx: float = 80.0, ty: float = 100.0, scale: float = SCALE) -> dict:
    """A fitted body as ``body.params.to_params`` writes it: the mean shape in a random pose of
    the fitter's bones (``seed``), or the pose a share ``t`` of the way to pose ``seed_to``,
    facing the camera, ``scale`` pixels per metre, the root at (``tx``, ``ty``)."""
    from streamrecon.body.fit import CAMERA_FROM_BODY, POSED_BONES
    from streamrecon.body.model import matrix_to_rotvec

    def pose(s):
        return np.random.default_rng(s).normal(0.0, sigma, (len(POSED_BONES) - 1, 3))

    p = pose(seed) if seed_to is None else (1 - t) * pose(seed) + t * pose(seed_to)
    return {"betas": [0.0] * 10, "bones": list(POSED_BONES[1:]), "pose": p.tolist(),
            "root_R": matrix_to_rotvec(CAMERA_FROM_BODY).tolist(), "root_t": [0.0, 0.0, 0.0],
            "scale": scale, "tx": tx, "ty": ty, "reprojection_error_pct": 1.0, "mask_inside": 1.0, "height_px": 170.0}


def inflated(vertices: np.ndarray, faces: np.ndarray, d: float) -> np.ndarray:
    """``vertices`` moved ``d`` along their (outward, area-weighted) normals."""
    from streamrecon.eval.metrics.geometry import outward_faces
    from streamrecon.eval.render.shading import vertex_normals

    return vertices + d * vertex_normals(vertices, outward_faces(vertices, faces)).astype(np.float64)


def flattened(vertices: np.ndarray, share: float = 0.2) -> np.ndarray:
    v = np.asarray(vertices, np.float64).copy()
    c = v[:, 2].mean()
    v[:, 2] = c + share * (v[:, 2] - c)
    return v


def clothed(params: dict, cloth_cm: float = 2.0):
    """(vertices [V, 3] image frame, faces [F, 3]): the body of ``params`` with clothes
    ``cloth_cm`` thick, in the depth origin of the clothed meshes."""
    from streamrecon.body.params import body_mesh, from_params

    m = body_mesh(from_params(params))
    v = m.vertices.astype(np.float64)
    return inflated(v, m.faces, cloth_cm / 100.0 * params["scale"]), m.faces.astype(np.int64)


def silhouette(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[H, W] bool: the mesh's silhouette in the frame (the person mask an ideal finder gives)."""
    from streamrecon.eval.render import rasterize

    return rasterize(vertices, faces, H, W).mask


def body_run_dir(root: Path, n_frames: int = 4, flat: Sequence[int] = (), bodies: bool = True,
                 mesh_frame: str = "image") -> Path:
    """A run directory of a person moving from pose 1 to pose 2 over ``n_frames`` frames, meshes =
    the body with 2 cm clothes (frames in ``flat``: squashed to 20% depth), masks = their
    silhouettes, bodies in the manifest unless ``bodies`` is False."""
    from streamrecon.types import Mesh

    from run_dirs import FrameRecord, PersonRecord, write_run_dir

    recs = []
    for k in range(n_frames):
        params = body_params(1, t=k / max(n_frames - 1, 1), seed_to=2)
        v, f = clothed(params)
        mask = silhouette(v, f)
        if k in flat:
            v = flattened(v)
        image = np.full((H, W, 3), 40, np.uint8)
        image[mask] = 200
        recs.append(FrameRecord(k, image, [PersonRecord(Mesh(v, f, frame="image"), RECT, mask,
                                                        params if bodies else None)], time=k / 25.0))
    return write_run_dir(root, recs, mesh_frame=mesh_frame)
