"""Silhouette fill: every grid column under the person mask gets some occupancy above the level.

Where the network is unsure *at which depth* a thin part is (the rim of every limb, fingers,
feet), its occupancy along that pixel's ray is spread out and its peak can stay below 0.5: the
mesh then misses the pixel although the mask says the person is there. Lowering the level would
thicken everything; instead, for each on-mask column (x, y) of the N^3 grid with no point above the
level, the point at the ray's most likely depth (the network's peak along the column) is raised to
1, so marching cubes puts a thin surface there, joined to its neighbours. Nothing changes off the
mask or on columns that already have a surface.

Grid columns: index a along x, b along y (``grid.py``: index i <-> -1 + 2 i / N), z along the ray.
``column_mask_from_crop`` / ``column_mask_from_frame`` sample a person mask at the columns' (x, y).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .dense import call_query
from .grid import DenseOccupancy, grid_points
from .octree import _lin, _unlin


@dataclass(frozen=True)
class SilhouetteFill:
    """What ``fill_silhouette`` did: ``columns`` on the mask without a surface, ``filled`` of
    them (peak at least ``floor``), ``queries`` spent locating the peaks."""

    columns: int
    filled: int
    queries: int


def column_mask_from_crop(mask_crop: np.ndarray, resolution: int) -> np.ndarray:
    """[N, N] bool (a: x, b: y) from a crop mask [R, R] on the crop pixel grid (row i at
    y = 1 - 2 i / (R - 1), column j at x = -1 + 2 j / (R - 1)), nearest pixel."""
    r = mask_crop.shape[0]
    t = -1 + 2 * np.arange(resolution) / resolution
    cols = np.clip(np.round((t + 1) * (r - 1) / 2).astype(int), 0, r - 1)
    rows = np.clip(np.round((1 - t) * (r - 1) / 2).astype(int), 0, r - 1)
    return np.asarray(mask_crop)[rows[None, :], cols[:, None]] > 0.5


def column_mask_from_frame(mask: np.ndarray, rect, resolution: int) -> np.ndarray:
    """[N, N] bool (a: x, b: y) from a frame mask [H, W] and the square crop ``rect`` (x, y, w, h
    in frame pixels; the crop convention of ``embedded.model.crop_affine``), bilinear > 0.5."""
    import cv2

    rx, ry, rw, rh = (float(v) for v in rect)
    t = (-1 + 2 * np.arange(resolution) / resolution).astype(np.float32)
    px = rx + (t + 1) / 2 * rw - 0.5  # frame pixel index of each column's x
    py = ry + (1 - t) / 2 * rh - 0.5  # ... and of each column's y (rows go down)
    mx, my = np.meshgrid(px, py, indexing="ij")  # [a, b]
    out = cv2.remap(np.asarray(mask, np.float32), mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out > 0.5


def _inside_columns_octree(grid, native: bool = True) -> torch.Tensor:
    """[N, N] bool: the column holds a point above the level. An interpolated point's side is
    its parent's (``OctreeOccupancy._side_of_keys``), so a column is inside where an exact point
    is, or where a parent point above the level has a child in the column that was not queried.
    The native kernel (``streamrecon._native.octree_inside_columns``: one pass over the keys, no
    GIL) on CPU when built; the torch code below is its twin (and the GPU path)."""
    nat = grid.native_kernels("silhouette fill") if native else None
    if nat is not None:
        return torch.from_numpy(nat.octree_inside_columns(grid.keys.numpy(), grid.vals.numpy(), grid.parent.numpy(),
                                                          grid.extent, grid.resolution, grid.level))

    n, n1 = grid.resolution, grid.extent + 1
    par_in = grid.parent > grid.level  # [n2, n2, n2]
    cmax = (n - 1) >> 1
    per_parent = par_in[..., : cmax + 1].sum(2)  # parent-inside points per parent column
    a = torch.arange(n, device=grid.device) >> 1
    children = 2 * per_parent[a[:, None], a[None, :]]  # fine points reading them, per fine column
    ijk = _unlin(grid.keys, n1)
    ok = (ijk < n).all(1)
    ijk, vals = ijk[ok], grid.vals[ok]
    inside = torch.zeros(n * n, dtype=torch.bool, device=grid.device)
    above = vals > grid.level
    col = ijk[:, 0] * n + ijk[:, 1]
    inside[col[above]] = True
    # exact points whose parent is inside but which are not themselves: those children don't count
    pk = ijk >> 1
    shadowed = par_in[pk[:, 0], pk[:, 1], pk[:, 2]] & ~above
    lost = torch.bincount(col[shadowed], minlength=n * n).reshape(n, n)
    return inside.reshape(n, n) | (children - lost > 0)


def fill_silhouette(grid, query_fn: Callable, columns_on: np.ndarray, floor: float = 0.05,
                    window: Optional[int] = None) -> SilhouetteFill:
    """Raise, in place, the peak point of every on-mask column of ``grid`` (a ``DenseOccupancy``
    or ``OctreeOccupancy``) that has no point above its level, where that peak is at least
    ``floor`` (a column the network is sure is empty stays empty: a sloppy mask's background).
    The octree's peak is located on its stride-2 lattice, then refined by querying the network
    over +-``window`` points around it (default: half the coarse stride, + 1)."""
    n = grid.resolution
    on = torch.as_tensor(np.asarray(columns_on, bool))
    if on.shape != (n, n):
        raise ValueError(f"columns_on: expected [{n}, {n}], got {list(on.shape)}")
    if isinstance(grid, DenseOccupancy):
        vals = grid.values
        on = on.to(vals.device)
        cand = torch.nonzero(on & ~(vals > grid.level).any(2))
        if len(cand) == 0:
            return SilhouetteFill(0, 0, 0)
        pk, kz = vals[cand[:, 0], cand[:, 1]].max(1)
        sel = pk >= floor
        c = cand[sel]
        grid.set_values(torch.stack([c[:, 0], c[:, 1], kz[sel]], -1), torch.ones(len(c)))
        return SilhouetteFill(len(cand), int(sel.sum()), 0)
    dev = grid.device
    on = on.to(dev)
    cand = torch.nonzero(on & ~_inside_columns_octree(grid))
    if len(cand) == 0:
        return SilhouetteFill(0, 0, 0)
    cmax = (n - 1) >> 1
    prof = grid.parent[cand[:, 0] >> 1, cand[:, 1] >> 1, : cmax + 1]
    kc = 2 * prof.argmax(1)
    w = window if window is not None else int(grid.stats.get("coarse_stride", 8)) // 2 + 1
    offs = torch.arange(-w, w + 1, device=dev)
    kz = (kc[:, None] + offs[None]).clamp(0, n - 1)  # [C, 2w + 1] (clamped duplicates are harmless)
    ijk = torch.stack([cand[:, None, 0].expand_as(kz), cand[:, None, 1].expand_as(kz), kz], -1).reshape(-1, 3)
    v = call_query(query_fn, grid_points(ijk, n)).reshape(len(cand), -1)
    pk, arg = v.max(1)
    sel = pk >= floor
    best = torch.stack([cand[:, 0], cand[:, 1], kz[torch.arange(len(cand), device=dev), arg]], -1)[sel]
    if len(best) == 0:
        return SilhouetteFill(len(cand), 0, int(ijk.shape[0]))
    # The raised points' 6 neighbours become exact too: marching cubes places the new surface on
    # those edges, so they must hold network values (as on the dense grid), not interpolations.
    six = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], device=dev)
    nb = (best[:, None, :] + six[None]).reshape(-1, 3)
    # unique on linear keys: the same rows in the same (lexicographic) order as unique(dim=0), at a
    # fraction of its cost
    nbk = torch.unique(_lin(nb[((nb >= 0) & (nb < n)).all(1)], n))
    nb = _unlin(nbk[~torch.isin(nbk, _lin(best, n))], n)  # a neighbour that is itself raised stays raised
    grid.set_values(torch.cat([best, nb]), torch.cat([torch.ones(len(best), dtype=torch.float32, device=dev),
                                                      call_query(query_fn, grid_points(nb, n))]))
    return SilhouetteFill(len(cand), int(sel.sum()), int(ijk.shape[0] + len(nb)))
