"""Occupancy labels: points near the surface and in the volume, labelled inside/outside with
libigl's fast winding number (exact for watertight meshes, and a union for concatenated ones).

Coordinates are those of the mesh (world metres in ``generate``). ``sigmas`` are in the same
units; PIFu samples around the surface with a Gaussian of ~5 cm and adds a uniform share.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def winding_number(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N] generalised winding number of ``points`` w.r.t. the mesh (~1 inside, ~0 outside)."""
    import igl

    return igl.fast_winding_number(np.ascontiguousarray(vertices, np.float64),
                                   np.ascontiguousarray(faces, np.int64),
                                   np.ascontiguousarray(points, np.float64))


def inside(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N] bool occupancy (winding number > 0.5)."""
    return winding_number(vertices, faces, points) > 0.5


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform by area on the mesh and their face indices."""
    a = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(a[:, 1] - a[:, 0], a[:, 2] - a[:, 0]), axis=1)
    fi = rng.choice(len(faces), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = a[fi]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return pts, fi


def sample_points(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator,
                  sigmas: Sequence[float] = (0.01, 0.05), uniform_share: float = 0.125,
                  box: Tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """[n, 3] training points: (1 - uniform_share) n near the surface, split evenly over Gaussian
    offsets of each ``sigma``; the rest uniform in ``box`` (lo, hi) (default: the mesh's bounding
    box grown by 20%)."""
    n_uni = int(round(n * uniform_share))
    n_surf = n - n_uni
    pts, _ = sample_surface(vertices, faces, n_surf, rng)
    sig = np.repeat(np.asarray(sigmas, np.float64), int(np.ceil(n_surf / len(sigmas))))[:n_surf]
    pts = pts + rng.normal(size=pts.shape) * sig[:, None]
    if box is None:
        lo, hi = vertices.min(0), vertices.max(0)
        pad = 0.2 * (hi - lo)
        box = (lo - pad, hi + pad)
    uni = rng.uniform(box[0], box[1], size=(n_uni, 3))
    return np.concatenate([pts, uni], 0)
