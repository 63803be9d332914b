"""Mesh cleanup: drop connected components smaller than a fraction of the largest (floaters the
network leaves around the body), optional Taubin smoothing (no shrinkage), unused vertices removed.
Pure numpy; faces keep their winding."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mesh_types import Mesh


@dataclass(frozen=True)
class CleanupConfig:
    """Options of ``cleanup_mesh``."""

    min_component_fraction: float = 0.02
    """drop components with fewer faces than this fraction of the largest (0 keeps all; the
    default keeps the main body and any part at least 2% of its size)"""
    smooth_iterations: int = 0
    """Taubin smoothing passes (0 = off); each pass is one shrink and one inflate step"""
    smooth_lambda: float = 0.5
    """Taubin shrink factor"""
    smooth_mu: float = -0.53
    """Taubin inflate factor (|mu| slightly above lambda keeps the volume)"""


def connected_components(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Component label [V] int64 per vertex (vertices connected through faces share a label; the
    label is the smallest vertex index of the component). Min-label hooking with pointer jumping:
    a few passes even on long thin meshes."""
    f = np.asarray(faces, dtype=np.int64)
    lab = np.arange(num_vertices, dtype=np.int64)
    if len(f) == 0:
        return lab
    a = np.concatenate([f[:, 0], f[:, 1]])
    b = np.concatenate([f[:, 1], f[:, 2]])
    while True:
        la, lb = lab[a], lab[b]
        m = np.minimum(la, lb)
        before = lab.copy()
        np.minimum.at(lab, la, m)
        np.minimum.at(lab, lb, m)
        while True:  # pointer jumping: every vertex points at its root
            nxt = lab[lab]
            if np.array_equal(nxt, lab):
                break
            lab = nxt
        if np.array_equal(lab, before):
            return lab


def _compact(mesh: Mesh, keep_faces: np.ndarray) -> Mesh:
    f = mesh.faces[keep_faces]
    used = np.zeros(mesh.num_vertices, dtype=bool)
    used[f.ravel()] = True
    remap = np.cumsum(used) - 1
    pick = lambda a: None if a is None else a[used]  # noqa: E731
    return Mesh(mesh.vertices[used], remap[f], normals=pick(mesh.normals), colors=pick(mesh.colors),
                frame=mesh.frame, rect=mesh.rect, meta=dict(mesh.meta))


def remove_small_components(mesh: Mesh, min_fraction: float) -> Mesh:
    """Keep components with at least ``min_fraction`` x the largest component's face count."""
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction: expected a value in [0, 1], got {min_fraction}")
    if mesh.num_faces == 0:
        return mesh
    lab = connected_components(mesh.faces, mesh.num_vertices)
    face_lab = lab[mesh.faces[:, 0]]
    _, inv, counts = np.unique(face_lab, return_inverse=True, return_counts=True)
    keep = counts[inv] >= min_fraction * counts.max()
    out = _compact(mesh, keep)
    out.meta["components_kept"] = int((counts >= min_fraction * counts.max()).sum())
    out.meta["components_dropped"] = int(len(counts) - out.meta["components_kept"])
    return out


def _laplacian_step(v: np.ndarray, a: np.ndarray, b: np.ndarray, factor: float) -> np.ndarray:
    nv = len(v)
    deg = np.bincount(a, minlength=nv) + np.bincount(b, minlength=nv)
    out = v.copy()
    has = deg > 0
    for c in range(3):
        s = np.bincount(a, weights=v[b, c], minlength=nv) + np.bincount(b, weights=v[a, c], minlength=nv)
        out[has, c] += factor * (s[has] / deg[has] - v[has, c])
    return out


def taubin_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int, lam: float = 0.5,
                  mu: float = -0.53) -> np.ndarray:
    """Taubin lambda|mu smoothing with uniform weights over the unique mesh edges. [V, 3] float32."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    v = np.asarray(vertices, dtype=np.float64)
    for _ in range(iterations):
        v = _laplacian_step(v, e[:, 0], e[:, 1], lam)
        v = _laplacian_step(v, e[:, 0], e[:, 1], mu)
    return v.astype(np.float32)


def cleanup_mesh(mesh: Mesh, cfg: CleanupConfig = CleanupConfig()) -> Mesh:
    """Drop small components, then smooth (normals, if any, are dropped by smoothing: recompute)."""
    out = remove_small_components(mesh, cfg.min_component_fraction) if cfg.min_component_fraction > 0 else mesh
    if cfg.smooth_iterations > 0 and out.num_faces:
        v = taubin_smooth(out.vertices, out.faces, cfg.smooth_iterations, cfg.smooth_lambda, cfg.smooth_mu)
        out = Mesh(v, out.faces, colors=out.colors, frame=out.frame, rect=out.rect, meta=out.meta)
    return out
