"""Marching cubes at the iso level of an ``OccupancyGrid`` -> ``Mesh`` in the crop frame.

Two paths with identical output (same case tables and interpolation; tests compare them):
- ``pymcubes``: PyMCubes over the full dense grid (scans all (N-1)^3 cells; needs the float32
  N^3 volume, e.g. 0.5 GiB at N = 512).
- ``sparse``: the native kernel ``streamrecon._native.sparse_marching_cubes`` over only the
  cells that straddle the level (what the octree found), never building the volume.
``auto`` uses ``sparse`` when the native extension is built, else PyMCubes with one warning.

Vertices: grid index (i, j, k) -> crop point -1 + 2i/N (``occupancy.grid``). Faces are wound
counter-clockwise seen from outside (outside = occupancy <= level), so normals point out.
"""
from __future__ import annotations

import logging
import time
from typing import Tuple

import numpy as np

from ..errors import BackendUnavailableError
from ..types import Mesh
from ..native import load_native, native_or_none
from ..occupancy.config import LEVEL

log = logging.getLogger(__name__)

METHODS = ("auto", "sparse", "pymcubes")


def marching_cubes_dense(values: np.ndarray, level: float = LEVEL) -> Tuple[np.ndarray, np.ndarray]:
    """PyMCubes on a dense grid [X, Y, Z] (float32 is read in place, no float64 copy).
    Returns vertices float64 [V, 3] in grid-index coordinates and faces int64 [F, 3]."""
    import mcubes

    values = np.asarray(values)
    if values.ndim != 3:
        raise ValueError(f"values: expected a 3-D grid, got shape {list(values.shape)}")
    v, f = mcubes.marching_cubes(values, float(level))
    return np.asarray(v, dtype=np.float64).reshape(-1, 3), np.asarray(f, dtype=np.int64).reshape(-1, 3)


def marching_cubes_sparse(cells: np.ndarray, corner_values: np.ndarray, dims, level: float = LEVEL):
    """Native sparse marching cubes over unique ``cells`` [M, 3] (lower corners, each in
    [0, dims - 2]) with ``corner_values`` [M, 8] (``occupancy.CORNER_OFFSETS`` order).
    Same outputs as ``marching_cubes_dense`` on a grid holding these values, up to vertex order.
    Raises ImportError when the native extension is missing."""
    nat = load_native()
    cells = np.ascontiguousarray(cells, dtype=np.int64).reshape(-1, 3)
    corner_values = np.ascontiguousarray(corner_values, dtype=np.float32).reshape(-1, 8)
    return nat.sparse_marching_cubes(cells, corner_values, [int(d) for d in dims], float(level))


def extract_mesh(grid, method: str = "auto") -> Mesh:
    """Mesh of ``grid`` (an ``occupancy.OccupancyGrid``) at its level, in the crop frame.
    ``meta``: ``mc_method`` (the path that ran), ``mc_s`` (seconds), ``surface_cells``."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    t0 = time.perf_counter()
    n = grid.resolution
    meta = {}
    nat = None
    if method == "sparse":
        try:
            nat = load_native()
        except ImportError as exc:
            raise BackendUnavailableError(
                f"sparse marching cubes needs streamrecon's native extension: {exc}; "
                "or use the PyMCubes path (method 'pymcubes')"
            ) from None
    elif method == "auto":
        nat = native_or_none("sparse marching cubes")
    if nat is not None:
        cells, vals = grid.surface_cells_and_values()
        v, f = marching_cubes_sparse(cells.cpu().numpy(), vals.cpu().numpy(), (n, n, n), grid.level)
        meta.update(mc_method="sparse", surface_cells=int(len(cells)))
    else:
        v, f = marching_cubes_dense(grid.to_dense(), grid.level)
        meta["mc_method"] = "pymcubes"
    verts = (v * (2.0 / n) - 1.0).astype(np.float32)
    meta["mc_s"] = time.perf_counter() - t0
    return Mesh(verts, f, frame="crop", meta=meta)
