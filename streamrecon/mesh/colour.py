"""Per-vertex colour sampled from the input image: the front view's colour at the pixel each
vertex projects to (orthographic along z), bilinear, clamped at the image border. Back-facing
vertices get the colour of the front pixel in front of them (one view is all we have)."""
from __future__ import annotations

import numpy as np

from .coords import crop_to_image_points


def sample_vertex_colours(vertices_crop: np.ndarray, image: np.ndarray, rect) -> np.ndarray:
    """uint8 [V, 3] RGB for crop-frame vertices [V, 3]; ``image`` uint8 [H, W, 3] RGB, ``rect``
    the crop (x, y, w, h) in image pixels. Pixel (r, c) covers [c, c+1) x [r, r+1)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 [H, W, 3] RGB, got {img.dtype} {list(img.shape)}")
    h, w = img.shape[:2]
    p = crop_to_image_points(vertices_crop, rect)
    x = np.clip(p[:, 0] - 0.5, 0.0, w - 1.0)
    y = np.clip(p[:, 1] - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2 if w > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2 if h > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    f = img.astype(np.float32)
    top = f[y0, x0] * (1 - fx) + f[y0, x1] * fx
    bot = f[y1, x0] * (1 - fx) + f[y1, x1] * fx
    return np.clip(np.rint(top * (1 - fy) + bot * fy), 0, 255).astype(np.uint8)
