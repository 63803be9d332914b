"""Coarse-to-fine surface localisation: the octree evaluator (fast twin of ``dense.py``).

One torch code path for CPU and GPU. The grid convention is ``grid.py``'s: N points per axis,
index i <-> -1 + 2i/N. Internally the lattice is padded to L + 1 points per axis, L the first
multiple of the coarse stride s0 >= N - 1 (so every coarse cell has all its corners); points past
N - 1 are only asked when the surface gets there.

Algorithm (see docs/octree.md):
1. Query the coarse lattice (stride s0, about ``init_resolution`` points per axis) in full.
2. Halve the stride. A new point is *queried* when its support (the 2, 4 or 8 coarse points it is
   the midpoint of) does not lie on one side of the level, i.e. it sits on a coarse edge, face or
   cell the surface crosses (optionally every point of those cells dilated by ``band`` cells, and
   every point of the cells flagged by ``margin`` / ``spread``: a corner near the level, corner
   values spreading widely). All other points are *interpolated* (midpoint averages), which keeps
   their side exactly.
3. Lossless check: where a queried point and an interpolated 6-neighbour lie on opposite sides,
   the interpolation disagrees with the network: query that neighbour too, and repeat from the
   newly queried points until nothing disagrees. On a converged level every edge the surface
   crosses has both endpoints queried, so marching cubes sees exactly the dense grid's values on
   every surface component the octree touched (components entirely inside an un-refined coarse
   cell, i.e. thinner than the coarse spacing and unconnected to found surface, can still be lost).
4. Repeat until stride 1. Levels above stride 1 are kept as dense float32 lattices (at most
   (N/2 + 1)^3 values); the finest level stays sparse: sorted keys of queried points + values.

Memory at N = 512: the stride-2 lattice (257^3 float32 = 68 MB) plus the queried points.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from .dense import call_query
from .config import OctreeConfig
from .grid import CORNER_OFFSETS, DenseOccupancy, check_resolution, grid_points

NATIVE_MAX_EXTENT = 1600  # octree_surface_cells' 32-bit key decoding: (L + 1)^3 < 2^32

log = logging.getLogger(__name__)

QueryFn = Callable[[torch.Tensor], torch.Tensor]


def coarse_stride(resolution: int, init_resolution: int) -> int:
    """Power-of-two stride s0 so that the coarse lattice has about ``init_resolution`` points."""
    if init_resolution < 2:
        raise ValueError(f"init_resolution: expected >= 2, got {init_resolution}")
    ratio = (resolution - 1) / (init_resolution - 1)
    return 1 if ratio < 2 else 1 << int(math.floor(math.log2(ratio)))


# ---------------------------------------------------------------------------------------------
# small pure helpers on integer lattices


def _lin(ijk: torch.Tensor, n: int) -> torch.Tensor:
    return (ijk[:, 0] * n + ijk[:, 1]) * n + ijk[:, 2]


def _unlin(lin: torch.Tensor, n: int) -> torch.Tensor:
    return torch.stack((lin // (n * n), (lin // n) % n, lin % n), dim=1)


def _in_range(ijk: torch.Tensor, hi: int) -> torch.Tensor:
    return ((ijk >= 0) & (ijk <= hi)).all(dim=1)


def upsample2(d: torch.Tensor) -> torch.Tensor:
    """Dense lattice [a, b, c] -> [2a-1, 2b-1, 2c-1] by midpoint averaging ``(a + b) * 0.5`` along x, then
    y, then z (the same order and arithmetic as ``interp_from_parent``: bit-identical values).
    Filled in place in one allocation."""
    u = d.new_empty(tuple(2 * k - 1 for k in d.shape))
    u[::2, ::2, ::2] = d
    u[1::2, ::2, ::2] = (d[:-1] + d[1:]) * 0.5
    u[:, 1::2, ::2] = (u[:, :-2:2, ::2] + u[:, 2::2, ::2]) * 0.5
    u[:, :, 1::2] = (u[:, :, :-2:2] + u[:, :, 2::2]) * 0.5
    return u


def interp_from_parent(parent: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Values at child-lattice points ``q`` [M, 3] interpolated from the parent lattice (stride 2x):
    an even coordinate copies, an odd one averages its two parent neighbours (x, then y, then z).
    (a + a) * 0.5 == a exactly, so even coordinates need no branch."""
    lo = q >> 1
    odd = q & 1
    npar = parent.shape[0]
    flat = parent.reshape(-1)
    base = _lin(lo, npar)
    ox, oy, oz = odd[:, 0] * (npar * npar), odd[:, 1] * npar, odd[:, 2]
    # c index = dx*4 + dy*2 + dz: the support corner (lo + (dx, dy, dz) * odd)
    c = []
    for dx in (0, 1):
        bx = base + ox if dx else base
        for dy in (0, 1):
            by = bx + oy if dy else bx
            c.append(flat[by])
            c.append(flat[by + oz])
    cx = [(c[0 + r] + c[4 + r]) * 0.5 for r in range(4)]  # over dx -> index dy*2 + dz
    cy = [(cx[0 + r] + cx[2 + r]) * 0.5 for r in range(2)]  # over dy -> index dz
    return (cy[0] + cy[1]) * 0.5


class _Sorted:
    """Sorted unique int64 keys with float32 values (the queried points of one level)."""

    def __init__(self, keys: torch.Tensor, vals: torch.Tensor):
        self.keys, self.vals = keys, vals

    def find(self, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if len(self.keys) == 0:
            return torch.zeros_like(q, dtype=torch.bool), torch.zeros_like(q)
        pos = torch.searchsorted(self.keys, q).clamp_max_(len(self.keys) - 1)
        return self.keys[pos] == q, pos

    def add(self, keys: torch.Tensor, vals: torch.Tensor, nat=None) -> None:
        """Insert ``keys`` (disjoint from the present ones, any order): one native merge when
        ``nat`` (the native module) is given, else a sort of everything (its twin)."""
        if nat is not None:
            k, v = nat.merge_sorted_keys(self.keys.numpy(), self.vals.numpy(), keys.numpy(), vals.numpy())
            self.keys, self.vals = torch.from_numpy(k), torch.from_numpy(v)
            return
        k = torch.cat((self.keys, keys))
        v = torch.cat((self.vals, vals))
        k, order = torch.sort(k)
        self.keys, self.vals = k, v[order]


# candidate offsets (child lattice) around a crossed parent edge along `axis`, relative to
# 2 * lower endpoint: the edge midpoint, the 4 face centres and the 4 cell centres around it.
def _edge_offsets(axis: int, device) -> torch.Tensor:
    b, c = [a for a in range(3) if a != axis]
    offs = []
    for sb in (-1, 0, 1):
        for sc in (-1, 0, 1):
            o = [0, 0, 0]
            o[axis], o[b], o[c] = 1, sb, sc
            offs.append(o)
    return torch.tensor(offs, dtype=torch.int64, device=device)


def _cells_of_edges(p: torch.Tensor, axis: int) -> torch.Tensor:
    """The 4 cells (lower corners) sharing the edge from ``p`` [E, 3] along ``axis``."""
    b, c = [a for a in range(3) if a != axis]
    offs = torch.zeros((4, 3), dtype=torch.int64, device=p.device)
    offs[1, b] = offs[3, b] = -1
    offs[2, c] = offs[3, c] = -1
    return (p[:, None, :] + offs[None]).reshape(-1, 3)


KNOWN_MASK_MAX_POINTS = 1 << 25
"""lattices up to this many points (N <= 320) track queried points in a bool mask (<= 32 MB);
finer ones binary-search the sorted keys (same answers, less memory)."""

_NEIGHBOURS = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]


class OctreeOccupancy:
    """Result of ``evaluate_octree``: an ``OccupancyGrid`` whose finest level is sparse.

    - ``parent``: float32 [n2, n2, n2] dense values of the stride-2 lattice (n2 = L/2 + 1),
      network values where queried, midpoint interpolation elsewhere.
    - ``keys``/``vals``: sorted int64 linear indices (lattice of L + 1 points per axis) and float32
      values of every point the network was asked about (all levels, mapped to the finest).
    Tensors stay on the evaluation device."""

    def __init__(self, resolution: int, extent: int, parent: torch.Tensor, exact: _Sorted,
                 level: float, num_queries: int, stats: dict):
        self.resolution = resolution
        self.extent = extent
        self.parent = parent
        self.keys, self.vals = exact.keys, exact.vals
        self._exact = exact
        self.level = level
        self.num_queries = num_queries
        self.stats = stats

    @property
    def device(self) -> torch.device:
        return self.parent.device

    def values_at(self, ijk: torch.Tensor) -> torch.Tensor:
        """float32 [M] values at finest-lattice points ``ijk`` [M, 3] (queried or interpolated)."""
        n1 = self.extent + 1
        out = torch.empty(len(ijk), dtype=torch.float32, device=self.device)
        step = 1 << 18  # bounds the temporaries (8 gathers, int64 indices) to a few tens of MB
        for s in range(0, len(ijk), step):
            part = ijk[s : s + step]
            found, pos = self._exact.find(_lin(part, n1))
            v = torch.empty(len(part), dtype=torch.float32, device=self.device)
            v[found] = self.vals[pos[found]]
            miss = ~found
            v[miss] = interp_from_parent(self.parent, part[miss])
            out[s : s + step] = v
        return out

    def set_values(self, ijk: torch.Tensor, vals: torch.Tensor) -> None:
        """Make the finest-lattice points ``ijk`` [M, 3] (unique) exact with ``vals`` (used by
        ``silhouette.fill_silhouette``): known points are overwritten, the others become known."""
        q = _lin(ijk.to(self.device), self.extent + 1)
        vals = vals.to(self.device, torch.float32)
        found, pos = self._exact.find(q)
        self._exact.vals = self._exact.vals.clone()  # (the evaluator's may be inference tensors)
        self._exact.vals[pos[found]] = vals[found]
        if (~found).any():  # one native merge on CPU (a sort of all the keys was 2 ms a frame at 128)
            self._exact.add(q[~found], vals[~found], _native_round(self.device))
        self.keys, self.vals = self._exact.keys, self._exact.vals

    def values_slab(self, i0: int, i1: int) -> torch.Tensor:
        """Dense float32 [i1-i0, N, N] values of x indices i0..i1-1 (allocates only the slab)."""
        n, n1 = self.resolution, self.extent + 1
        a, b = i0 // 2, (i1 - 1 + 1) // 2  # parent rows covering child rows i0..i1-1
        up = upsample2(self.parent[a : b + 1])
        out = up[i0 - 2 * a : i1 - 2 * a, :n, :n].contiguous()
        lo, hi = torch.searchsorted(self.keys, torch.tensor([i0 * n1 * n1, i1 * n1 * n1], device=self.device))
        k = self.keys[lo:hi]
        ijk = _unlin(k, n1)
        keep = (ijk[:, 1] < n) & (ijk[:, 2] < n)
        ijk = ijk[keep]
        out[ijk[:, 0] - i0, ijk[:, 1], ijk[:, 2]] = self.vals[lo:hi][keep]
        return out

    def inside_slab(self, i0: int, i1: int) -> torch.Tensor:
        return self.values_slab(i0, i1) > self.level

    def to_dense(self, slab: int = 32) -> np.ndarray:
        n = self.resolution
        out = np.empty((n, n, n), dtype=np.float32)
        for i0 in range(0, n, slab):
            i1 = min(n, i0 + slab)
            out[i0:i1] = self.values_slab(i0, i1).cpu().numpy()
        return out

    def _side_of_keys(self, q: torch.Tensor) -> torch.Tensor:
        """Side (> level) of finest-lattice points by linear key. An interpolated point's support
        always lies on one side (points with a mixed support are always queried), so its side is
        the side of any support point: one parent gather instead of an interpolation."""
        n1, npar = self.extent + 1, self.parent.shape[0]
        found, pos = self._exact.find(q)
        side = torch.empty(len(q), dtype=torch.bool, device=self.device)
        side[found] = self.vals[pos[found]] > self.level
        miss = q[~found]
        lo = _unlin(miss, n1) >> 1
        side[~found] = self.parent.reshape(-1)[_lin(lo, npar)] > self.level
        return side

    def surface_cells(self) -> torch.Tensor:
        """Cells [M, 3] in [0, N-2]^3 with a crossed edge, found from the queried points only
        (every crossed edge has a queried endpoint: interpolated neighbours share their side).
        Works on linear keys: the +/- neighbour along an axis is key +/- stride."""
        n, n1 = self.resolution, self.extent + 1
        keys = self.keys
        s = self.vals > self.level
        cells = []
        for axis, stride in enumerate((n1 * n1, n1, 1)):
            coord = (keys // stride) % n1
            # + neighbour: edges whose lower end is queried
            ok = coord < self.extent
            lower = keys[ok][(self._side_of_keys(keys[ok] + stride)) != s[ok]]
            # - neighbour, only where it is interpolated (queried ones were covered above)
            ok = coord > 0
            q = keys[ok] - stride
            found, _ = self._exact.find(q)
            q, sq = q[~found], s[ok][~found]
            lower = torch.cat((lower, q[self._side_of_keys(q) != sq]))
            cells.append(_cells_of_edges(_unlin(lower, n1), axis))
        c = torch.cat(cells)
        c = c[_in_range(c, n - 2)]
        return _unlin(torch.unique(_lin(c, n)), n)

    def native_kernels(self, what: str):
        """The native module for kernels over this grid's keys (``octree_surface_cells``,
        ``octree_inside_columns``), or None where the torch code runs: not built (warned once,
        naming ``what``), a GPU grid, or a lattice past the kernels' 32-bit key decoding
        ((L + 1)^3 < 2^32: L <= NATIVE_MAX_EXTENT, resolution 1601)."""
        if self.device.type != "cpu" or self.extent > NATIVE_MAX_EXTENT:
            return None
        from ..native import native_or_none

        return native_or_none(what)

    def surface_cells_and_values(self, native: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """``surface_cells()`` and their ``corner_values()`` in one call: the native kernel
        (``streamrecon._native.octree_surface_cells``, one pass in C++) on CPU when built,
        else the torch code (its slow twin; also the GPU path)."""
        nat = self.native_kernels("octree surface cells") if native else None
        if nat is None:
            cells = self.surface_cells()
            return cells, self.corner_values(cells)
        cells, vals = nat.octree_surface_cells(self.keys.numpy(), self.vals.numpy(), self.parent.numpy(),
                                               self.extent, self.resolution, self.level)
        return torch.from_numpy(cells), torch.from_numpy(vals)

    def corner_values(self, cells: torch.Tensor) -> torch.Tensor:
        off = torch.as_tensor(CORNER_OFFSETS, device=self.device)
        cells = cells.to(self.device)
        out = torch.empty((len(cells), 8), dtype=torch.float32, device=self.device)
        step = 1 << 17
        n1 = self.extent + 1
        for s in range(0, len(cells), step):
            # neighbouring cells share corners: look each corner up once
            c = _lin((cells[s : s + step, None, :] + off[None]).reshape(-1, 3), n1)
            u, inv = torch.unique(c, return_inverse=True)
            out[s : s + step] = self.values_at(_unlin(u, n1))[inv].reshape(-1, 8)
        return out


class _Counter:
    """Batches query_fn calls and counts/clocks them."""

    def __init__(self, query_fn: QueryFn, resolution: int, batch: int):
        self.query_fn, self.resolution, self.batch = query_fn, resolution, batch
        self.count = 0
        self.seconds = 0.0

    def __call__(self, ijk_fine: torch.Tensor) -> torch.Tensor:
        return self.points(grid_points(ijk_fine, self.resolution))

    def points(self, pts: torch.Tensor) -> torch.Tensor:
        """Values at crop-frame points [M, 3] (``grid_points`` of the fine lattice), in batches."""
        t0 = time.perf_counter()
        out = torch.empty(len(pts), dtype=torch.float32, device=pts.device)
        for s in range(0, len(pts), self.batch):
            out[s : s + self.batch] = call_query(self.query_fn, pts[s : s + self.batch])
        self.count += len(pts)
        self.seconds += time.perf_counter() - t0
        return out

    def numpy_points(self, pts: np.ndarray) -> np.ndarray:
        """``points`` for the native level kernel's callback: numpy in, numpy out."""
        return self.points(torch.from_numpy(pts)).numpy()


def evaluate_octree(
    query_fn: QueryFn,
    resolution: int,
    cfg: OctreeConfig = OctreeConfig(),
    device: str | torch.device = "cpu",
):
    """Evaluate ``query_fn`` coarse to fine on the N^3 grid. Returns an ``OccupancyGrid``:
    an ``OctreeOccupancy``, or a ``DenseOccupancy`` when the grid is no finer than the coarse
    lattice. ``num_queries`` counts every point sent to ``query_fn``."""
    n = check_resolution(resolution)
    if cfg.batch_points < 1 or cfg.band < 0 or not (cfg.margin >= 0 and cfg.spread >= 0):
        raise ValueError(f"cfg: batch_points must be >= 1 and band, margin, spread >= 0, got "
                         f"{cfg.batch_points}, {cfg.band}, {cfg.margin}, {cfg.spread}")
    device = torch.device(device)
    t_start = time.perf_counter()
    s0 = coarse_stride(n, cfg.init_resolution)
    extent = s0 * math.ceil((n - 1) / s0)
    ask = _Counter(query_fn, n, cfg.batch_points)
    with torch.inference_mode():
        if s0 == 1:
            ijk = _unlin(torch.arange(n**3, device=device), n)
            vals = ask(ijk).reshape(n, n, n)
            stats = {"levels": [{"stride": 1, "queries": ask.count}], "query_s": ask.seconds,
                     "total_s": time.perf_counter() - t_start}
            return DenseOccupancy(vals, level=cfg.level, num_queries=ask.count, stats=stats)

        n0 = extent // s0 + 1
        ijk0 = _unlin(torch.arange(n0**3, device=device), n0)
        dense = ask(ijk0 * s0).reshape(n0, n0, n0)
        exact = _Sorted(torch.arange(n0**3, device=device), dense.reshape(-1).clone())
        levels: List[dict] = [{"stride": s0, "queries": ask.count, "rounds": 0}]
        h = s0 // 2
        while True:
            nat = _native_level(dense, cfg)
            if nat is not None:  # the level and the next dense lattice in one native call
                exact, info, dense = _refine_native(nat, ask, dense, exact, h, cfg)
            else:
                exact, info = _refine(ask, dense, exact, h, extent, cfg)
                if h > 1:
                    dense = upsample2(dense)
                    dense.view(-1)[exact.keys] = exact.vals
            levels.append(info)
            if h == 1:
                break
            h //= 2
    total = time.perf_counter() - t_start
    stats = {"levels": levels, "coarse_stride": s0, "query_s": ask.seconds, "total_s": total,
             "overhead_s": total - ask.seconds}
    log.debug("octree %d^3: %d queries (%.4f%% of dense) in %.2f s", n, ask.count, 100.0 * ask.count / n**3, total)
    return OctreeOccupancy(n, extent, dense, exact, cfg.level, ask.count, stats)


def _flagged_cells(parent: torch.Tensor, cfg: OctreeConfig) -> torch.Tensor:
    """Cells [M, 3] (lower corners, parent lattice) meeting the optional refinement criteria:
    a corner value within ``cfg.margin`` of the level, or corner values spreading more than
    ``cfg.spread``. Min/max over the 8 corners, separably (x, then y, then z)."""
    mn, mx = parent, parent
    for axis in range(3):
        m = mn.shape[axis] - 1
        mn = torch.minimum(mn.narrow(axis, 0, m), mn.narrow(axis, 1, m))
        mx = torch.maximum(mx.narrow(axis, 0, m), mx.narrow(axis, 1, m))
    flag = torch.zeros(mn.shape, dtype=torch.bool, device=parent.device)
    if cfg.margin > 0:
        # some corner v with |v - level| <= margin (cells the surface crosses included)
        flag |= (mn <= cfg.level + cfg.margin) & (mx >= cfg.level - cfg.margin)
    if cfg.spread > 0:
        flag |= (mx - mn) > cfg.spread
    return torch.nonzero(flag)


NATIVE_CHECK = True
"""run the lossless check's rounds in the native kernel when built (CPU, mask membership); the
torch code is its twin (tests compare the octrees)."""
NATIVE_LEVEL = True
"""with NATIVE_CHECK: run whole levels in ``octree_refine_level`` where it applies (band 0, no
margin/spread, the mask's size); off, ``_refine`` runs them: torch candidates, native rounds (tests)."""


def _native_round(dev: torch.device):
    if not NATIVE_CHECK or dev.type != "cpu":
        return None
    from ..native import native_or_none

    return native_or_none("octree lossless check")


def _native_level(parent: torch.Tensor, cfg: OctreeConfig):
    """The native module when a whole level can run in ``octree_refine_level``: CPU, built, the
    level's lattice within the known mask's size, band 0 and no margin/spread (its candidates)."""
    n = 2 * parent.shape[0] - 1
    if not NATIVE_LEVEL or n ** 3 > KNOWN_MASK_MAX_POINTS or cfg.band > 0 or cfg.margin > 0 or cfg.spread > 0:
        return None
    return _native_round(parent.device)


def _refine_native(nat, ask: _Counter, parent: torch.Tensor, parent_exact: _Sorted, h: int,
                   cfg: OctreeConfig) -> Tuple[_Sorted, dict, torch.Tensor]:
    """``_refine`` in one native call (its twin: the same queries in the same order, the same
    sorted keys and values), plus the next level's dense lattice (``upsample2`` of the parent with
    the queried values written in) when there is a next level, else ``parent`` itself."""
    check = cfg.lossless and (cfg.exact_vertices or h > 1)
    keys, vals, nxt, first, rounds, queries = nat.octree_refine_level(
        parent.numpy(), parent_exact.keys.numpy(), parent_exact.vals.numpy(), h, ask.resolution, cfg.level,
        check, cfg.max_rounds, h > 1, ask.numpy_points)
    if check and rounds >= cfg.max_rounds:
        log.warning("octree: lossless check stopped after %d rounds at stride %d", rounds, h)
    info = {"stride": h, "queries": queries, "surface_queries": first, "lossless_queries": queries - first,
            "rounds": rounds}
    return _Sorted(torch.from_numpy(keys), torch.from_numpy(vals)), info, parent if nxt is None else torch.from_numpy(nxt)


def _first_candidates(parent: torch.Tensor, exact: _Sorted, known_mask: Optional[torch.Tensor],
                      cfg: OctreeConfig) -> torch.Tensor:
    """Sorted unique child-lattice keys, not yet queried, of the points around the parent's crossed
    edges (band 0: edge midpoints, face and cell centres) or of the whole cells that ``band``,
    ``margin`` and ``spread`` select. Band 0's native twin runs inside ``octree_refine_level``."""
    dev = parent.device
    npar = parent.shape[0]
    n = 2 * npar - 1
    side = parent > cfg.level
    cand = []
    whole = []  # cells (parent lattice) all of whose child points are queried
    for axis in range(3):
        crossed = side.narrow(axis, 0, npar - 1) != side.narrow(axis, 1, npar - 1)
        p = torch.nonzero(crossed)
        if cfg.band > 0:
            whole.append(_cells_of_edges(p, axis))
        else:
            pts = (2 * p[:, None, :] + _edge_offsets(axis, dev)[None]).reshape(-1, 3)
            pts = pts[_in_range(pts, n - 1)]
            cand.append(_lin(pts, n))
    if cfg.margin > 0 or cfg.spread > 0:
        whole.append(_flagged_cells(parent, cfg))
    if whole:
        cells = torch.cat(whole)
        if cfg.band > 0:
            r = torch.arange(-cfg.band, cfg.band + 1, device=dev)
            d = torch.cartesian_prod(r, r, r)
            cells = (cells[:, None, :] + d[None]).reshape(-1, 3)
        cells = cells[_in_range(cells, npar - 2)]
        cells = _unlin(torch.unique(_lin(cells, npar)), npar)
        k3 = torch.cartesian_prod(*(torch.arange(3, device=dev),) * 3)
        pts = (2 * cells[:, None, :] + k3[None]).reshape(-1, 3)
        cand.append(_lin(pts, n))
    cand = torch.unique(torch.cat(cand)) if cand else torch.zeros(0, dtype=torch.int64, device=dev)
    found = known_mask[cand] if known_mask is not None else exact.find(cand)[0]
    return cand[~found]


def _refine(ask: _Counter, parent: torch.Tensor, parent_exact: _Sorted, h: int, extent: int,
            cfg: OctreeConfig) -> Tuple[_Sorted, dict]:
    """One level: from the dense parent lattice (stride 2h) to the queried points of stride h."""
    dev = parent.device
    npar = parent.shape[0]
    n = 2 * npar - 1
    before = ask.count
    # parent-queried points keep their values; (i, j, k) -> (2i, 2j, 2k) preserves the order
    exact = _Sorted(_lin(2 * _unlin(parent_exact.keys, npar), n), parent_exact.vals)

    # membership of queried points: a bit per lattice point where that is small (a direct lookup
    # instead of a binary search per candidate, every round), else the sorted keys
    known_mask = None
    if n ** 3 <= KNOWN_MASK_MAX_POINTS:
        known_mask = torch.zeros(n ** 3, dtype=torch.bool, device=dev)
        known_mask[exact.keys] = True
    nat = _native_round(dev)  # merges at any size; the check kernel needs the mask
    new = _first_candidates(parent, exact, known_mask, cfg)
    vals = ask(_unlin(new, n) * h)
    exact.add(new, vals, nat)
    if known_mask is not None:
        known_mask[new] = True
    first = ask.count - before

    rounds = 0
    nb = torch.tensor(_NEIGHBOURS, dtype=torch.int64, device=dev)
    check = cfg.lossless and (cfg.exact_vertices or h > 1)
    # points found by the check are merged into ``exact`` once at the end (no big re-sort per round)
    recent = _Sorted(new[:0], vals[:0])
    found_keys, found_vals = [], []
    while check and len(new) and rounds < cfg.max_rounds:
        rounds += 1
        if nat is not None and known_mask is not None:  # the torch round body below in one native call (same arithmetic, sorted keys)
            new = torch.from_numpy(nat.octree_check_round(new.numpy(), vals.numpy(), parent.numpy(),
                                                          known_mask.numpy(), cfg.level))
        else:
            p = _unlin(new, n)
            q = (p[:, None, :] + nb[None]).reshape(-1, 3)
            s = (vals > cfg.level).repeat_interleave(len(nb))
            ok = _in_range(q, n - 1)
            q, s = q[ok], s[ok]
            ql = _lin(q, n)
            known = known_mask[ql] if known_mask is not None else exact.find(ql)[0] | recent.find(ql)[0]
            q, s, ql = q[~known], s[~known], ql[~known]
            disagree = (interp_from_parent(parent, q) > cfg.level) != s
            new = torch.unique(ql[disagree])
        if len(new) == 0:
            break
        vals = ask(_unlin(new, n) * h)
        if known_mask is not None:
            known_mask[new] = True
            found_keys.append(new)
            found_vals.append(vals)
        else:
            recent.add(new, vals, nat)
    if found_keys:
        recent = _Sorted(torch.cat(found_keys), torch.cat(found_vals))  # disjoint rounds: no duplicates
    if len(recent.keys):
        exact.add(recent.keys, recent.vals, nat)
    if check and rounds >= cfg.max_rounds:
        log.warning("octree: lossless check stopped after %d rounds at stride %d", rounds, h)
    info = {"stride": h, "queries": ask.count - before, "surface_queries": first,
            "lossless_queries": ask.count - before - first, "rounds": rounds}
    return exact, info
