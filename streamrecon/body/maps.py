"""Front and back depth maps of a fitted body mesh over a person's square crop: at each pixel, the
depth of the body surface nearest to and farthest from the camera.

Frames:
- crop frame (``streamrecon.types``, the network's query frame): x right, y **up**, z **away from
  the camera** (larger z = farther), x and y in [-1, 1] across the square crop, z in the same
  units. Orthographic camera looking along +z, so the front surface has the smallest z.
- map pixels: an R x R map (``size`` = R) samples the crop as the embedded network's input does
  (``align_corners=True``; ``models.embedded.model.crop_affine``, ``models.embedded.net``):
  pixel (row i, column j) is the crop point x = -1 + 2 j / (R - 1), y = 1 - 2 i / (R - 1). Map
  pixel (i, j) is the network's input pixel (i, j), and the training renders' pixel (i, j)
  (``training.synth.render.pixel_grid``, whose front/back depth maps are first hits along +z / -z).
- raster frame (the native kernel's): x right, y down in pixels of the R x R picture, pixel (i, j)
  centred at (j + 0.5, i + 0.5); here X = (x + 1) (R - 1) / 2 + 0.5, Y = (1 - y) (R - 1) / 2 + 0.5,
  Z = z unchanged (depth needs no scale: interpolation along the view is affine).

Coverage: a pixel is on the body when its centre lies inside or on a triangle (either winding;
degenerate triangles and triangles with a non-finite coordinate cover nothing). Depth is
interpolated linearly over the triangle, exact for an orthographic camera. Details and the
crack-free rule for shared edges: ``native/depth_maps.cpp``.

``body_depth_maps`` runs the native kernel (``streamrecon._native.depth_range_maps``, no GIL);
``body_depth_maps_reference`` is its numpy twin, one triangle at a time, with the same float64
arithmetic in the same order, so the two agree bit for bit (tests/body/test_maps.py).
"""
from __future__ import annotations

import math

import numpy as np

MAX_SIDE = 1 << 16
"""largest map side the native kernel accepts (``kMaxSide`` in native/depth_maps.cpp)"""


def body_depth_maps(vertices_crop, faces, size: int, native: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front and back depth maps of a body mesh over its ``size`` x ``size`` crop.

    ``vertices_crop`` [V, 3] float in the crop frame (x right, y up, z away from the camera; see
    the module docstring), ``faces`` [F, 3] integer vertex indices (either winding), ``size`` >= 2.
    Returns ``(front, back, mask)``: ``front`` [size, size] float32 crop z of the nearest surface
    (the smallest z; +inf off the body), ``back`` [size, size] float32 crop z of the farthest
    surface (the largest z; -inf off the body), ``mask`` [size, size] bool, True on the body
    (the training shards' depth maps hold +inf off the body in both maps: select with ``mask``).
    ``native=False`` (or an unbuilt extension, with one warning) runs the numpy twin.
    ValueError names the argument on bad input."""
    raster, f32, size = _prepare(vertices_crop, faces, size)
    nat = None
    if native:
        from ..native import native_or_none

        nat = native_or_none("body depth maps")
    if nat is not None:
        front, back = nat.depth_range_maps(raster, f32, size, size)
    else:
        front, back = raster_depth_maps_reference(raster, f32, size, size)
    return front, back, np.isfinite(front)


def body_depth_maps_reference(vertices_crop, faces, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numpy twin of ``body_depth_maps`` (same arguments and results, bit for bit)."""
    return body_depth_maps(vertices_crop, faces, size, native=False)


def crop_to_raster(vertices_crop, size: int) -> np.ndarray:
    """[V, 3] crop-frame points -> float32 [V, 3] raster coordinates of the ``size`` x ``size`` map
    (X = (x + 1) (size - 1) / 2 + 0.5, Y = (1 - y) (size - 1) / 2 + 0.5, Z = z), computed in
    float64 and rounded once."""
    v = np.asarray(vertices_crop, dtype=np.float64)
    s = (size - 1) * 0.5
    out = np.empty(v.shape, np.float32)
    out[:, 0] = (v[:, 0] + 1.0) * s + 0.5
    out[:, 1] = (1.0 - v[:, 1]) * s + 0.5
    out[:, 2] = v[:, 2]
    return out


def raster_depth_maps_reference(vertices: np.ndarray, faces: np.ndarray, height: int,
                                width: int) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of ``streamrecon._native.depth_range_maps``: ``vertices`` float32 [V, 3] in
    raster coordinates (x right, y down in pixels, pixel (i, j) centred at (j + 0.5, i + 0.5),
    z = depth, larger = farther), ``faces`` int32 [F, 3]. Returns ``(front, back)`` float32
    [height, width]: min and max z over the triangles covering each pixel centre (+inf / -inf
    where none). One triangle at a time over the pixel centres of its clipped bounding box."""
    _check_raster(vertices, faces, height, width)
    front = np.full((height, width), np.inf, np.float32)
    back = np.full((height, width), -np.inf, np.float32)
    v = vertices.astype(np.float64)
    for tri in faces:
        x, y, z = v[tri, 0], v[tri, 1], v[tri, 2]
        if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(z).all()):
            continue
        j0, j1 = _centre_range(x.min(), x.max(), width)
        i0, i1 = _centre_range(y.min(), y.max(), height)
        if j0 > j1 or i0 > i1:
            continue
        area2 = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
        if area2 == 0.0:
            continue  # degenerate
        py = (np.arange(i0, i1 + 1, dtype=np.float64) + 0.5)[:, None]
        px = (np.arange(j0, j1 + 1, dtype=np.float64) + 0.5)[None, :]
        # w_k: edge function of the edge opposite corner k (traversed 1->2, 2->0, 0->1)
        w0 = _edge(x[1], y[1], x[2], y[2], px, py)
        w1 = _edge(x[2], y[2], x[0], y[0], px, py)
        w2 = _edge(x[0], y[0], x[1], y[1], px, py)
        inside = ((w0 >= 0) & (w1 >= 0) & (w2 >= 0)) | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0))
        if not inside.any():
            continue
        # the plane through the corners, clamped to their z range; + 0.0 makes -0 into +0
        inv = 1.0 / area2
        gx = ((z[1] - z[0]) * (y[2] - y[0]) - (z[2] - z[0]) * (y[1] - y[0])) * inv
        gy = ((x[1] - x[0]) * (z[2] - z[0]) - (x[2] - x[0]) * (z[1] - z[0])) * inv
        d = (z[0] + gy * (py - y[0])) + gx * (px - x[0])
        d = (np.minimum(np.maximum(d, z.min()), z.max()) + 0.0).astype(np.float32)
        fb, bb = front[i0:i1 + 1, j0:j1 + 1], back[i0:i1 + 1, j0:j1 + 1]
        fb[inside] = np.minimum(fb[inside], d[inside])
        bb[inside] = np.maximum(bb[inside], d[inside])
    return front, back


def _edge(px_, py_, qx, qy, px, py):
    """Edge function of the directed edge P -> Q at pixel centres (px, py), evaluated from the
    lexicographically smaller endpoint as the kernel does (the triangle across the edge traverses
    it Q -> P from the same origin and gets exactly the negated value: no cracks)."""
    ox, oy = (px_, py_) if (px_ < qx or (px_ == qx and py_ < qy)) else (qx, qy)
    return (qx - px_) * (py - oy) - (qy - py_) * (px - ox)


def _centre_range(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Indices c in [0, n) whose centre c + 0.5 lies in [lo, hi], as (first, last)."""
    first, last = math.ceil(lo - 0.5), math.floor(hi - 0.5)
    return max(first, 0), min(last, n - 1)


def _check_raster(vertices, faces, height, width) -> None:
    if not (isinstance(vertices, np.ndarray) and vertices.dtype == np.float32 and vertices.ndim == 2
            and vertices.shape[1] == 3):
        raise ValueError(f"vertices: expected a numpy float32 [V, 3], got {_describe(vertices)}")
    if not (isinstance(faces, np.ndarray) and faces.dtype == np.int32 and faces.ndim == 2 and faces.shape[1] == 3):
        raise ValueError(f"faces: expected a numpy int32 [F, 3], got {_describe(faces)}")
    if not (0 <= height <= MAX_SIDE and 0 <= width <= MAX_SIDE):
        raise ValueError(f"height, width: expected 0..{MAX_SIDE}, got {height} x {width}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces: indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")


def _prepare(vertices_crop, faces, size):
    """Validated (raster vertices float32 [V, 3], faces int32 [F, 3], size)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 2 <= size <= MAX_SIDE:
        raise ValueError(f"size: expected an integer in [2, {MAX_SIDE}] (pixels across the crop), got {size!r}")
    size = int(size)
    v = np.asarray(vertices_crop)
    if v.size == 0:  # [] and friends: no vertices, whatever their dtype
        v = np.zeros((0, 3))
    if v.ndim != 2 or v.shape[1] != 3 or not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise ValueError(f"vertices_crop: expected real numbers [V, 3], got {_describe(v)}")
    f = np.asarray(faces)
    if f.size == 0:
        f = np.zeros((0, 3), np.int32)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces: expected integers [F, 3], got {_describe(f)}")
    if f.dtype != np.int32:
        # out-of-range indices must not wrap into range when narrowed (int32 faces are checked by the kernel)
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError(f"faces: indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
        f = f.astype(np.int32)
    return crop_to_raster(v, size), f, size


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} {list(a.shape)}"
    return type(a).__name__
