"""Analytic stand-ins for the network, for testing and demonstrating the streaming engine without a
checkpoint (``--model synthetic``): a sphere fitted to the crop's bright pixels.

- ``SphereModel`` is a real ``ImplicitModel`` (features = sphere centre and radius in the crop frame;
  occupancy = a smooth step across the sphere's surface), so it can drive the octree/marching-cubes
  path too.
- ``sphere_reconstruct`` has ``reconstruct_person``'s signature but meshes the sphere analytically
  (a UV sphere, no grid), so pipeline tests cost microseconds per frame.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..types import Mesh


def bright_disc(image: np.ndarray, rect: tuple) -> Tuple[float, float, float]:
    """Centre (x, y) and radius of the pixels brighter than mid-grey inside the square crop
    ``rect``, in the crop frame (x right, y up, [-1, 1] across the crop). A disc of area A has
    radius sqrt(A / pi). With no bright pixel: a small sphere at the centre."""
    x, y, w, h = rect
    gray = image.astype(np.float32).mean(axis=2)
    ys, xs = np.nonzero(gray > 127)
    if len(xs) == 0:
        return 0.0, 0.0, 0.1
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    r_px = float(np.sqrt(len(xs) / np.pi))
    return (2.0 * (cx - x) / w - 1.0, 1.0 - 2.0 * (cy - y) / h, 2.0 * r_px / w)


class SphereModel:
    """``ImplicitModel`` whose surface is a sphere over the crop's bright disc (z centre 0).
    Used from one thread; device CPU."""

    name = "synthetic-sphere"
    device = "cpu"

    def __init__(self, sharpness: float = 50.0) -> None:
        self.sharpness = sharpness

    def encode(self, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None) -> Any:
        return bright_disc(image, rect)

    def query(self, features: Any, points: Any) -> Any:
        import torch

        cx, cy, r = features
        c = torch.tensor([cx, cy, 0.0], dtype=points.dtype, device=points.device)
        d = torch.linalg.norm(points - c, dim=1)
        return torch.sigmoid((r - d) * self.sharpness)


def uv_sphere(rings: int = 16, segments: int = 32) -> Tuple[np.ndarray, np.ndarray]:
    """Unit UV sphere: ``rings - 1`` latitude circles of ``segments`` vertices plus two poles.
    Returns vertices [2 + (rings - 1) * segments, 3] float32 and outward CCW faces [F, 3] int32
    (F = 2 * segments * (rings - 1))."""
    if rings < 2 or segments < 3:
        raise ValueError(f"rings >= 2 and segments >= 3 required, got {rings}, {segments}")
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack([st * np.cos(phi), ct * np.ones_like(phi), st * np.sin(phi)], axis=-1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]).astype(np.float32)
    s = segments
    j = np.arange(s)
    jn = (j + 1) % s
    faces = [np.stack([np.zeros(s, int), 1 + jn, 1 + j], 1)]
    for i in range(rings - 2):
        a, b = 1 + i * s + j, 1 + (i + 1) * s + j
        an, bn = 1 + i * s + jn, 1 + (i + 1) * s + jn
        faces += [np.stack([a, an, b], 1), np.stack([an, bn, b], 1)]
    south = len(verts) - 1
    last = 1 + (rings - 2) * s
    faces.append(np.stack([np.full(s, south), last + j, last + jn], 1))
    return verts, np.concatenate(faces).astype(np.int32)


def sphere_reconstruct(model: Any, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None, cfg: Any = None) -> Mesh:
    """``reconstruct_person`` look-alike: the ``SphereModel`` surface as a UV sphere in the crop
    frame. ``cfg.resolution`` (if given) sets the tessellation (resolution/4 rings)."""
    cx, cy, r = model.encode(image, rect, mask)
    res = int(getattr(cfg, "resolution", 64) or 64)
    rings = max(4, res // 4)
    v, f = uv_sphere(rings, 2 * rings)
    v = v * np.float32(r) + np.array([cx, cy, 0.0], dtype=np.float32)
    return Mesh(v, f, frame="crop", rect=tuple(rect))
