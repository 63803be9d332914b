"""Normals and shading of rasterised meshes. All arrays are in the raster frame (x right, y down,
z away from the camera), so a surface facing the camera has a normal with n_z < 0."""
from __future__ import annotations

import numpy as np

from .rasterizer import Fragments


def _face_cross(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """[F, 3] (b - a) x (c - a): the face normal scaled by twice the face area."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return np.cross(b - a, c - a)


def _unit(n: np.ndarray) -> np.ndarray:
    length = np.sqrt(n[:, 0] ** 2 + n[:, 1] ** 2 + n[:, 2] ** 2)[:, None]
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def face_normals(vertices, faces) -> np.ndarray:
    """[F, 3] unit normals (b - a) x (c - a) of the faces; zero for degenerate faces."""
    return _unit(_face_cross(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)))


def vertex_normals(vertices, faces, _cross: np.ndarray = None) -> np.ndarray:
    """[V, 3] unit normals: area-weighted sum of the adjacent face normals (zero when isolated)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = _face_cross(v, f) if _cross is None else _cross  # length = 2 * area: the weight
    idx = f.ravel()
    acc = np.stack([np.bincount(idx, weights=np.repeat(n[:, c], 3), minlength=len(v)) for c in range(3)],
                   axis=1).astype(np.float64).reshape(len(v), 3)
    return _unit(acc)


def normal_image(frags: Fragments, vertices, faces, smooth: bool = True) -> np.ndarray:
    """[H, W, 3] float32 unit surface normals per pixel (zero on background), flipped to face the
    camera (n_z <= 0) so the picture does not depend on the mesh's winding. ``smooth``
    interpolates vertex normals with the barycentric weights; otherwise flat face normals."""
    h, w = frags.face_index.shape
    out = np.zeros((h, w, 3), dtype=np.float64)
    m = frags.mask
    fid = frags.face_index[m]
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    cross = _face_cross(v, f)
    fn = _unit(cross)[fid]  # [P, 3] face normal per covered pixel
    if smooth:
        vn = vertex_normals(v, f, _cross=cross)
        bary = frags.bary[m].astype(np.float64)
        fp = f[fid]
        n = np.zeros_like(fn)
        for k in range(3):
            corner = vn[fp[:, k]]
            # Vertex normals of a mesh whose faces disagree in winding could point either way:
            # align each corner with its face normal before interpolating.
            dot = corner[:, 0] * fn[:, 0] + corner[:, 1] * fn[:, 1] + corner[:, 2] * fn[:, 2]
            n += corner * (np.where(dot < 0, -1.0, 1.0) * bary[:, k])[:, None]
        length = np.sqrt(n[:, 0] ** 2 + n[:, 1] ** 2 + n[:, 2] ** 2)[:, None]
        n = np.where(length > 1e-12, n / np.maximum(length, 1e-12), fn)
    else:
        n = fn
    n = np.where(n[:, 2:3] > 0, -n, n)
    out[m] = n
    return out.astype(np.float32)


def lambert(normals: np.ndarray, mask: np.ndarray, ambient: float = 0.15) -> np.ndarray:
    """[H, W] float32 in [0, 1]: headlight Lambert shading (light along the view axis) of camera-
    facing ``normals``, ``ambient`` + (1 - ambient) * cos(angle to the view axis); 0 on background."""
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient: expected a value in [0, 1], got {ambient}")
    cos = np.clip(-normals[..., 2], 0.0, 1.0)
    return np.where(mask, ambient + (1.0 - ambient) * cos, 0.0).astype(np.float32)


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 normal map in the usual colouring: red = right, green = up, blue = toward
    the viewer (so a camera-facing surface is light blue); black background."""
    n = normals * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    rgb = np.clip(np.rint((n + 1.0) * 127.5), 0, 255).astype(np.uint8)
    rgb[~mask] = 0
    return rgb
