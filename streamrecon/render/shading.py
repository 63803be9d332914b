"""Normals and shading of rasterised meshes. All arrays are in the raster frame (x right, y down,
z away from the camera), so a surface facing the camera has a normal with n_z < 0."""
from __future__ import annotations

import numpy as np

from .rasterizer import Fragments


def face_normals(vertices, faces) -> np.ndarray:
    """[F, 3] unit normals (b - a) x (c - a) of the faces; zero for degenerate faces."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces, dtype=np.int64)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def vertex_normals(vertices, faces) -> np.ndarray:
    """[V, 3] unit normals: area-weighted sum of the adjacent face normals (zero when isolated)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area: the weight
    idx = f.ravel()
    acc = np.stack([np.bincount(idx, weights=np.repeat(n[:, c], 3), minlength=len(v)) for c in range(3)],
                   axis=1).astype(np.float64).reshape(len(v), 3)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.divide(acc, length, out=np.zeros_like(acc), where=length > 0)


def normal_image(frags: Fragments, vertices, faces, smooth: bool = True) -> np.ndarray:
    """[H, W, 3] float32 unit surface normals per pixel (zero on background), flipped to face the
    camera (n_z <= 0) so the picture does not depend on the mesh's winding. ``smooth``
    interpolates vertex normals with the barycentric weights; otherwise flat face normals."""
    h, w = frags.face_index.shape
    out = np.zeros((h, w, 3), dtype=np.float64)
    m = frags.mask
    fid = frags.face_index[m]
    f = np.asarray(faces, dtype=np.int64)
    fn = face_normals(vertices, f)
    if smooth:
        vn = vertex_normals(vertices, f)
        corners = vn[f[fid]]  # [P, 3 corners, 3]
        # Vertex normals of a mesh whose faces disagree in winding could point either way:
        # align each corner with its face normal before interpolating.
        sign = np.sign((corners * fn[fid][:, None, :]).sum(axis=2, keepdims=True))
        sign[sign == 0] = 1.0
        n = (corners * sign * frags.bary[m][:, :, None]).sum(axis=1)
        length = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.where(length > 1e-12, n / np.maximum(length, 1e-12), fn[fid])
    else:
        n = fn[fid]
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
