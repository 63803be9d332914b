"""The reference's mesh path, step for step (``lib/mesh_util.py`` ``reconstruction`` and
``lib/sdf.py`` ``eval_grid_octree`` of facebookresearch/pifuhd), kept as the slow,
obviously-equivalent twin of the fast reconstruction (``streamrecon.recon``).

- Grid: ``resolution`` points per axis at index i -> 2 i / resolution - 1 (the +1 face is never
  reached), mapped through the inverse calibration diag(1, -1, 1): crop-frame point
  (2i/R - 1, -(2j/R - 1), 2k/R - 1).
- Octree: evaluate every ``step``-th point from step = R // init_resolution down to 1; a cell
  whose 8 corners spread less than ``threshold`` is filled with the mid-range of its corners
  (cells are visited in index order, later cells overwrite shared faces). Points on the last index
  plane of each axis are never evaluated and stay 0. Network batches of ``num_samples`` points.
- Marching cubes (scikit-image, Lewiner) at ``level``; vertices mapped back to the crop frame;
  faces reversed because that map has a negative determinant. ``reconstruct_reference`` returns
  the faces in the order the reference writes them to its OBJ (its writer swaps two indices),
  which is outward counter-clockwise in crop-frame coordinates.

Everything is float64 as in the reference; the network sees float32 points.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np

from ...occupancy.config import LEVEL
from ...types import Mesh

log = logging.getLogger(__name__)

EvalFn = Callable[[np.ndarray], np.ndarray]
"""points [3, M] float64 crop frame -> occupancy [M]."""

CALIB = np.diag([1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ReferenceReconConfig:
    """Knobs of the reference mesh path (the reference's values are the defaults)."""

    resolution: int = 512
    """grid points per axis."""
    init_resolution: int = 64
    """coarsest octree grid (points per axis); the first step is resolution // init_resolution."""
    threshold: float = 0.05
    """a cell whose corner values spread less than this is filled, not subdivided."""
    num_samples: int = 50_000
    """points per network batch."""
    level: float = LEVEL
    """iso level for marching cubes."""


def reference_grid(resolution: int) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (coords [3, R, R, R] float64 crop-frame points, index->grid matrix [4, 4]).
    The matrix maps marching-cubes index coordinates to the grid *before* the inverse
    calibration (the reference's ``create_grid`` with the default box [-1, 1]^3)."""
    R = int(resolution)
    mat = np.eye(4)
    mat[0, 0] = mat[1, 1] = mat[2, 2] = 2.0 / R
    mat[0:3, 3] = -1.0
    # The reference multiplies [3, R^3] index arrays by these diagonal matrices; the products
    # with the zero entries are exact, so filling each axis by broadcasting gives the same
    # float64 values without three extra R^3 copies (3.2 GB each at R = 512).
    line = np.arange(R, dtype=np.float64) * mat[0, 0] + mat[0, 3]
    coords = np.empty((3, R, R, R))
    sign = np.diag(np.linalg.inv(CALIB))[:3]
    coords[0] = (sign[0] * line)[:, None, None]
    coords[1] = (sign[1] * line)[None, :, None]
    coords[2] = (sign[2] * line)[None, None, :]
    return coords, mat


def batch_eval(points: np.ndarray, eval_fn: EvalFn, num_samples: int) -> np.ndarray:
    """Evaluate points [3, M] in consecutive batches of ``num_samples`` -> float64 [M]."""
    n = points.shape[1]
    out = np.zeros(n)
    for start in range(0, n, num_samples):
        out[start:start + num_samples] = eval_fn(points[:, start:start + num_samples])
    return out


def eval_grid_octree(coords: np.ndarray, eval_fn: EvalFn, init_resolution: int = 64,
                     threshold: float = 0.05, num_samples: int = 50_000) -> Tuple[np.ndarray, List[int]]:
    """The reference's coarse-to-fine grid evaluation. Returns (values [R, R, R] float64, the
    number of points evaluated at each step)."""
    shape = coords.shape[1:4]
    sdf = np.zeros(shape)
    todo = np.zeros(shape, dtype=bool)
    todo[:-1, :-1, :-1] = True
    grid_mask = np.zeros(shape, dtype=bool)
    step = shape[0] // init_resolution
    counts: List[int] = []
    while step > 0:
        grid_mask[0:shape[0]:step, 0:shape[1]:step, 0:shape[2]:step] = True
        test = grid_mask & todo
        sdf[test] = batch_eval(coords[:, test], eval_fn, num_samples)
        counts.append(int(test.sum()))
        todo[test] = False
        if step <= 1:
            break
        xs, ys, zs = (np.arange(0, n, step) for n in shape)
        v = sdf[np.ix_(xs, ys, zs)]
        corners = np.stack([v[a:a + v.shape[0] - 1, b:b + v.shape[1] - 1, c:c + v.shape[2] - 1]
                            for a in (0, 1) for b in (0, 1) for c in (0, 1)], 0)
        vmin, vmax = corners.min(0), corners.max(0)
        mid = 0.5 * (vmin + vmax)
        centre_todo = todo[np.ix_(xs[:-1] + step // 2, ys[:-1] + step // 2, zs[:-1] + step // 2)]
        skip = ((vmax - vmin) < threshold) & centre_todo
        # sequential on purpose: blocks share faces and the later block's value wins
        for cx, cy, cz in zip(*np.nonzero(skip)):
            x, y, z = cx * step, cy * step, cz * step
            sdf[x:x + step + 1, y:y + step + 1, z:z + step + 1] = mid[cx, cy, cz]
            todo[x:x + step + 1, y:y + step + 1, z:z + step + 1] = False
        step //= 2
    return sdf, counts


def marching_cubes_reference(sdf: np.ndarray, mat: np.ndarray, level: float = LEVEL) -> Tuple[np.ndarray, np.ndarray]:
    """scikit-image marching cubes on the grid, vertices mapped to the crop frame
    (inverse calibration after ``mat``), faces reversed for the negative determinant.
    Returns (vertices [V, 3] float64, faces [F, 3] int64). Raises ``ValueError`` when the
    level is outside the value range (no surface)."""
    try:
        from skimage import measure
    except ImportError:
        from ...errors import BackendUnavailableError

        raise BackendUnavailableError(
            "the reference mesh path needs scikit-image: pip install 'scikit-image>=0.22'"
        ) from None

    verts, faces, _normals, _values = measure.marching_cubes(sdf, level)
    trans = np.linalg.inv(CALIB) @ mat
    verts = (trans[:3, :3] @ verts.T + trans[:3, 3:4]).T
    if np.linalg.det(trans[:3, :3]) < 0.0:
        faces = faces[:, ::-1]
    return verts, np.ascontiguousarray(faces)


def model_eval_fn(model, features) -> EvalFn:
    """Wrap ``model.query`` (an ``ImplicitModel``) as the reference's numpy eval function."""
    import torch

    def fn(points: np.ndarray) -> np.ndarray:
        p = torch.from_numpy(np.ascontiguousarray(points.T, dtype=np.float32))
        return model.query(features, p).detach().cpu().numpy()

    return fn


def reconstruct_reference(model, features, cfg: ReferenceReconConfig = ReferenceReconConfig()) -> Mesh:
    """Mesh of one encoded person in the crop frame, exactly the reference's way. An empty mesh
    (0 vertices) when the field never crosses ``cfg.level``."""
    if cfg.resolution < cfg.init_resolution:
        raise ValueError(f"resolution: must be >= init_resolution ({cfg.init_resolution}), got {cfg.resolution}")
    coords, mat = reference_grid(cfg.resolution)
    sdf, counts = eval_grid_octree(coords, model_eval_fn(model, features), cfg.init_resolution,
                                   cfg.threshold, cfg.num_samples)
    log.info("reference octree: %d points evaluated per step %s", sum(counts), counts)
    meta = {"octree": "reference", "resolution": cfg.resolution, "points_evaluated": sum(counts),
            "points_per_step": counts}
    if not (sdf.min() <= cfg.level <= sdf.max()) or sdf.min() == sdf.max():
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3)), frame="crop", meta=meta)
    verts, faces = marching_cubes_reference(sdf, mat, cfg.level)
    # The reference writes face (a, b, c) as "f a c b" (save_obj_mesh_with_color). We keep that
    # written order: it is the one whose cross-product normals point outward when the crop-frame
    # coordinates are read as numbers (how every viewer and our Mesh convention read them).
    faces = faces[:, [0, 2, 1]]
    return Mesh(verts, faces, frame="crop", rect=getattr(features, "rect", None), meta=meta)
