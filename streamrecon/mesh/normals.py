"""Vertex normals: the area-weighted sum of the incident faces' normals (right-hand rule on the
face winding), normalised. With faces counter-clockwise seen from outside they point out."""
from __future__ import annotations

import numpy as np


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """[F, 3] float64 face normals; un-normalised their length is twice the face area."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if normalize:
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    return n


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] float32 unit normals; a vertex used by no (non-degenerate) face gets (0, 0, 0)."""
    nv = len(vertices)
    fn = face_normals(vertices, faces, normalize=False)
    f = np.asarray(faces, dtype=np.int64)
    out = np.zeros((nv, 3), dtype=np.float64)
    for c in range(3):
        w = np.repeat(fn[:, c], 3)
        out[:, c] = np.bincount(f.ravel(), weights=w, minlength=nv)
    length = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(length > 0, out / np.maximum(length, 1e-30), 0.0)
    return out.astype(np.float32)


def mesh_area_volume(vertices: np.ndarray, faces: np.ndarray):
    """(surface area, signed enclosed volume) of a triangle mesh; the volume is positive when
    the faces are wound counter-clockwise seen from outside."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    return float(area), float(volume)
