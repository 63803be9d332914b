"""The views the camera never saw: one person's clothed mesh judged against their fitted body.

The input view shows a silhouette; a mesh that is a flat slab behind it looks right there. The
fitted body (``streamrecon.body``: shape, pose and camera fitted to BlazePose's landmarks) is an
independent 3D reference of the same person in the same frame, and a clothed mesh should hold it:

- **enclosure**: fixed samples on the body's surface (the same surface points in every frame), each
  *covered* when the mesh encloses it (generalised winding number >= 0.5, ``geometry``) or passes
  within a tolerance of it (the fit is a few cm off where the clothes are tight or the skin bare);
- **distance** from each body sample to the mesh surface (mean, 95th percentile);
- **thickness profile**: the mesh's and the body's front-to-back extent (along the camera's view
  axis: the depth the input cannot show), per height band of the body.

Frames: every array is in the ``image`` frame of ``streamrecon.types`` (frame pixels, z depth
pixels away from the camera); the body's cm come from its camera scale (pixels per metre). Depth
is known to a fit only up to an offset, and the clothed meshes of other models may put their depth
origin elsewhere, so the body is first moved along z by the median offset between the two
surfaces' mid-depths (``depth_shift_px``, reported). What counts: the body's surface seen inside
the frame, the crop rect and (with a person mask) the mask grown by the tolerance; the silhouette
itself is judged by the image-space figures, these judge depth.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import geometry

DEPTH_RES = 128
"""pixels across the crop rect of the front/back depth maps the thickness profile is read from"""
MIN_BAND_PIXELS = 8
"""a height band with fewer depth-map pixels on the body gets no thickness ratio"""
MIN_BAND_SAMPLES = 20
"""a height band with fewer judged body samples gets no covered share"""


@dataclass(frozen=True)
class BodyRef:
    """One person's fitted body in one frame: ``vertices`` [V, 3] float64 in the image frame with
    the clothed meshes' depth origin (``body.params.body_mesh``: vertex centroid at z = 0),
    ``faces`` [F, 3] outward, ``scale`` pixels per metre, ``fit`` the ``BodyFit`` it came from."""

    vertices: np.ndarray
    faces: np.ndarray
    scale: float
    fit: object

    def px_to_cm(self, px: Optional[float]) -> Optional[float]:
        return None if px is None or not math.isfinite(px) else 100.0 * px / self.scale


@functools.lru_cache(maxsize=1)
def _body_topology():
    """(the body model, its faces [F, 3] int64), loaded once."""
    from ...body.params import _model

    model = _model()
    return model, np.asarray(model.faces, np.int64)


@functools.lru_cache(maxsize=4)
def body_samples(n: int):
    """(face index [n], barycentric [n, 3]): ``n`` fixed samples uniform by area on the mean
    body's rest surface, so every frame judges the same surface points."""
    model, faces = _body_topology()
    rest = model.asset.vertices.astype(np.float64)
    return geometry.sample_faces(geometry.face_areas(rest, faces), n, seed=0)


def body_from_params(params: dict) -> BodyRef:
    """The ``BodyRef`` of a manifest's ``persons[i]["body"]`` (``body.params.to_params``).
    ValueError names a malformed field."""
    from ...body.params import body_mesh, from_params

    model, faces = _body_topology()
    fit = from_params(params, model)
    mesh = body_mesh(fit)
    v = mesh.vertices.astype(np.float64)
    return BodyRef(v, geometry.outward_faces(v, faces), float(fit.scale), fit)


@dataclass
class DepthMaps:
    """Front and back depth (image-frame z, pixels; NaN off the surface) of a mesh on the
    ``DEPTH_RES`` grid over the crop rect (row 0 at the rect's top)."""

    front: np.ndarray
    back: np.ndarray

    @property
    def cover(self) -> np.ndarray:
        return np.isfinite(self.front)

    @property
    def thickness(self) -> np.ndarray:
        """[R, R] back - front (0 off the surface)."""
        return np.where(self.cover, self.back - self.front, 0.0)


def depth_maps(vertices, faces, rect, frame_size, res: int = DEPTH_RES) -> DepthMaps:
    """``DepthMaps`` of a mesh in the image frame: its first and last surface along each pixel's
    view ray (two z-buffer passes of ``eval.render``, the second on negated depth)."""
    from ..render import CropCamera, rasterize

    cam = CropCamera(rect, frame_size)
    raster = cam.to_raster(vertices, "image", "crop", res)
    to_px = cam.rect[2] / res  # crop-view raster z -> image-frame pixels
    f = np.asarray(faces, np.int64)
    front = rasterize(raster, f, res, res).depth.astype(np.float64)
    flipped = raster.copy()
    flipped[:, 2] = -flipped[:, 2]
    back = -rasterize(flipped, f, res, res).depth.astype(np.float64)
    on = np.isfinite(front)
    return DepthMaps(np.where(on, front * to_px, np.nan), np.where(on, back * to_px, np.nan))


def allowed_region(rect, frame_size, mask: Optional[np.ndarray], grow_px: float, res: int = DEPTH_RES) -> np.ndarray:
    """[R, R] bool on the depth-map grid: pixels inside the frame and, with a ``mask`` ([H, W]
    bool person mask), within ``grow_px`` frame pixels of it. Only there is the body judged."""
    from ..render import CropCamera
    from .silhouette import dilate

    cam = CropCamera(rect, frame_size)
    inside = cam.crop_image(np.ones(cam.frame_size, bool), res)
    if mask is None:
        return inside
    m = cam.crop_image(np.asarray(mask, bool), res)
    grow = grow_px * res / cam.rect[2]
    return inside & (dilate(m, grow) if grow >= 0.5 else m)


def depth_shift(mesh: DepthMaps, body: DepthMaps, region: np.ndarray) -> float:
    """Median of (mesh mid-depth - body mid-depth) over ``region`` pixels both cover (pixels):
    how far to move the body along z to sit in the mesh. 0 when they share no pixel."""
    both = region & mesh.cover & body.cover
    if not both.any():
        return 0.0
    return float(np.median(0.5 * (mesh.front + mesh.back)[both] - 0.5 * (body.front + body.back)[both]))


def band_edges(body: DepthMaps, region: np.ndarray, bands: int) -> Optional[np.ndarray]:
    """[bands + 1] row edges (depth-map rows, floats) of equal height bands over the rows where
    the body covers ``region`` pixels; None when it covers none."""
    rows = np.flatnonzero((region & body.cover).any(1))
    if len(rows) == 0:
        return None
    return np.linspace(int(rows[0]), int(rows[-1]) + 1, bands + 1)


def thickness_profile(mesh: DepthMaps, body: DepthMaps, region: np.ndarray, bands: int, res_to_px: float) -> dict:
    """Front-to-back extent of the mesh against the body's in ``bands`` equal height bands over the
    body's judged rows (``band_edges``; band 0 at the top: the head of an upright person). Per
    band, over the ``region`` pixels the body covers: ``body_px`` and ``mesh_px`` the mean
    thickness (image-frame pixels; the mesh counts 0 where it is missing) and ``ratio`` = mesh /
    body, i.e. how much of the body's volume there the mesh's matches (None below
    ``MIN_BAND_PIXELS`` pixels). ``overall`` the ratio over all bands, ``min_ratio`` and
    ``min_band`` (its band)."""
    on = region & body.cover
    out = {"bands": bands, "body_px": [None] * bands, "mesh_px": [None] * bands, "ratio": [None] * bands,
           "overall": None, "min_ratio": None, "min_band": None}
    edges = band_edges(body, region, bands)
    if edges is None:
        return out
    bt, mt = body.thickness, mesh.thickness
    row_of = np.arange(on.shape[0])
    sum_b = sum_m = 0.0
    for k in range(bands):
        sel = on & ((row_of >= edges[k]) & (row_of < edges[k + 1]))[:, None]
        n = int(sel.sum())
        if n < MIN_BAND_PIXELS:
            continue
        b, m = float(bt[sel].sum()), float(mt[sel].sum())
        sum_b, sum_m = sum_b + b, sum_m + m
        out["body_px"][k] = b / n * res_to_px
        out["mesh_px"][k] = m / n * res_to_px
        out["ratio"][k] = m / b if b > 0 else None
    ratios = [(r, k) for k, r in enumerate(out["ratio"]) if r is not None]
    if ratios:
        out["min_ratio"], out["min_band"] = min(ratios)
        out["overall"] = sum_m / sum_b if sum_b > 0 else None
    return out


def person_depth_metrics(mesh_vertices, mesh_faces, body: BodyRef, rect, frame_size,
                         mask: Optional[np.ndarray] = None, tolerance_cm: float = 3.0, bands: int = 10,
                         points: int = 2000) -> tuple:
    """The 3D figures of one person in one frame. ``mesh_vertices`` [V, 3] / ``mesh_faces`` [F, 3]:
    the clothed mesh in the image frame; ``body``: their fitted body; ``rect`` the crop (x, y, w, h)
    and ``frame_size`` (height, width) in pixels; ``mask`` [H, W] bool or None.

    Returns (figures dict, body vertices moved by the depth shift [V, 3]). Figures (pixels unless
    ``_cm``): ``body_points`` (samples judged), ``body_inside`` (share the mesh encloses),
    ``body_covered`` (share enclosed or within ``tolerance_cm``), ``body_dist_mean_px``,
    ``body_dist_p95_px`` (+ ``_cm``), ``depth_shift_px`` and ``thickness`` (``thickness_profile``),
    ``tolerance_px``."""
    rect = tuple(float(x) for x in rect)
    mv = np.asarray(mesh_vertices, np.float64)
    mf = geometry.outward_faces(mv, mesh_faces)
    tol_px = tolerance_cm / 100.0 * body.scale
    region = allowed_region(rect, frame_size, mask, tol_px)
    mesh_maps = depth_maps(mv, mf, rect, frame_size)
    body_maps = depth_maps(body.vertices, body.faces, rect, frame_size)
    shift = depth_shift(mesh_maps, body_maps, region)
    bv = body.vertices.copy()
    bv[:, 2] += shift
    res_to_px = rect[2] / DEPTH_RES
    out = {"depth_shift_px": shift, "tolerance_px": tol_px,
           "thickness": thickness_profile(mesh_maps, body_maps, region, bands, res_to_px)}
    fi, bary = body_samples(points)
    pts = geometry.surface_points(bv, body.faces, fi, bary)
    # the samples' depth-map pixels: judged where the region allows
    col = np.floor((pts[:, 0] - rect[0]) / res_to_px).astype(np.int64)
    row = np.floor((pts[:, 1] - rect[1]) / (rect[3] / DEPTH_RES)).astype(np.int64)
    ok = (col >= 0) & (col < DEPTH_RES) & (row >= 0) & (row < DEPTH_RES)
    ok[ok] = region[row[ok], col[ok]]
    pts, row = pts[ok], row[ok]
    out["body_points"] = int(len(pts))
    for key in ("body_inside", "body_covered", "body_dist_mean_px", "body_dist_p95_px", "body_dist_mean_cm",
                "body_dist_p95_cm", "covered_min", "covered_min_band"):
        out[key] = None
    out["covered_bands"] = [None] * bands
    if not len(pts):
        return out, bv
    if len(mf):
        inside = geometry.winding_number(mv, mf, pts) >= geometry.INSIDE_LEVEL
        dist = geometry.surface_distance(pts, mv, mf)
        covered = inside | (dist <= tol_px)
        out["body_inside"] = float(inside.mean())
        out["body_dist_mean_px"] = float(dist.mean())
        out["body_dist_p95_px"] = float(np.percentile(dist, 95))
        out["body_dist_mean_cm"] = body.px_to_cm(out["body_dist_mean_px"])
        out["body_dist_p95_cm"] = body.px_to_cm(out["body_dist_p95_px"])
    else:  # an empty mesh encloses nothing
        covered = np.zeros(len(pts), bool)
        out["body_inside"] = 0.0
    out["body_covered"] = float(covered.mean())
    edges = band_edges(body_maps, region, bands)
    if edges is not None:
        band = np.clip(np.searchsorted(edges, row + 0.5) - 1, 0, bands - 1)
        for k in range(bands):
            sel = band == k
            if sel.sum() >= MIN_BAND_SAMPLES:
                out["covered_bands"][k] = float(covered[sel].mean())
        shares = [(c, k) for k, c in enumerate(out["covered_bands"]) if c is not None]
        if shares:
            out["covered_min"], out["covered_min_band"] = min(shares)
    return out, bv


def depth_verdict(fig: dict, covered_threshold: float, thickness_threshold: float) -> Optional[str]:
    """Why a person-frame fails in depth (None when it passes): the body sticks out of the mesh
    (``body_covered`` below ``covered_threshold``) or the mesh is thinner than the body in some
    height band (``thickness.min_ratio`` below ``thickness_threshold``)."""
    reasons = []
    c = fig.get("body_covered")
    if c is not None and c < covered_threshold:
        reasons.append(f"body sticks out: {c:.0%} of it covered < {covered_threshold:.0%}")
    t = (fig.get("thickness") or {}).get("min_ratio")
    if t is not None and t < thickness_threshold:
        reasons.append(f"mesh thinner than the body: band {fig['thickness']['min_band']} at {t:.2f} of its "
                       f"thickness < {thickness_threshold:.2f}")
    return "; ".join(reasons) or None
