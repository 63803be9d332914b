"""Temporal figures in 3D: how much a person's clothed mesh changes from frame to frame beyond
the motion of their fitted body, and how smoothly the fitted body itself moves.

Removing the body's motion: every body vertex has its own linear-blend-skinning transform
(``body.model``: rest -> posed, blended from the bones that move it), and the body's 13,348
vertices correspond one to one between frames. A vertex of the previous frame's mesh follows the
transform that takes its nearest body vertex from the previous frame's pose to this frame's:
clothing a few cm off the skin turns with the limb under it. The body's root motion alone would
count a swinging arm as change of the mesh; the nearest vertex's translation alone would slide
the sleeve off a turning forearm by (offset x angle). The mesh change is then the Chamfer
distance between the carried previous mesh and this frame's mesh (vertices of both).

Joint acceleration: the fitted body's joints (the heads of the bones the fitter poses,
``body.fit.POSED_BONES``) in metres (image-frame pixels / the frame's camera scale; depth from
the mid-hip), and per frame ||X[t-1] - 2 X[t] + X[t+1]|| averaged over the joints (mm per
frame^2): a still or smoothly moving person gives ~0, a jittering fit does not.

Frames: image frame (pixels, z depth pixels) as in ``depth``."""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from . import geometry


@functools.lru_cache(maxsize=1)
def _posed_joint_index() -> np.ndarray:
    from ...body.fit import POSED_BONES
    from ...body.params import _model

    model = _model()
    return np.array([model.asset.bone(n) for n in POSED_BONES], np.int64)


def vertex_transforms(body) -> np.ndarray:
    """[V, 4, 4] per body vertex: its skinning transform from the rest body to ``body.vertices``
    (a ``depth.BodyRef``; image frame, any depth shift included), so that
    ``T[v] @ [rest_v, 1] = [body.vertices[v], 1]``."""
    from ...body.model import skinning_transforms
    from ...body.params import _model

    model = _model()
    fit = body.fit
    G, w, rest = model.skeleton(fit.betas, fit.rotations, fit.root_R, fit.root_t)
    T = skinning_transforms(G, w, rest)  # [J, 3, 4] rest -> camera-aligned metres
    a = model.asset
    blended = np.einsum("vk,vkab->vab", a.skin_weight.astype(np.float64), T[a.skin_index])
    s = float(body.scale)
    out = np.zeros((len(blended), 4, 4))
    out[:, :3, :] = s * blended
    out[:, 3, 3] = 1.0
    # image = s * metric + offset; the offset (camera shift, mid-hip and centroid depth origins,
    # depth shift) read off the vertices themselves, so every convention upstream is honoured
    metric = np.einsum("vab,vb->va", blended[:, :, :3], rest.vertices.astype(np.float64)) + blended[:, :, 3]
    out[:, :3, 3] += (body.vertices - s * metric).mean(0)
    return out


def body_motion(prev_T: np.ndarray, cur_T: np.ndarray) -> np.ndarray:
    """[V, 4, 4] per body vertex: ``cur_T[v] @ inv(prev_T[v])``, the motion from the previous
    frame's pose to this one's. A vertex whose blended transform is singular (blend collapse)
    moves by its translation only."""
    lin = prev_T[:, :3, :3]
    det = np.linalg.det(lin)
    scale3 = np.abs(np.linalg.det(cur_T[:, :3, :3])) + 1e-30
    ok = np.abs(det) > 1e-6 * scale3
    inv = np.tile(np.eye(4), (len(prev_T), 1, 1))
    inv[ok] = np.linalg.inv(prev_T[ok])
    out = cur_T @ inv
    if not ok.all():
        out[~ok] = np.eye(4)
        out[~ok, :3, 3] = cur_T[~ok, :3, 3] - prev_T[~ok, :3, 3]
    return out


def carry_with_body(points, body_prev_vertices: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """[N, 3] ``points`` (the previous frame's mesh) moved by the motion of their nearest body
    vertex (``body_prev_vertices`` [V, 3], ``motion`` [V, 4, 4] from ``body_motion``)."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, np.float64)
    if len(p) == 0:
        return p.copy()
    nearest = cKDTree(np.asarray(body_prev_vertices, np.float64)).query(p)[1]
    m = motion[nearest]
    return np.einsum("nab,nb->na", m[:, :3, :3], p) + m[:, :3, 3]


MAX_CHAMFER_POINTS = 5000
"""at most this many vertices of each mesh enter the mesh-change Chamfer (a fixed draw)"""


def mesh_change(prev_vertices, cur_vertices, body_prev, body_cur, prev_T: Optional[np.ndarray] = None,
                cur_T: Optional[np.ndarray] = None) -> dict:
    """Frame-to-frame change of a person's mesh (vertices [N, 3] and [M, 3], image frame) with the
    body's motion removed (``body_prev`` / ``body_cur``: ``depth.BodyRef`` with the depth shift of
    their frame applied): ``mesh_change_px`` and ``_cm`` (this frame's scale), and the same without
    removing the body's motion, ``mesh_change_raw_px`` / ``_cm``. ``prev_T`` / ``cur_T``:
    ``vertex_transforms`` when already computed."""
    prev_T = vertex_transforms(body_prev) if prev_T is None else prev_T
    cur_T = vertex_transforms(body_cur) if cur_T is None else cur_T
    carried = carry_with_body(prev_vertices, body_prev.vertices, body_motion(prev_T, cur_T))
    moved = geometry.chamfer(carried, cur_vertices, MAX_CHAMFER_POINTS)["mean"]
    raw = geometry.chamfer(prev_vertices, cur_vertices, MAX_CHAMFER_POINTS)["mean"]
    return {"mesh_change_px": moved, "mesh_change_cm": body_cur.px_to_cm(moved),
            "mesh_change_raw_px": raw, "mesh_change_raw_cm": body_cur.px_to_cm(raw)}


def joints_m(fit) -> np.ndarray:
    """[P, 3] the posed bones' heads of a ``BodyFit`` in metres (image-frame pixels / scale)."""
    return np.asarray(fit.joints, np.float64)[_posed_joint_index()] / float(fit.scale)


def joint_acceleration_mm(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray) -> float:
    """Mean over joints of ||X[t-1] - 2 X[t] + X[t+1]|| (joints [P, 3] in metres), in mm."""
    a = np.asarray(prev, np.float64) - 2.0 * np.asarray(cur, np.float64) + np.asarray(nxt, np.float64)
    return float(np.linalg.norm(a, axis=1).mean() * 1000.0)
