"""Orthographic renders of a mesh in the crop frame by ray casting (embree through trimesh).

Pixel convention (the one the model samples with ``grid_sample(align_corners=True)``): an image of
``res`` x ``res`` pixels covers the crop square; pixel (row i, column j) has its centre at crop
x = -1 + 2 j / (res - 1), y = 1 - 2 i / (res - 1). Rays start in front of the crop (z = -3) and
travel along +z (away from the camera).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Render:
    """``mask`` [R, R] bool; ``normals`` [R, R, 3] float32 crop-frame unit normals (0 off the
    person); ``depth`` [R, R] float32 crop z of the first hit (+inf off the person);
    ``face`` [R, R] int64 index of the hit triangle (-1 off the person); ``back_depth`` [R, R]
    float32 crop z of the first hit of a ray cast from behind, i.e. where the pixel's ray last
    leaves the body (+inf off the person), when asked for (``render(..., back=True)``)."""

    mask: np.ndarray
    normals: np.ndarray
    depth: np.ndarray
    face: np.ndarray
    back_depth: Optional[np.ndarray] = None


def pixel_grid(res: int) -> np.ndarray:
    """[res, res, 2] crop (x, y) of each pixel centre."""
    t = np.linspace(-1.0, 1.0, res)
    xs, ys = np.meshgrid(t, -t)
    return np.stack([xs, ys], -1)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    n = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)


def _first_hits(mesh, xy: np.ndarray, from_behind: bool):
    """(hit crop z [N] float32, +inf on a miss; hit triangle [N] int64, -1 on a miss) of the
    orthographic rays through ``xy`` [N, 2]: along +z from z = -3, or along -z from z = +3."""
    z0, dz = (3.0, -1.0) if from_behind else (-3.0, 1.0)
    origins = np.concatenate([xy, np.full((len(xy), 1), z0)], 1)
    dirs = np.tile([0.0, 0.0, dz], (len(xy), 1))
    locs, ray_idx, tri_idx = mesh.ray.intersects_location(origins, dirs, multiple_hits=False)
    depth = np.full(len(xy), np.inf, np.float32)
    face = np.full(len(xy), -1, np.int64)
    depth[ray_idx] = locs[:, 2]
    face[ray_idx] = tri_idx
    return depth, face


def render(vertices: np.ndarray, faces: np.ndarray, res: int, back: bool = False) -> Render:
    """Ray-cast the mesh (crop frame, outward faces) at ``res`` x ``res``; ``back``: also cast
    from behind for ``Render.back_depth`` (same mesh and ray structure, one more cast)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    xy = pixel_grid(res).reshape(-1, 2)
    depth, face = _first_hits(mesh, xy, from_behind=False)
    hit = face >= 0
    normals = np.zeros((len(xy), 3), np.float32)
    normals[hit] = face_normals(vertices, faces)[face[hit]]
    back_depth = _first_hits(mesh, xy, from_behind=True)[0].reshape(res, res) if back else None
    return Render(hit.reshape(res, res), normals.reshape(res, res, 3), depth.reshape(res, res), face.reshape(res, res),
                  back_depth)


def shade(r: Render, albedo: Optional[np.ndarray] = None, light=(0.3, 0.5, -1.0), ambient: float = 0.35) -> np.ndarray:
    """A Lambert-shaded uint8 [R, R, 3] RGB image on black; ``albedo`` [F, 3] floats in [0, 1] per
    triangle (grey when None)."""
    ld = np.asarray(light, np.float64)
    ld = ld / np.linalg.norm(ld)
    lam = np.clip(-(r.normals @ ld), 0, 1) * (1 - ambient) + ambient
    col = np.full(r.mask.shape + (3,), 0.7)
    if albedo is not None:
        col = np.where(r.mask[..., None], albedo[np.maximum(r.face, 0)], 0.0)
    img = col * lam[..., None] * r.mask[..., None]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
