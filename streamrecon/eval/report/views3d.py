"""Pictures of a person's mesh from the views the camera never saw, with their fitted body seen
through it (CPU, ``eval.render``): the mesh turned about the vertical axis through the body's
centre (front, side, back, or a turntable of N angles), orthographic, shaded grey; where the body
lies inside the mesh it tints the mesh blue, where it sticks out it is drawn red.

Frames: vertices in the image frame (x right, y down, z away; pixels). A view turns the scene by
``angle`` degrees about the vertical line x = cx, z = cz (0: the input camera's view; 90: the side
that was on the picture's left now faces the camera; 180: the back), then looks along +z as the
input camera does. Pictures are [S, S, 3] uint8 RGB over the square window (x0, y0, size) of the
image frame that holds the person at every turn (``view_window``). The body is drawn only where it lies inside the frame (``clip``): the
parts the camera could not see at all are not judged either."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

BACKGROUND = 250
MESH_GREY = np.array([200, 200, 200], np.float64)
BODY_INSIDE = np.array([60, 120, 255], np.float64)
BODY_OUTSIDE = np.array([230, 40, 40], np.float64)
INSIDE_TINT = 0.35
"""how strongly a body inside the mesh tints it"""

VIEWS = (("front", 0.0), ("side", 90.0), ("back", 180.0))


def turn(vertices: np.ndarray, angle_deg: float, centre: tuple) -> np.ndarray:
    """[N, 3] image-frame ``vertices`` turned by ``angle_deg`` about the vertical axis through
    ``centre`` (cx, cz)."""
    v = np.asarray(vertices, np.float64)
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    x, z = v[:, 0] - centre[0], v[:, 2] - centre[1]
    return np.stack([centre[0] + c * x + s * z, v[:, 1], centre[1] - s * x + c * z], 1)


def _shade(vertices, faces, size: int, window: tuple):
    """(depth [S, S] raster z, +inf off; Lambert [S, S] in [0, 1]) of a mesh in the window."""
    from ..render.rasterizer import rasterize
    from ..render.shading import lambert, normal_image

    x0, y0, w = window
    k = size / w
    raster = np.stack([(vertices[:, 0] - x0) * k, (vertices[:, 1] - y0) * k, vertices[:, 2] * k], 1)
    frags = rasterize(raster, faces, size, size)
    shade = lambert(normal_image(frags, raster, faces), frags.mask, ambient=0.25)
    return frags.depth.astype(np.float64), shade


def xray(mesh_v, mesh_f, body_v: Optional[np.ndarray], body_f: Optional[np.ndarray], angle_deg: float,
         centre: tuple, window: tuple, size: int) -> np.ndarray:
    """[S, S, 3] uint8: the mesh (grey) and the body (blue through the mesh, red where it is in
    front of the mesh's surface or outside its silhouette), turned by ``angle_deg``."""
    img = np.full((size, size, 3), float(BACKGROUND))
    mesh_f = np.asarray(mesh_f, np.int64)
    md = np.full((size, size), np.inf)
    if len(mesh_f):
        md, ms = _shade(turn(mesh_v, angle_deg, centre), mesh_f, size, window)
        on = np.isfinite(md)
        img[on] = MESH_GREY * ms[on, None]
    if body_v is not None and body_f is not None and len(body_f):
        bd, bs = _shade(turn(body_v, angle_deg, centre), np.asarray(body_f, np.int64), size, window)
        body_on = np.isfinite(bd)
        out = body_on & (bd < md)
        inside = body_on & ~out
        img[inside] = img[inside] * (1 - INSIDE_TINT) + BODY_INSIDE * INSIDE_TINT
        img[out] = BODY_OUTSIDE * (0.35 + 0.65 * bs[out, None])
    return np.clip(img, 0, 255).astype(np.uint8)


def view_window(points: np.ndarray, centre: tuple, rect, margin: float = 0.04) -> tuple:
    """(x0, y0, size) in image-frame pixels: a square that holds ``points`` [N, 3] at every turn
    about ``centre`` (their largest distance from the axis across, their height down), grown by
    ``margin``; the crop rect when there are none."""
    if points is None or len(points) == 0:
        x, y, w, h = (float(r) for r in rect)
        return (x, y, max(w, h))
    radius = float(np.sqrt((points[:, 0] - centre[0]) ** 2 + (points[:, 2] - centre[1]) ** 2).max())
    y0, y1 = float(points[:, 1].min()), float(points[:, 1].max())
    size = max(2.0 * radius, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    return (centre[0] - size / 2, 0.5 * (y0 + y1) - size / 2, size)


def view_centre(rect, body_v: Optional[np.ndarray] = None, mesh_v: Optional[np.ndarray] = None) -> tuple:
    """(cx, cz) of the turning axis: the mesh's mean x and depth (it turns in place; a body
    cut by the frame would put the axis at its hidden hips), else the body's, else the rect's
    centre at depth 0."""
    ref = mesh_v if mesh_v is not None and len(mesh_v) else body_v
    if ref is not None and len(ref):
        return float(np.mean(ref[:, 0])), float(np.mean(ref[:, 2]))
    x, _, w, _ = (float(r) for r in rect)
    return x + w / 2, 0.0


def clip_faces(vertices: np.ndarray, faces: np.ndarray, box: tuple) -> np.ndarray:
    """The ``faces`` whose centre lies inside ``box`` (x0, y0, x1, y1) in x, y."""
    f = np.asarray(faces, np.int64)
    c = np.asarray(vertices, np.float64)[f].mean(1)
    x0, y0, x1, y1 = box
    return f[(c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)]


def layout(mesh_v, mesh_f, body_v, body_f, rect, clip: Optional[tuple] = None) -> tuple:
    """(centre (cx, cz), window (x0, y0, size), body faces kept) of one person's pictures: the body
    only where its faces lie inside ``clip`` (x0, y0, x1, y1: the frame) when given."""
    mesh_v = np.asarray(mesh_v, np.float64)
    mesh_f = np.asarray(mesh_f, np.int64)
    shown = [mesh_v[np.unique(mesh_f)]] if len(mesh_f) else []
    if body_v is not None and body_f is not None:
        if clip is not None:
            body_f = clip_faces(body_v, body_f, clip)
        shown.append(body_v[np.unique(body_f)])
    centre = view_centre(rect, body_v, shown[0] if len(mesh_f) else None)
    return centre, view_window(np.concatenate(shown) if shown else None, centre, rect), body_f


def views(mesh_v, mesh_f, body_v, body_f, rect, size: int, angles: Sequence[float],
          clip: Optional[tuple] = None) -> list:
    """``xray`` pictures of one person at ``angles`` (degrees), laid out by ``layout``."""
    centre, window, body_f = layout(mesh_v, mesh_f, body_v, body_f, rect, clip)
    mesh_v = np.asarray(mesh_v, np.float64)
    return [xray(mesh_v, mesh_f, body_v, body_f, a, centre, window, size) for a in angles]


def strip(pictures: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Pictures [S, S, 3] side by side on a white ``gap``."""
    if not pictures:
        raise ValueError("pictures: expected at least one")
    h = max(p.shape[0] for p in pictures)
    out = np.full((h, sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1), 3), 255, np.uint8)
    x = 0
    for p in pictures:
        out[: p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out
