"""Occupancy evaluation over the N^3 query grid of the crop frame: the dense reference evaluator
and the coarse-to-fine octree (its fast twin). See ``grid.py`` for the grid convention and
docs/octree.md for the algorithm. Names load lazily: ``config`` is torch-free, the rest imports
torch on first use."""
from __future__ import annotations

import importlib

from .config import DenseConfig, OctreeConfig

_LAZY = {
    "evaluate_dense": "dense",
    "CORNER_OFFSETS": "grid",
    "DenseOccupancy": "grid",
    "OccupancyGrid": "grid",
    "grid_points": "grid",
    "index_to_crop": "grid",
    "volume_iou": "grid",
    "OctreeOccupancy": "octree",
    "evaluate_octree": "octree",
}

__all__ = ["DenseConfig", "OctreeConfig", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
