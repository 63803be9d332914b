"""Crop frame <-> image frame (``streamrecon.types``) for points, normals and meshes.

image: x_img = rx + (x + 1)/2 * rw, y_img = ry + (1 - y)/2 * rh, z_img = z * rw/2 (pixels, y down).
The y flip mirrors space, so a mesh moved between the frames has its face winding reversed to stay
counter-clockwise seen from outside; normals transform with the inverse transpose."""
from __future__ import annotations

import numpy as np

from ..types import FRAMES, Mesh


def rect_tuple(rect) -> tuple:
    """(x, y, w, h) as floats, validated (w, h > 0); ValueError naming ``rect`` otherwise."""
    if rect is None or len(rect) != 4:
        raise ValueError(f"rect: expected (x, y, w, h) of the crop in frame pixels, got {rect!r}")
    x, y, w, h = (float(v) for v in rect)
    if not (w > 0 and h > 0):
        raise ValueError(f"rect: width and height must be > 0, got {rect!r}")
    return x, y, w, h


def as_points(points, name: str = "points") -> np.ndarray:
    """[N, 3] float64 points (a copy only when needed); ValueError naming ``name`` otherwise."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name}: expected shape [N, 3], got {list(p.shape)}")
    return p


def crop_to_image_points(p: np.ndarray, rect) -> np.ndarray:
    """[N, 3] crop-frame points -> image-frame pixels (float64)."""
    rx, ry, rw, rh = rect_tuple(rect)
    p = as_points(p)
    return np.stack([rx + (p[:, 0] + 1.0) * 0.5 * rw, ry + (1.0 - p[:, 1]) * 0.5 * rh, p[:, 2] * rw * 0.5], axis=1)


def image_to_crop_points(p: np.ndarray, rect) -> np.ndarray:
    """Inverse of ``crop_to_image_points``."""
    rx, ry, rw, rh = rect_tuple(rect)
    p = as_points(p)
    return np.stack([2.0 * (p[:, 0] - rx) / rw - 1.0, 1.0 - 2.0 * (p[:, 1] - ry) / rh, 2.0 * p[:, 2] / rw], axis=1)


def _normals_to(n: np.ndarray, rect, to_image: bool) -> np.ndarray:
    _, _, rw, rh = rect_tuple(rect)
    # inverse transpose of diag(rw/2, -rh/2, rw/2) (or of its inverse), then renormalise
    s = np.array([2.0 / rw, -2.0 / rh, 2.0 / rw]) if to_image else np.array([rw / 2.0, -rh / 2.0, rw / 2.0])
    m = np.asarray(n, dtype=np.float64) * s
    length = np.linalg.norm(m, axis=1, keepdims=True)
    return np.where(length > 0, m / np.maximum(length, 1e-30), 0.0).astype(np.float32)


def mesh_to_frame(mesh: Mesh, frame: str, rect=None) -> Mesh:
    """``mesh`` in ``frame`` ("crop" or "image"), using ``rect`` or ``mesh.rect``."""
    if frame not in FRAMES:
        raise ValueError(f"frame: expected one of {FRAMES}, got {frame!r}")
    if mesh.frame == frame:
        return mesh
    rect = rect if rect is not None else mesh.rect
    to_image = frame == "image"
    conv = crop_to_image_points if to_image else image_to_crop_points
    normals = None if mesh.normals is None else _normals_to(mesh.normals, rect, to_image)
    return Mesh(conv(mesh.vertices, rect), mesh.faces[:, ::-1], normals=normals, colors=mesh.colors,
                frame=frame, rect=tuple(float(v) for v in rect), meta=dict(mesh.meta))
