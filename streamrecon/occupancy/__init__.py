"""Occupancy evaluation over the N^3 query grid of the crop frame: the dense reference evaluator
and the coarse-to-fine octree (its fast twin). See ``grid.py`` for the grid convention and
docs/octree.md for the algorithm. Imports torch (not imported by ``import streamrecon``)."""
from .dense import DenseConfig, evaluate_dense
from .grid import CORNER_OFFSETS, DenseOccupancy, OccupancyGrid, grid_points, index_to_crop, volume_iou
from .octree import OctreeConfig, OctreeOccupancy, evaluate_octree

__all__ = [
    "CORNER_OFFSETS",
    "DenseConfig",
    "DenseOccupancy",
    "OccupancyGrid",
    "OctreeConfig",
    "OctreeOccupancy",
    "evaluate_dense",
    "evaluate_octree",
    "grid_points",
    "index_to_crop",
    "volume_iou",
]
