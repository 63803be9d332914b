"""Options of the occupancy evaluators. Torch-free, so the CLI can build its flags from them
without importing torch."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

LEVEL = 0.5
"""iso level of an occupancy field unless its model asks for another: inside = occupancy > level"""
MAX_RESOLUTION = 1024
"""the largest grid the octree's 32-bit keys and its memory model are checked for"""


def check_resolution(resolution: int) -> int:
    """``resolution`` as an int; ValueError unless an integer in [2, ``MAX_RESOLUTION``]."""
    if (not isinstance(resolution, numbers.Integral) or isinstance(resolution, bool)
            or not 2 <= resolution <= MAX_RESOLUTION):
        raise ValueError(f"resolution: expected an integer in [2, {MAX_RESOLUTION}] points per axis, got {resolution!r}")
    return int(resolution)


@dataclass(frozen=True)
class DenseConfig:
    """Options of the dense evaluator."""

    batch_points: int = 262144
    """points per query_fn call (bounds the network's activation memory)"""
    level: float = LEVEL
    """iso level: inside = occupancy > level"""


@dataclass(frozen=True)
class OctreeConfig:
    """Options of the octree evaluator (defaults: lossless, ~0.2-0.5% of dense queries on a body)."""

    init_resolution: int = 16
    """points per axis of the coarse lattice queried in full (the stride is rounded to a power of 2;
    16 = a 0.125-wide lattice in crop units: anything detached and smaller can be missed)"""
    band: int = 0
    """also query every point of the coarse cells within this many cells of a surface cell
    (0 = only the edges, faces and cells the surface crosses; raise for fields with detached
    features thinner than the coarse spacing)"""
    lossless: bool = True
    """re-query neighbours where the network disagrees with interpolation until nothing disagrees
    (the marching-cubes mesh then equals the dense one on every surface the octree touched)"""
    exact_vertices: bool = True
    """with lossless: run the check at the finest level too, so both ends of every crossed edge
    are network values and vertices equal the dense grid's (off: ~17% fewer queries; features
    first seen at the finest level are not followed, vertices move by < 1 voxel where one end
    was interpolated)"""
    margin: float = 0.0
    """also refine every coarse cell (query all its child points) with a corner value within this
    distance of the level, so detached features whose peak barely crosses the level between
    lattice points are found (0 = off: only cells the surface crosses)"""
    spread: float = 0.0
    """also refine every coarse cell whose corner values differ by more than this (max - min;
    the reference PIFuHD octree's criterion, 0.05 there; 0 = off)"""
    batch_points: int = 65536
    """points per query_fn call (bounds the network's activation memory)"""
    level: float = LEVEL
    """iso level: inside = occupancy > level"""
    max_rounds: int = 100000
    """safety cap on lossless rounds per level (a flood fill advances one voxel per round)"""
