"""Procedural clothing: closed meshes in world metres, unioned with the body.

Every garment is watertight, so the union of body and garments is simply their concatenation:
the winding number of the concatenation is >= 1 inside any part (labels) and the first ray hit is
the outer surface (renders).

- shell (shirt, trousers, hair): the body itself pushed out along its vertex normals by a
  thickness field that is the garment's coverage (from skinning weights of body-part groups) times
  a thickness, plus low-frequency wrinkles. Zero thickness leaves the shell on the skin.
- skirt / dress: a solid elliptic frustum around the hips from the waist down to a hem, flaring
  out, with folds (angular waves of the radius).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .bodies import PART_NAMES, Body

G = {name: i for i, name in enumerate(PART_NAMES)}


@dataclass(frozen=True)
class Outfit:
    """What a subject wears (thicknesses in metres; 0 = absent)."""

    shirt: float
    sleeves: str        # "none", "short", "long"
    trousers: float
    trouser_length: str  # "short", "long"
    skirt: bool
    skirt_hem: float     # hem height as a fraction of the way from the hips (0) to the floor (1)
    skirt_flare: float   # radius at the hem / radius at the hips
    hair: float


def sample_outfit(rng: np.random.Generator) -> Outfit:
    loose = rng.random() < 0.5
    shirt = float(rng.uniform(0.015, 0.045) if loose else rng.uniform(0.003, 0.012))
    trousers = float(rng.uniform(0.01, 0.035) if rng.random() < 0.5 else rng.uniform(0.003, 0.01))
    return Outfit(
        shirt=shirt,
        sleeves=str(rng.choice(["none", "short", "long"], p=[0.2, 0.4, 0.4])),
        trousers=trousers,
        trouser_length=str(rng.choice(["short", "long"], p=[0.25, 0.75])),
        skirt=bool(rng.random() < 0.25),
        skirt_hem=float(rng.uniform(0.3, 0.95)),
        skirt_flare=float(rng.uniform(1.05, 1.6)),
        hair=float(rng.uniform(0.0, 0.04)),
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V, 3] (unit) of an outward mesh."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    vn = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _wrinkles(points: np.ndarray, rng: np.random.Generator, amplitude: float, n: int = 6) -> np.ndarray:
    """A smooth random field [N] of amplitude ~``amplitude`` (sum of plane waves, 12-40 cm wavelengths)."""
    out = np.zeros(len(points))
    for _ in range(n):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        k = 2 * np.pi / rng.uniform(0.12, 0.4)
        out += np.sin(points @ d * k + rng.uniform(0, 2 * np.pi))
    return amplitude * out / np.sqrt(n)


def shell(body: Body, outfit: Outfit, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray] | None:
    """Shirt + trousers + hair as one offset shell of the body, or None when nothing is worn."""
    w = body.bone_weights
    cover = np.zeros(len(w))
    if outfit.shirt > 0:
        parts = ["torso"] + {"none": [], "short": ["upperarm"], "long": ["upperarm", "lowerarm"]}[outfit.sleeves]
        cover += outfit.shirt * w[:, [G[p] for p in parts]].sum(1)
    if outfit.trousers > 0:
        parts = ["upperleg"] + (["lowerleg"] if outfit.trouser_length == "long" else [])
        cover += outfit.trousers * w[:, [G[p] for p in parts]].sum(1)
    if outfit.hair > 0:
        v = body.vertices
        head = w[:, G["head"]]
        hv = v[head > 0.5]
        if len(hv):
            top, ctr = hv[:, 2].max(), hv.mean(0)
            # Crown and back of the head: above the eyes, or behind the head's centre.
            up = np.clip((v[:, 2] - (top - 0.09)) / 0.03, 0, 1)
            back = np.clip((v[:, 1] - ctr[1]) / 0.03, 0, 1) * np.clip((v[:, 2] - (top - 0.2)) / 0.03, 0, 1)
            cover += outfit.hair * head * np.maximum(up, back)
    if cover.max() <= 0:
        return None
    thick = np.clip(cover + _wrinkles(body.vertices, rng, 0.12 * cover.max()) * (cover > 1e-3), 0, None)
    thick *= cover > 1e-4
    n = vertex_normals(body.vertices, body.faces)
    return body.vertices + n * thick[:, None], body.faces


def skirt(body: Body, outfit: Outfit, rng: np.random.Generator, segments: int = 48, rings: int = 12):
    """A solid flared frustum from the waist to the hem, or None when no skirt is worn."""
    if not outfit.skirt:
        return None
    v, w = body.vertices, body.bone_weights
    torso = v[w[:, G["torso"]] > 0.5]
    legs = v[(w[:, G["upperleg"]] > 0.5)]
    if len(torso) == 0 or len(legs) == 0:
        return None
    floor = v[:, 2].min()
    hips = legs[:, 2].max()
    waist = hips + 0.05
    hem = hips - outfit.skirt_hem * (hips - floor)
    band = v[(np.abs(v[:, 2] - (hips - 0.05)) < 0.03) & (w[:, G["torso"]] + w[:, G["upperleg"]] > 0.5)]
    if len(band) < 10:
        return None
    c = band[:, :2].mean(0)
    rx = np.abs(band[:, 0] - c[0]).max() + 0.01
    ry = np.abs(band[:, 1] - c[1]).max() + 0.01
    zs = np.linspace(waist, hem, rings)
    t = np.linspace(0, 1, rings)
    scale = 1 + (outfit.skirt_flare - 1) * t ** 1.3
    ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    folds = 1 + 0.04 * t[:, None] * np.sin(ang[None] * rng.integers(5, 11) + rng.uniform(0, 6.3))
    x = c[0] + rx * scale[:, None] * folds * np.cos(ang)[None]
    y = c[1] + ry * scale[:, None] * folds * np.sin(ang)[None]
    z = np.repeat(zs[:, None], segments, 1)
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    verts = np.vstack([verts, [[c[0], c[1], waist]], [[c[0], c[1], hem]]])
    top, bot = len(verts) - 2, len(verts) - 1
    faces: List[Tuple[int, int, int]] = []
    for i in range(rings - 1):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c0, d = a + segments, b + segments
            faces += [(a, c0, b), (b, c0, d)]
    for j in range(segments):
        a, b = j, (j + 1) % segments
        faces.append((top, a, b))
        off = (rings - 1) * segments
        faces.append((bot, off + b, off + a))
    return verts, np.asarray(faces, np.int64)


def dress(body: Body, outfit: Outfit, rng: np.random.Generator):
    """All garments of ``outfit`` as a list of (vertices [V, 3] world metres, faces [F, 3])."""
    parts = [shell(body, outfit, rng), skirt(body, outfit, rng)]
    return [p for p in parts if p is not None]
