"""Analytic test meshes whose renders are known (used by tests and benchmarks)."""
from __future__ import annotations

import numpy as np


def uv_sphere(radius: float = 1.0, centre=(0.0, 0.0, 0.0), n_lat: int = 96, n_lon: int = 192,
              scale=(1.0, 1.0, 1.0)) -> tuple:
    """Closed UV sphere (an ellipsoid with ``scale``): vertices [V, 3] float64, faces [F, 3] int64,
    counter-clockwise seen from outside in a right-handed frame. ``n_lat`` latitude bands,
    ``n_lon`` longitude segments."""
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"n_lat, n_lon: expected >= 2 and >= 3, got {n_lat}, {n_lon}")
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    th, ph = np.meshgrid(lat, lon, indexing="ij")
    ring = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    v = unit * radius * np.asarray(scale, dtype=np.float64) + np.asarray(centre, dtype=np.float64)
    south = len(v) - 1
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon

    def idx(i, jj):
        return 1 + i * n_lon + jj

    faces = [np.stack([np.zeros(n_lon, int), idx(0, j), idx(0, jn)], 1),
             np.stack([np.full(n_lon, south), idx(n_lat - 2, jn), idx(n_lat - 2, j)], 1)]
    for i in range(n_lat - 2):
        a, b, c, d = idx(i, j), idx(i + 1, j), idx(i + 1, jn), idx(i, jn)
        faces += [np.stack([a, b, c], 1), np.stack([a, c, d], 1)]
    return v, np.concatenate(faces).astype(np.int64)


def box(lo, hi) -> tuple:
    """Axis-aligned box from corner ``lo`` to ``hi``: 8 vertices, 12 triangles."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [[a, b, c] for a, b, c, d in quads] + [[a, c, d] for a, b, c, d in quads]
    return v, np.asarray(faces, dtype=np.int64)
