"""The occupancy grid convention shared by the dense and octree evaluators.

A grid of ``resolution`` = N points per axis covers the query box [-1, 1]^3 of the crop frame:
index (i, j, k) <-> point (x, y, z) = (-1 + 2i/N, -1 + 2j/N, -1 + 2k/N), exactly like the
reference's ``create_grid`` (facebookresearch/pifuhd ``lib/sdf.py``: ``coords * (2/N) + b_min``):
the last point is 1 - 2/N, +1 itself is not on the grid. Axis 0 is x, 1 is y, 2 is z.

Marching cubes works on cells (i, j, k) in [0, N-2]^3 whose 8 corners are
``(i, j, k) + CORNER_OFFSETS[m]`` in PyMCubes' corner order; inside = occupancy > level.
"""
from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import numpy as np
import torch

from .config import LEVEL, check_resolution  # noqa: F401  (re-exported: the evaluators check with it)

# PyMCubes / Bourke corner order: bit m of the cube index is corner m.
CORNER_OFFSETS = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    dtype=np.int64,
)


def grid_points(ijk: torch.Tensor, resolution: int) -> torch.Tensor:
    """Crop-frame points [M, 3] float32 of integer grid indices ``ijk`` [M, 3] (any int dtype).
    Computed in float64 then rounded once, so every evaluator asks the same float32 point."""
    return ((2.0 * ijk.to(torch.float64) - resolution) / resolution).to(torch.float32)


def index_to_crop(v: np.ndarray, resolution: int) -> np.ndarray:
    """Grid-index coordinates (e.g. marching-cubes vertices) [V, 3] -> crop frame, float64."""
    return np.asarray(v, dtype=np.float64) * (2.0 / resolution) - 1.0


@runtime_checkable
class OccupancyGrid(Protocol):
    """What marching cubes and the metrics need from an evaluated grid.

    - ``resolution``: N; ``level``: the iso level (0.5); ``num_queries``: points sent to query_fn.
    - ``to_dense()``: float32 numpy [N, N, N] (allocates the full volume: 4 N^3 bytes).
    - ``surface_cells()``: int64 torch [M, 3] cells in [0, N-2]^3 whose corners straddle level,
      sorted by linear index; ``corner_values(cells)``: float32 torch [M, 8] (CORNER_OFFSETS order);
      ``surface_cells_and_values()``: both at once (native where available).
    - ``inside_slab(i0, i1)``: bool torch [i1-i0, N, N], occupancy > level for x indices i0..i1-1.
    """

    resolution: int
    level: float
    num_queries: int

    def to_dense(self) -> np.ndarray: ...

    def surface_cells(self) -> torch.Tensor: ...

    def surface_cells_and_values(self, native: bool = True) -> tuple: ...

    def corner_values(self, cells: torch.Tensor) -> torch.Tensor: ...

    def inside_slab(self, i0: int, i1: int) -> torch.Tensor: ...


class DenseOccupancy:
    """A fully evaluated grid: ``values`` float32 torch [N, N, N] (CPU or GPU)."""

    def __init__(self, values: torch.Tensor, level: float = LEVEL, num_queries: Optional[int] = None,
                 stats: Optional[dict] = None):
        if values.ndim != 3 or len(set(values.shape)) != 1 or values.dtype != torch.float32:
            raise ValueError(f"values: expected float32 [N, N, N], got {values.dtype} {list(values.shape)}")
        self.values = values
        self.resolution = int(values.shape[0])
        self.level = float(level)
        self.num_queries = int(values.numel() if num_queries is None else num_queries)
        self.stats = dict(stats or {})

    def to_dense(self) -> np.ndarray:
        return self.values.cpu().numpy()

    def inside_slab(self, i0: int, i1: int) -> torch.Tensor:
        return self.values[i0:i1] > self.level

    def set_values(self, ijk: torch.Tensor, vals: torch.Tensor) -> None:
        ijk = ijk.to(self.values.device)
        vals = vals.to(self.values.device, torch.float32)
        if self.values.is_inference():  # (made under inference_mode: cannot change in place)
            self.values = self.values.clone()
        self.values[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = vals

    def surface_cells(self) -> torch.Tensor:
        return surface_cells_dense(self.values, self.level)

    def surface_cells_and_values(self, native: bool = True):
        cells = self.surface_cells()
        return cells, self.corner_values(cells)

    def corner_values(self, cells: torch.Tensor) -> torch.Tensor:
        off = torch.as_tensor(CORNER_OFFSETS, device=self.values.device)
        c = cells.to(self.values.device)[:, None, :] + off[None]
        return self.values[c[..., 0], c[..., 1], c[..., 2]]


def surface_cells_dense(values: torch.Tensor, level: float = LEVEL, slab: int = 64) -> torch.Tensor:
    """Cells [M, 3] int64 of a dense grid whose 8 corners do not all lie on one side of ``level``
    (slab by slab along x, so the temporary masks stay small). Sorted by linear index."""
    n = values.shape[0]
    out = []
    for i0 in range(0, n - 1, slab):
        i1 = min(n, i0 + slab + 1)
        s = values[i0:i1] > level
        # a cell is mixed iff some corner differs from corner 0 after reducing over the 2x2x2 block
        any_in = s[:-1] | s[1:]
        all_in = s[:-1] & s[1:]
        any_in = any_in[:, :-1] | any_in[:, 1:]
        all_in = all_in[:, :-1] & all_in[:, 1:]
        any_in = any_in[:, :, :-1] | any_in[:, :, 1:]
        all_in = all_in[:, :, :-1] & all_in[:, :, 1:]
        idx = torch.nonzero(any_in & ~all_in)
        idx[:, 0] += i0
        out.append(idx)
    if not out:
        return torch.zeros((0, 3), dtype=torch.int64, device=values.device)
    return torch.cat(out)


def volume_iou(a: OccupancyGrid, b: OccupancyGrid, slab: int = 32) -> float:
    """Volume IoU of the inside sets (occupancy > level) of two grids of the same resolution,
    slab by slab (never materialises both full volumes). 1.0 when both are empty."""
    if a.resolution != b.resolution:
        raise ValueError(f"grids: resolutions differ ({a.resolution} vs {b.resolution})")
    inter = union = 0
    for i0 in range(0, a.resolution, slab):
        i1 = min(a.resolution, i0 + slab)
        sa = a.inside_slab(i0, i1)
        sb = b.inside_slab(i0, i1).to(sa.device)
        inter += int((sa & sb).sum())
        union += int((sa | sb).sum())
    return 1.0 if union == 0 else inter / union
