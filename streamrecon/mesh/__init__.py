"""Mesh extraction and post-processing: marching cubes (PyMCubes dense / native sparse), cleanup
(small components, smoothing), vertex normals, per-vertex colour, crop<->image frames. numpy
at the core; torch only where an ``OccupancyGrid`` is read."""
from .cleanup import CleanupConfig, cleanup_mesh, connected_components, taubin_smooth
from .coords import crop_to_image_points, image_to_crop_points, mesh_to_frame
from .marching_cubes import extract_mesh, marching_cubes_dense, marching_cubes_sparse
from .normals import vertex_normals

__all__ = [
    "CleanupConfig",
    "cleanup_mesh",
    "connected_components",
    "crop_to_image_points",
    "extract_mesh",
    "image_to_crop_points",
    "marching_cubes_dense",
    "marching_cubes_sparse",
    "mesh_to_frame",
    "taubin_smooth",
    "vertex_normals",
]
