"""Fit the body (``BodyModel``) to one person's BlazePose outputs, per frame, on a CPU.

Route: analytic inverse kinematics from the world landmarks (bone directions; elbow/knee hinges
turned into the plane of their three joints), a closed-form weak-perspective camera from the 2D
keypoints, then a few damped Gauss-Newton (Levenberg-Marquardt) steps on 2D reprojection + 3D
landmark terms + pose prior + soft joint limits, with visibility weights and a per-joint step
clamp (hidden landmarks are hallucinated: undamped Gauss-Newton diverges on them). In video the
previous frame's fit is the starting point instead of the IK. The shape is fitted over a
person's first ``FitConfig.shape_frames`` frames (its running estimate travels in ``BodyFit``)
and then frozen.

Frames:
- camera-aligned metric frame (BlazePose's world frame): metres, x = image right, y = image down,
  z = away from the camera; the fit's ``root_R`` rotates the body frame (x = person's left,
  y = back, z = up) into it and ``root_t`` is the root bone's head there. A person facing the
  camera upright has ``root_R`` close to ``[[1, 0, 0], [0, 0, -1], [0, 1, 0]]``.
- image frame (``BodyFit.vertices``, ``.landmarks``, ``.joints``): x right, y down in frame pixels,
  z = depth in pixels at the same scale, increasing away from the camera, 0 at the fitted body's
  mid-hip landmark (the mean of BlazePose landmarks 23 and 24). Weak perspective:
  ``x_px = scale * x + tx``, ``y_px = scale * y + ty``, ``z_px = scale * (z - z_midhip)``.

Inner kinematics: only ``POSED_BONES`` move; every other bone keeps its zero-pose rotation
relative to its parent, so it rides rigidly on its nearest posed ancestor. Each landmark is then a
weighted sum of points rigidly attached to a few posed bones (``FitRig``), which makes a
Gauss-Newton step a few small dense products. ``BodyFit.rotations`` holds all J local rotations,
so ``BodyModel.pose`` reproduces a fit exactly (tests/body/test_fit.py compares them).

Threading: a ``BodyFitter`` keeps per-shape caches; use one per thread (the detection stage's).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .model import (BLAZEPOSE_MIRROR, BodyModel, kinematic_levels, matrix_to_rotvec, rest_skeleton,
                    rotvec_to_matrix, skew, skinning_transforms)

log = logging.getLogger(__name__)

POSED_BONES = (
    "root", "spine04", "spine02", "neck01", "head",
    "clavicle.L", "upperarm01.L", "lowerarm01.L", "wrist.L",
    "clavicle.R", "upperarm01.R", "lowerarm01.R", "wrist.R",
    "upperleg01.L", "lowerleg01.L", "foot.L",
    "upperleg01.R", "lowerleg01.R", "foot.R",
)
"""bones the fitter rotates (3 degrees of freedom each); the twist bones, fingers, toes, eyes and
the other spine/neck bones keep their zero-pose rotations"""

CAMERA_FROM_BODY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""body frame (x left, y back, z up) -> camera-aligned frame for a person facing the camera upright"""

_GROUPS = {
    "face": range(0, 11), "torso": (11, 12, 23, 24), "arms": (13, 14, 15, 16),
    "hands": range(17, 23), "legs": (25, 26, 27, 28), "feet": range(29, 33),
}

# prior weights per posed bone, relative to FitConfig.weight_pose_prior: the torso and neck
# joints have no landmark of their own to pin the split of a rotation between them
_PRIOR_SCALE = {"root": 0.0, "spine04": 4.0, "spine02": 4.0, "neck01": 3.0, "head": 2.0,
                "clavicle": 10.0, "upperarm01": 0.5, "lowerarm01": 0.5, "wrist": 1.0,
                "upperleg01": 0.5, "lowerleg01": 0.5, "foot": 1.0}


@dataclass(frozen=True)
class FitConfig:
    """Settings of ``BodyFitter`` (real-time defaults; ``FitConfig.for_reconstruct()`` for offline)."""

    iterations: int = 2
    """Levenberg-Marquardt steps per frame when starting from the previous frame's fit"""
    cold_iterations: int = 5
    """Levenberg-Marquardt steps after the inverse-kinematics start (first frame, lost track)"""
    damping: float = 0.1
    """initial Levenberg-Marquardt damping (relative to the diagonal of J^T J)"""
    step_clamp: float = 0.5
    """largest rotation (radians) of one joint in one step; larger steps are scaled down"""
    weight_2d: float = 1.0
    """weight of the 2D reprojection term (residuals in metres at the body: pixels / scale)"""
    weight_3d: float = 0.5
    """weight of the 3D world-landmark term (metres)"""
    weight_pose_prior: float = 0.001
    """weight of the pull of each joint's local rotation towards the zero pose (per radian)"""
    weight_limits: float = 1.0
    """weight of the soft joint limits (per radian beyond a bound)"""
    weight_temporal: float = 0.005
    """weight of the pull of each joint's local rotation towards the previous frame's (video)"""
    temporal_scale_gain: float = 10.0
    """the temporal term on the camera's log scale, relative to its weight on a radian of rotation"""
    weight_shape_prior: float = 0.001
    """weight of the pull of the shape towards the running estimate (unit-variance betas)"""
    weight_size_prior: float = 0.1
    """weight of the pull of beta 0 (overall size: 1.48 to 1.90 m over -2..2) towards its estimate:
    a weak-perspective camera and BlazePose's average-sized world landmarks cannot tell size"""
    visibility_power: float = 2.0
    """landmark weight = visibility ** this (BlazePose visibility in [0, 1])"""
    group_weights: Tuple[Tuple[str, float], ...] = (
        ("face", 0.4), ("torso", 1.0), ("arms", 1.0), ("hands", 0.3), ("legs", 1.0), ("feet", 0.6))
    """per landmark group (face, torso, arms, hands, legs, feet): weight of its landmarks"""
    ik_min_visibility: float = 0.5
    """a limb, hand, foot or the head is turned by the inverse kinematics only if its landmarks are at least this visible"""
    hinge_min_angle_deg: float = 20.0
    """an elbow/knee bent less than this keeps its twist in the inverse kinematics (the hinge plane is ill-defined)"""
    world_scale_range: Tuple[float, float] = (0.8, 1.25)
    """bounds of the scale between the body and BlazePose's average-sized world landmarks"""
    fit_shape: bool = True
    """fit the shape over a person's first frames (else betas stay at the given or mean shape)"""
    shape_frames: int = 10
    """frames over which a person's shape is estimated before it is frozen"""
    shape_step: float = 1e-3
    """finite-difference step of the shape Jacobian (unit-variance betas)"""
    max_betas: float = 3.0
    """bound on each fitted beta (standard deviations of the adult shape distribution)"""
    quality: bool = True
    """compute the fit-quality numbers (reprojection error, share of the silhouette inside the mask)"""
    silhouette_cells: int = 160
    """rows of the grid (over the body's height) on which the silhouette is compared with the mask"""
    smooth_min_cutoff: float = 1.5
    """One-Euro smoother: minimum cutoff frequency (Hz) for the pose parameters"""
    smooth_beta: float = 0.3
    """One-Euro smoother: cutoff increase per unit speed (rad/s, m/s)"""
    smooth_d_cutoff: float = 1.0
    """One-Euro smoother: cutoff frequency (Hz) of the speed estimate"""

    def __post_init__(self) -> None:
        for name in ("iterations", "cold_iterations", "shape_frames", "silhouette_cells"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
        for name in ("damping", "step_clamp", "weight_2d", "weight_3d", "weight_pose_prior", "weight_limits",
                     "weight_temporal", "weight_shape_prior", "weight_size_prior", "visibility_power", "shape_step", "max_betas",
                     "smooth_min_cutoff", "smooth_beta", "smooth_d_cutoff"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {v}")
        if self.step_clamp <= 0 or self.shape_step <= 0:
            raise ValueError("step_clamp and shape_step: expected > 0")
        names = [g for g, _ in self.group_weights]
        if sorted(names) != sorted(_GROUPS):
            raise ValueError(f"group_weights: expected the groups {sorted(_GROUPS)}, got {names}")
        lo, hi = self.world_scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"world_scale_range: expected 0 < lo <= hi, got {self.world_scale_range}")

    @staticmethod
    def for_reconstruct() -> "FitConfig":
        """Offline preset (``reconstruct``): many more steps, shape fitted on the single frame."""
        return dataclasses.replace(FitConfig(), iterations=12, cold_iterations=25, shape_frames=1)


@dataclass(frozen=True)
class BodyFit:
    """One person's fitted body in one frame (frames: see the module docstring).

    J bones, V vertices, S shape components."""

    betas: np.ndarray
    """[S] shape (unit-variance PCA coordinates)"""
    rotations: np.ndarray
    """[J, 3, 3] local rotations ('local-ref'; identity for bones the fitter does not move)"""
    root_R: np.ndarray
    """[3, 3] body frame -> camera-aligned metric frame"""
    root_t: np.ndarray
    """[3] root bone head in the camera-aligned frame (metres; origin near BlazePose's mid-hip)"""
    scale: float
    """camera scale, pixels per metre"""
    tx: float
    """camera x offset (pixels): x_px = scale * x + tx"""
    ty: float
    """camera y offset (pixels): y_px = scale * y + ty"""
    vertices: np.ndarray
    """[V, 3] float32 posed vertices in the image frame (x, y pixels, z depth pixels, mid-hip at z = 0)"""
    landmarks: np.ndarray
    """[33, 3] fitted BlazePose landmarks in the image frame"""
    joints: np.ndarray
    """[J, 3] posed bone heads in the image frame"""
    reprojection_error: float
    """median 2D distance of the visible landmarks (visibility > 0.5) to BlazePose's, % of body height"""
    mask_inside: Optional[float] = None
    """share of the body's projected silhouette inside the person mask (None without a mask)"""
    shape_frames: int = 0
    """frames the shape estimate has seen (frozen at FitConfig.shape_frames)"""
    world_scale: float = 1.0
    """body size / BlazePose world-landmark size"""
    body_height_px: float = 0.0
    """height of the body standing (rest), in pixels"""

    def __post_init__(self) -> None:
        J = self.rotations.shape[0] if np.ndim(self.rotations) == 3 else -1
        checks = (("betas", self.betas, (np.shape(self.betas)[0] if np.ndim(self.betas) == 1 else -1,)),
                  ("rotations", self.rotations, (J, 3, 3)), ("root_R", self.root_R, (3, 3)),
                  ("root_t", self.root_t, (3,)), ("landmarks", self.landmarks, (33, 3)),
                  ("joints", self.joints, (J, 3)),
                  ("vertices", self.vertices, (np.shape(self.vertices)[0] if np.ndim(self.vertices) == 2 else -1, 3)))
        for name, value, shape in checks:
            if not isinstance(value, np.ndarray) or value.shape != shape or -1 in shape:
                raise ValueError(f"BodyFit.{name}: expected an array of shape {shape}, got "
                                 f"{getattr(value, 'shape', type(value).__name__)}")
        for name in ("scale", "tx", "ty"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"BodyFit.{name}: expected a finite number, got {getattr(self, name)}")
        if self.scale <= 0:
            raise ValueError(f"BodyFit.scale: expected > 0, got {self.scale}")


# ----------------------------------------------------------------------------- the inner rig


@dataclass(frozen=True)
class FitRig:
    """The body for one shape, reduced to ``POSED_BONES`` (P bones), in the body frame.

    ``pose_parent`` [P] each posed bone's nearest posed ancestor (-1 for the root),
    ``pose_offset`` [P, 3] its head's zero-pose offset from that ancestor's, ``levels`` the posed
    bones by depth. ``anchor`` [J] the posed bone each bone rides on and ``anchor_offset`` [J, 3]
    its head's zero-pose offset from the anchor's. Landmark l = sum over its pairs n of
    ``G[pair_bone[n]] @ pair_point[n] + pair_weight[n] * w[pair_bone[n]]``; ``agg`` [33 * P, n] sums
    the pairs of landmark l on the subtree of posed bone j (for the Jacobian) and
    ``agg_weight`` [33, P] their weights. ``zero_landmarks`` [33, 3] the zero pose's, ``height``
    the standing height (m)."""

    betas: np.ndarray
    pose_parent: np.ndarray
    pose_offset: np.ndarray
    levels: list
    anchor: np.ndarray
    anchor_offset: np.ndarray
    pair_landmark: np.ndarray
    pair_bone: np.ndarray
    pair_point: np.ndarray
    pair_weight: np.ndarray
    landmark_sum: np.ndarray
    agg: np.ndarray
    agg_weight: np.ndarray
    zero_landmarks: np.ndarray
    height: float


@dataclass(frozen=True)
class _Topology:
    """Shape-independent structure of the reduced rig (built once per model)."""

    posed: np.ndarray
    pose_parent: np.ndarray
    anchor: np.ndarray
    levels: list
    subtree: np.ndarray
    triple_pair: np.ndarray
    triple_vertex: np.ndarray
    triple_bone: np.ndarray
    triple_coef: np.ndarray
    pair_landmark: np.ndarray
    pair_bone: np.ndarray
    landmark_sum: np.ndarray
    agg: np.ndarray
    prior_scale: np.ndarray
    limit_slot: np.ndarray
    limit_frames: np.ndarray
    limit_lo: np.ndarray
    limit_hi: np.ndarray
    landmark_group_weight: np.ndarray
    triple_rest: np.ndarray
    triple_dirs: np.ndarray
    height_vertices: np.ndarray
    height_rest: np.ndarray
    height_dirs: np.ndarray


def _topology(model: BodyModel, cfg: FitConfig) -> _Topology:
    a = model.asset
    parents = a.bone_parents
    posed = np.array([a.bone(n) for n in POSED_BONES])
    slot = -np.ones(a.n_bones, int)
    slot[posed] = np.arange(len(posed))
    anchor = np.zeros(a.n_bones, int)
    for c in range(a.n_bones):
        anchor[c] = slot[c] if slot[c] >= 0 else anchor[parents[c]]
    pose_parent = np.array([-1] + [anchor[parents[b]] for b in posed[1:]])
    if np.any(pose_parent[1:] >= np.arange(1, len(posed))):
        raise ValueError("POSED_BONES: parents must come before children")
    levels = kinematic_levels(np.concatenate([[-1], pose_parent[1:]]))
    P = len(posed)
    subtree = np.eye(P, dtype=bool)  # subtree[j, k]: k is j or below j
    for k in range(P):
        p = pose_parent[k]
        while p >= 0:
            subtree[p, k] = True
            p = pose_parent[p]
    # landmark -> (vertex, bone) triples with coefficient r_lv * w_vb, grouped into (landmark, anchor) pairs
    L, N = a.landmark_index.shape
    lv = a.landmark_index
    coef = a.landmark_weight[:, :, None] * a.skin_weight[lv].astype(np.float64)  # [L, N, K]
    bones = a.skin_index[lv]
    l_idx = np.broadcast_to(np.arange(L)[:, None, None], coef.shape)
    v_idx = np.broadcast_to(lv[:, :, None], coef.shape)
    keep = coef != 0
    t_l, t_v, t_b, t_c = l_idx[keep], v_idx[keep], bones[keep], coef[keep]
    key = t_l * P + anchor[t_b]
    pairs, t_pair = np.unique(key, return_inverse=True)
    pair_l, pair_b = pairs // P, pairs % P
    landmark_sum = np.zeros((L, len(pairs)))
    landmark_sum[pair_l, np.arange(len(pairs))] = 1.0
    agg = np.zeros((L, P, len(pairs)))
    for n in range(len(pairs)):
        agg[pair_l[n], subtree[:, pair_b[n]], n] = 1.0
    prior = np.array([_PRIOR_SCALE[n.split(".")[0]] for n in POSED_BONES])
    limit_slot = np.array([slot[b] for b in a.limit_bones])
    gw = dict(cfg.group_weights)
    group_weight = np.ones(L)
    for g, ids in _GROUPS.items():
        group_weight[list(ids)] = gw[g]
    # the standing height is read off the few highest and lowest vertices (the top of the head and
    # the soles stay the extremes across shapes)
    z = a.vertices[:, 2]
    hv = np.concatenate([np.argsort(z)[:64], np.argsort(-z)[:64]])
    return _Topology(posed, pose_parent, anchor, levels, subtree, t_pair, t_v, t_b, t_c, pair_l, pair_b,
                     landmark_sum, agg.reshape(L * P, len(pairs)), prior, limit_slot, a.limit_frames,
                     a.limit_lo, a.limit_hi, group_weight,
                     a.vertices[t_v].astype(np.float64), np.ascontiguousarray(
                         np.moveaxis(a.shape_dirs[:, t_v].astype(np.float64), 0, -1)),
                     hv, a.vertices[hv, 2].astype(np.float64), a.shape_dirs[:, hv, 2].T.astype(np.float64))


def build_rig(model: BodyModel, topo: _Topology, betas: np.ndarray) -> FitRig:
    """The reduced rig for shape ``betas`` [S]."""
    a = model.asset
    heads, _, to_ref, offsets = rest_skeleton(a, betas)
    # zero-pose heads (root at the origin): heads chain their offsets
    w0 = np.zeros_like(heads)
    for bones, par in model.levels:
        w0[bones] = w0[par] + offsets[bones]
    posed = topo.posed
    anchor_offset = w0 - w0[posed[topo.anchor]]
    pose_offset = np.zeros((len(posed), 3))
    pose_offset[1:] = w0[posed[1:]] - w0[posed[topo.pose_parent[1:]]]
    v = topo.triple_rest + topo.triple_dirs @ betas
    b = topo.triple_bone
    # T_b x = G_anchor (A_b (x - h_b) + o_b) + w_anchor, o_b the head's offset from the anchor
    local = np.einsum("nab,nb->na", to_ref[b], v - heads[b]) + anchor_offset[b]
    n_pairs = len(topo.pair_landmark)
    cl = topo.triple_coef[:, None] * local
    point = np.stack([np.bincount(topo.triple_pair, weights=cl[:, i], minlength=n_pairs) for i in range(3)], 1)
    weight = np.bincount(topo.triple_pair, weights=topo.triple_coef, minlength=n_pairs)
    zero = topo.landmark_sum @ (point + weight[:, None] * w0[posed[topo.pair_bone]])
    rest_z = topo.height_rest + topo.height_dirs @ betas
    P = len(posed)
    return FitRig(betas.copy(), topo.pose_parent, pose_offset, topo.levels, topo.anchor, anchor_offset,
                  topo.pair_landmark, topo.pair_bone, point, weight, topo.landmark_sum, topo.agg,
                  (topo.agg @ weight).reshape(33, P), zero, float(rest_z.max() - rest_z.min()))


def rig_kinematics(rig: FitRig, D: np.ndarray, root_t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """World rotations G [P, 3, 3] and heads w [P, 3] of the posed bones for local rotations
    ``D`` [P, 3, 3] (``D[0]`` is the root's world rotation) and the root's head ``root_t``."""
    K = np.zeros((len(D), 4, 4))
    K[:, :3, :3] = D
    K[:, :3, 3] = rig.pose_offset
    K[:, 3, 3] = 1.0
    K[0, :3, 3] = root_t
    for bones, par in rig.levels:
        K[bones] = K[par] @ K[bones]
    return K[:, :3, :3], K[:, :3, 3]


def rig_landmarks(rig: FitRig, G: np.ndarray, w: np.ndarray, jacobian: bool = False):
    """Landmarks [33, 3] (and, with ``jacobian``, d landmark / d omega_j [33, P, 3, 3] for a
    world-frame rotation omega_j of posed bone j's subtree about its head)."""
    y = np.einsum("nab,nb->na", G[rig.pair_bone], rig.pair_point) + rig.pair_weight[:, None] * w[rig.pair_bone]
    lm = rig.landmark_sum @ y
    if not jacobian:
        return lm
    P = len(G)
    u = (rig.agg @ y).reshape(33, P, 3) - rig.agg_weight[:, :, None] * w[None]
    return lm, -skew(u)


def _full_pose(model: BodyModel, topo: _Topology, rig: FitRig, D: np.ndarray, G: np.ndarray, w: np.ndarray):
    """(rotations [J, 3, 3], root_R, all-bone G [J, 3, 3], heads [J, 3]) of a reduced-rig pose."""
    J = model.n_bones
    rotations = np.tile(np.eye(3), (J, 1, 1))
    rotations[topo.posed[1:]] = D[1:]
    Gall = G[topo.anchor]
    wall = w[topo.anchor] + np.einsum("jab,jb->ja", Gall, rig.anchor_offset)
    return rotations, D[0].copy(), Gall, wall


# ----------------------------------------------------------------------------- helpers


def _unit(v):
    n = np.linalg.norm(v)
    return v / n if n > 1e-12 else v * 0.0


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (both [3])."""
    a, b = _unit(a), _unit(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        perp = _unit(np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0]))
        return rotvec_to_matrix(perp * math.pi)
    return rotvec_to_matrix(axis / s * math.atan2(s, c))


def kabsch(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum w |R src_i - dst_i|^2 for direction sets [n, 3] (no centring)."""
    H = (src * weights[:, None]).T @ dst
    u, _, vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def weak_perspective(points: np.ndarray, pixels: np.ndarray, weights: np.ndarray) -> Tuple[float, float, float]:
    """Closed-form (scale, tx, ty) minimising sum w |scale * p_xy + t - pixel|^2."""
    w = weights / max(weights.sum(), 1e-12)
    pm, xm = w @ points[:, :2], w @ pixels
    pc, xc = points[:, :2] - pm, pixels - xm
    s = float((w * np.sum(pc * xc, 1)).sum() / max((w * np.sum(pc * pc, 1)).sum(), 1e-12))
    s = max(s, 1e-6)
    t = xm - s * pm
    return s, float(t[0]), float(t[1])


def _left_jacobian_inverse(r: np.ndarray) -> np.ndarray:
    """[..., 3, 3] inverse left Jacobians of SO(3) at rotation vectors r [..., 3]: d log(exp(d) R) / d d."""
    theta = np.linalg.norm(r, axis=-1)[..., None, None]
    K = skew(r)
    small = theta < 1e-6
    t = np.where(small, 1.0, theta)
    coef = np.where(small, 1.0 / 12.0, (1.0 / t ** 2) * (1.0 - (t * np.sin(t)) / (2.0 * (1.0 - np.cos(t)))))
    return np.eye(3) - 0.5 * K + coef * (K @ K)


def _gram(J: np.ndarray) -> np.ndarray:
    """J^T J in row chunks small enough for OpenBLAS to run each product on one thread: on a
    shared 2-core machine its threaded path for these ~70 x 300 products costs 1-3 ms of
    hand-offs instead of 0.1 ms."""
    n = J.shape[1]
    step = max(1, 200_000 // max(n * n, 1))
    H = J[:step].T @ J[:step]
    for i in range(step, len(J), step):
        H += J[i:i + step].T @ J[i:i + step]
    return H


# ----------------------------------------------------------------------------- input checks


def _check_inputs(keypoints, world, mask, mask_offset, previous):
    kp = np.asarray(keypoints, dtype=np.float64) if keypoints is not None else None
    if kp is None or kp.shape != (33, 3):
        raise ValueError(f"keypoints: expected shape (33, 3) (x, y pixels, visibility), got "
                         f"{None if kp is None else kp.shape}")
    if not np.all(np.isfinite(kp)):
        raise ValueError("keypoints: contains non-finite values")
    if np.any(kp[:, 2] < 0) or np.any(kp[:, 2] > 1):
        raise ValueError("keypoints: visibility (column 2) must lie in [0, 1]")
    wl = np.asarray(world, dtype=np.float64) if world is not None else None
    if wl is None or wl.shape != (33, 3):
        raise ValueError(f"world: expected shape (33, 3) (metres, x right, y down, z away), got "
                         f"{None if wl is None else wl.shape}")
    if not np.all(np.isfinite(wl)):
        raise ValueError("world: contains non-finite values")
    if np.ptp(wl[[11, 12, 23, 24]], axis=0).max() < 1e-4:
        raise ValueError("world: degenerate landmarks (shoulders and hips coincide)")
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim != 2 or m.dtype != bool:
            raise ValueError(f"mask: expected a bool [H, W] array, got dtype {m.dtype} shape {m.shape}")
    if len(tuple(mask_offset)) != 2 or not all(math.isfinite(float(v)) for v in mask_offset):
        raise ValueError(f"mask_offset: expected (x0, y0) in frame pixels, got {mask_offset!r}")
    if previous is not None and not isinstance(previous, BodyFit):
        raise ValueError(f"previous: expected a BodyFit or None, got {type(previous).__name__}")
    return kp, wl


# ----------------------------------------------------------------------------- the fitter


@dataclass
class _State:
    D: np.ndarray          # [P, 3, 3] local rotations (D[0]: root world rotation)
    root_t: np.ndarray     # [3]
    scale: float
    tx: float
    ty: float
    betas: np.ndarray      # [S]


class BodyFitter:
    """Fits ``BodyModel`` to BlazePose outputs, one person at a time. ``fit(...) -> BodyFit``.
    Keeps caches per shape; one instance per thread."""

    def __init__(self, model: Optional[BodyModel] = None, config: FitConfig = FitConfig()):
        if not isinstance(config, FitConfig):
            raise ValueError(f"config: expected a FitConfig, got {type(config).__name__}")
        self.model = model if model is not None else BodyModel()
        self.config = config
        self.topo = _topology(self.model, config)
        self._rigs: dict = {}
        a = self.model.asset
        self._hinge = {}
        slot = {n: i for i, n in enumerate(POSED_BONES)}
        for k, b in enumerate(a.limit_bones):
            name = a.bone_names[b]
            if name.startswith(("lowerarm01", "lowerleg01")):
                self._hinge[slot[name]] = a.limit_frames[k][:, 0]
        self._slot = slot

    # -- caches
    def rig(self, betas: np.ndarray) -> FitRig:
        key = np.asarray(betas, np.float64).tobytes()
        r = self._rigs.get(key)
        if r is None:
            if len(self._rigs) > 8:
                self._rigs.clear()
            r = self._rigs[key] = build_rig(self.model, self.topo, np.asarray(betas, np.float64))
        return r

    # -- public
    def fit(self, keypoints, world, mask=None, previous: Optional[BodyFit] = None,
            mask_offset=(0, 0), betas=None) -> BodyFit:
        """Fit one person.

        ``keypoints`` [33, 3]: BlazePose's 2D landmarks (x, y in frame pixels, visibility in
        [0, 1]); ``world`` [33, 3]: its world landmarks (metres, hips at the origin, x = image right,
        y = down, z = away from the camera; already rotated out of the ROI's frame, see
        ``landmarks.world_landmarks_from_roi``); ``mask``: optional bool person mask in frame
        pixels, or a crop of it whose top-left pixel is at ``mask_offset`` (x0, y0);
        ``previous``: this person's fit in the previous frame (warm start, shape estimate);
        ``betas``: a known shape [S] to use (frozen) instead of fitting one.
        ValueError names the argument on bad input."""
        kp, wl = _check_inputs(keypoints, world, mask, mask_offset, previous)
        cfg = self.config
        S = self.model.n_betas
        if betas is not None:
            betas = np.asarray(betas, np.float64)
            if betas.shape != (S,) or not np.all(np.isfinite(betas)):
                raise ValueError(f"betas: expected a finite array of shape ({S},), got {betas.shape}")
            shape_frames, fit_shape = cfg.shape_frames, False
        elif previous is not None:
            betas, shape_frames = previous.betas.astype(np.float64), previous.shape_frames
            fit_shape = cfg.fit_shape and shape_frames < cfg.shape_frames
        else:
            betas, shape_frames = np.zeros(S), 0
            fit_shape = cfg.fit_shape and cfg.shape_frames > 0
        vis = kp[:, 2]
        lw = self.topo.landmark_group_weight * np.clip(vis, 0.0, 1.0) ** cfg.visibility_power
        if previous is not None and previous.betas.shape == (S,) and previous.rotations.shape[0] == self.model.n_bones:
            state = self._state_from_fit(previous, betas)
            prev = _State(state.D.copy(), state.root_t.copy(), state.scale, state.tx, state.ty, state.betas)
            iters = cfg.iterations
        else:
            state = self._initial_state(kp, wl, betas)
            prev = None
            iters = cfg.cold_iterations
        prior_betas = betas.copy()
        state = self._optimise(state, kp, wl, lw, prev, prior_betas, iters, fit_shape)
        if fit_shape:
            n = shape_frames
            # running mean of the per-frame estimates: early frames count as much as later ones
            state.betas = (prior_betas * n + state.betas) / (n + 1) if n > 0 else state.betas
            shape_frames += 1
        return self._result(state, kp, wl, lw, mask, mask_offset, shape_frames)

    # -- start points
    def _state_from_fit(self, fit: BodyFit, betas: np.ndarray) -> _State:
        D = np.empty((len(POSED_BONES), 3, 3))
        D[0] = fit.root_R
        D[1:] = fit.rotations[self.topo.posed[1:]]
        return _State(D, fit.root_t.astype(np.float64).copy(), float(fit.scale), float(fit.tx), float(fit.ty),
                      betas.copy())

    def _initial_state(self, kp: np.ndarray, wl: np.ndarray, betas: np.ndarray) -> _State:
        """Inverse kinematics from the world landmarks, then the closed-form camera."""
        cfg = self.config
        rig = self.rig(betas)
        P = len(POSED_BONES)
        D = np.tile(np.eye(3), (P, 1, 1))
        vis = kp[:, 2]
        L0 = rig.zero_landmarks
        # root: hips line, hips -> shoulders, shoulder line (body frame -> camera frame)
        mid = lambda x, i, j: 0.5 * (x[i] + x[j])  # noqa: E731
        src = np.stack([L0[23] - L0[24], mid(L0, 11, 12) - mid(L0, 23, 24), L0[11] - L0[12]])
        dst = np.stack([wl[23] - wl[24], mid(wl, 11, 12) - mid(wl, 23, 24), wl[11] - wl[12]])
        src /= np.linalg.norm(src, axis=1, keepdims=True)
        dst /= np.maximum(np.linalg.norm(dst, axis=1, keepdims=True), 1e-9)
        D[0] = kabsch(src, dst, np.array([1.0, 1.0, 0.3]))
        root_t = mid(wl, 23, 24) - D[0] @ mid(L0, 23, 24)
        s = self._slot

        def pose():
            G, w = rig_kinematics(rig, D, root_t)
            return G, w, rig_landmarks(rig, G, w)

        def turn(j, R):
            """Turn posed bone j (and its subtree) by the world rotation R about its head."""
            if j == 0:
                D[0] = R @ D[0]
                return
            G, _ = rig_kinematics(rig, D, root_t)
            Gp = G[rig.pose_parent[j]]
            D[j] = Gp.T @ R @ G[j]

        def half(R):
            return rotvec_to_matrix(0.5 * matrix_to_rotvec(R))

        # torso: what the hips leave of the shoulder line and the spine's direction, split over two bones
        G, w, L = pose()
        src = np.stack([_unit(L[11] - L[12]), _unit(mid(L, 11, 12) - mid(L, 23, 24))])
        dst = np.stack([_unit(wl[11] - wl[12]), _unit(mid(wl, 11, 12) - mid(wl, 23, 24))])
        Rt = kabsch(src, dst, np.ones(2))
        turn(s["spine04"], half(Rt))
        turn(s["spine02"], half(Rt))
        ok = lambda ids: bool(np.all(vis[list(ids)] >= cfg.ik_min_visibility))  # noqa: E731
        for side, (a, b, c) in (("L", (11, 13, 15)), ("R", (12, 14, 16)), ("L", (23, 25, 27)), ("R", (24, 26, 28))):
            upper, lower = ("upperarm01", "lowerarm01") if a in (11, 12) else ("upperleg01", "lowerleg01")
            if not ok((a, b, c)):
                continue
            ju, jl = s[f"{upper}.{side}"], s[f"{lower}.{side}"]
            G, w, L = pose()
            turn(ju, rotation_between(L[b] - L[a], wl[b] - wl[a]))
            # twist the upper bone so that the hinge of the joint below faces the limb's plane
            G, w, L = pose()
            u, f = _unit(wl[b] - wl[a]), _unit(wl[c] - wl[b])
            n = np.cross(u, f)
            if np.linalg.norm(n) > math.sin(math.radians(cfg.hinge_min_angle_deg)):
                hinge = G[rig.pose_parent[jl]] @ self._hinge[jl]
                h = _unit(hinge - u * (hinge @ u))
                n = _unit(n - u * (n @ u))
                ang = math.atan2(np.cross(h, n) @ u, h @ n)
                turn(ju, rotvec_to_matrix(u * ang))
            G, w, L = pose()
            turn(jl, rotation_between(L[c] - L[b], wl[c] - wl[b]))
        for side, (wr, i1, i2) in (("L", (15, 19, 17)), ("R", (16, 20, 18))):
            if ok((wr, i1, i2)):
                G, w, L = pose()
                turn(s[f"wrist.{side}"], rotation_between(mid(L, i1, i2) - L[wr], mid(wl, i1, i2) - wl[wr]))
        for side, (an, he, to) in (("L", (27, 29, 31)), ("R", (28, 30, 32))):
            if ok((an, he, to)):
                G, w, L = pose()
                turn(s[f"foot.{side}"], rotation_between(L[to] - L[he], wl[to] - wl[he]))
        if ok((0, 7, 8)):
            G, w, L = pose()
            src = np.stack([_unit(L[7] - L[8]), _unit(L[0] - mid(L, 7, 8))])
            dst = np.stack([_unit(wl[7] - wl[8]), _unit(wl[0] - mid(wl, 7, 8))])
            Rh = kabsch(src, dst, np.ones(2))
            turn(s["neck01"], half(Rh))
            turn(s["head"], half(Rh))
        G, w, L = pose()
        lw = np.clip(vis, 0, 1) ** cfg.visibility_power + 1e-6
        sc, tx, ty = weak_perspective(L, kp[:, :2], lw)
        return _State(D, root_t, sc, tx, ty, betas.copy())

    # -- Levenberg-Marquardt
    def _residuals(self, st: _State, rig: FitRig, kp, wl, lw, prev: Optional[_State], s_ref, jac: bool,
                   shape_jac: bool = False):
        """The residuals of the pose terms and, with ``jac``, their Jacobian over the parameters
        [omega (3 P) | root t (3) | log scale, tx / s_ref, ty / s_ref (3) | betas (S, with
        ``shape_jac``)].

        Returns (r_dense [m], J_dense [m, n] or None, r_block [P - 1, k, 3], J_block [P - 1, k, 3, 3]
        or None, world scale): the landmark terms are dense; the per-joint terms (prior, temporal,
        limits: k rows of 3 per non-root posed bone) touch only that bone's 3 columns, so they are
        kept as blocks and added to the normal equations block by block."""
        cfg = self.config
        topo = self.topo
        P = len(POSED_BONES)
        G, w = rig_kinematics(rig, st.D, st.root_t)
        if jac:
            L, JL = rig_landmarks(rig, G, w, jacobian=True)
        else:
            L = rig_landmarks(rig, G, w)
        lo, hi = cfg.world_scale_range
        w3 = lw * cfg.weight_3d
        w3s = max(w3.sum(), 1e-12)
        Xc = wl - (w3 @ wl) / w3s
        Lc = L - (w3 @ L) / w3s
        k3 = float(np.clip((w3 * np.sum(Lc * Xc, 1)).sum() / max((w3 * np.sum(Xc * Xc, 1)).sum(), 1e-12), lo, hi))
        sq2 = np.sqrt(lw * cfg.weight_2d)
        sq3 = np.sqrt(w3)
        proj = st.scale * L[:, :2] + np.array([st.tx, st.ty])
        r_parts = [(sq2[:, None] * (proj - kp[:, :2]) / s_ref).ravel(), (sq3[:, None] * (L - k3 * wl)).ravel()]
        temporal = prev is not None and cfg.weight_temporal > 0
        if temporal:
            # the root's rotation and position against the previous frame's: with the hips hidden
            # (head-and-shoulders shots) nothing else holds them
            wt = math.sqrt(cfg.weight_temporal)
            r_root = matrix_to_rotvec(st.D[0] @ prev.D[0].T)
            # and the camera's scale: two shoulders and a face make a noisy ruler (~1 % a frame)
            r_parts += [wt * r_root, wt * (st.root_t - prev.root_t),
                        [wt * cfg.temporal_scale_gain * math.log(st.scale / prev.scale)]]
        r_dense = np.concatenate(r_parts)
        J_dense = None
        if jac:
            S = self.model.n_betas if shape_jac else 0
            n = 3 * P + 6 + S
            f = st.scale / s_ref
            J2 = np.zeros((33, 2, n))
            J2[:, :, :3 * P] = JL[:, :, :2, :].transpose(0, 2, 1, 3).reshape(33, 2, 3 * P) * f
            J2[:, 0, 3 * P] = f
            J2[:, 1, 3 * P + 1] = f
            J2[:, :, 3 * P + 3] = st.scale * L[:, :2] / s_ref
            J2[:, 0, 3 * P + 4] = 1.0
            J2[:, 1, 3 * P + 5] = 1.0
            J3 = np.zeros((33, 3, n))
            J3[:, :, :3 * P] = JL.transpose(0, 2, 1, 3).reshape(33, 3, 3 * P)
            J3[:, :, 3 * P:3 * P + 3] = np.eye(3)
            if shape_jac:
                dL = self._shape_jacobian(rig, G)
                J2[:, :, 3 * P + 6:] = dL[:, :2] * f
                J3[:, :, 3 * P + 6:] = dL
            rows = [(J2 * sq2[:, None, None]).reshape(-1, n), (J3 * sq3[:, None, None]).reshape(-1, n)]
            if temporal:
                Jt = np.zeros((7, n))
                Jt[:3, :3] = wt * _left_jacobian_inverse(r_root)
                Jt[3:6, 3 * P:3 * P + 3] = wt * np.eye(3)
                Jt[6, 3 * P + 3] = wt * cfg.temporal_scale_gain
                rows.append(Jt)
            J_dense = np.concatenate(rows)
        # per-joint terms on the local rotations of the non-root posed bones
        r_loc = matrix_to_rotvec(st.D[1:])
        blocks_r = [np.sqrt(cfg.weight_pose_prior * topo.prior_scale[1:])[:, None] * r_loc]
        if jac:
            Gpt = np.swapaxes(G[rig.pose_parent[1:]], -1, -2)
            # d r_local / d omega_j = Jl^-1(r) Gp^T: omega_j turns D_j into exp(Gp^T omega_j) D_j
            dloc = _left_jacobian_inverse(r_loc) @ Gpt
            blocks_J = [np.sqrt(cfg.weight_pose_prior * topo.prior_scale[1:])[:, None, None] * dloc]
        if temporal:
            r_t = matrix_to_rotvec(st.D[1:] @ np.swapaxes(prev.D[1:], -1, -2))
            blocks_r.append(wt * r_t)
            if jac:
                blocks_J.append(wt * (_left_jacobian_inverse(r_t) @ Gpt))
        # soft limits: bones without limits get zero rows
        wlim = math.sqrt(cfg.weight_limits)
        slots = topo.limit_slot - 1
        comp = np.einsum("mab,ma->mb", topo.limit_frames, r_loc[slots])
        over = np.where(comp > topo.limit_hi, comp - topo.limit_hi,
                        np.where(comp < topo.limit_lo, comp - topo.limit_lo, 0.0))
        rl = np.zeros((P - 1, 3))
        rl[slots] = wlim * over
        blocks_r.append(rl)
        if jac:
            Jl = np.zeros((P - 1, 3, 3))
            Jl[slots] = wlim * (over != 0)[:, :, None] * (np.swapaxes(topo.limit_frames, -1, -2) @ dloc[slots])
            blocks_J.append(Jl)
        r_block = np.stack(blocks_r, 1)
        J_block = np.stack(blocks_J, 1) if jac else None
        return r_dense, J_dense, r_block, J_block, k3

    def _shape_jacobian(self, rig: FitRig, G: np.ndarray) -> np.ndarray:
        """d landmarks / d betas [33, 3, S] at the pose (G) with the rig's shape derivative."""
        d = self._rig_derivative()
        P = len(G)
        dw = np.zeros((P, 3, d["offset"].shape[-1]))
        for bones, par in rig.levels:
            dw[bones] = dw[par] + G[par] @ d["offset"][bones]
        dy = G[rig.pair_bone] @ d["point"] + rig.pair_weight[:, None, None] * dw[rig.pair_bone]
        return np.einsum("ln,nas->las", rig.landmark_sum, dy)

    def _rig_derivative(self) -> dict:
        """Derivatives of the rig's shape-dependent arrays with respect to the betas, by central
        differences at the mean shape (they are nearly constant: only the bones' rest
        orientations bend them, through a nearest-rotation projection)."""
        if getattr(self, "_drig", None) is None:
            S, h = self.model.n_betas, 0.5
            pts, offs = [], []
            for k in range(S):
                e = np.zeros(S)
                e[k] = h
                rp, rm = build_rig(self.model, self.topo, e), build_rig(self.model, self.topo, -e)
                pts.append((rp.pair_point - rm.pair_point) / (2 * h))
                offs.append((rp.pose_offset - rm.pose_offset) / (2 * h))
            self._drig = {"point": np.stack(pts, -1), "offset": np.stack(offs, -1)}
        return self._drig

    def _apply(self, st: _State, rig: FitRig, delta: np.ndarray, s_ref: float) -> _State:
        P = len(POSED_BONES)
        om = delta[:3 * P].reshape(P, 3)
        G, _ = rig_kinematics(rig, st.D, st.root_t)
        D = st.D.copy()
        D[0] = rotvec_to_matrix(om[0]) @ D[0]
        Gp = G[rig.pose_parent[1:]]
        D[1:] = rotvec_to_matrix(np.einsum("jba,jb->ja", Gp, om[1:])) @ D[1:]
        c = delta[3 * P:3 * P + 6]
        return _State(D, st.root_t + c[:3], st.scale * math.exp(float(np.clip(c[3], -0.5, 0.5))),
                      st.tx + s_ref * c[4], st.ty + s_ref * c[5], st.betas.copy())

    def _optimise(self, st: _State, kp, wl, lw, prev: Optional[_State], prior_betas, iters: int,
                  fit_shape: bool) -> _State:
        cfg = self.config
        P = len(POSED_BONES)
        lam = cfg.damping
        wb = np.full(self.model.n_betas, cfg.weight_shape_prior)
        wb[0] = cfg.weight_size_prior

        def total(st_, rig_):
            rd, _, rb, _, _ = self._residuals(st_, rig_, kp, wl, lw, prev, s_ref, jac=False)
            c = float(rd @ rd + np.sum(rb * rb))
            if fit_shape:
                c += float(wb @ (st_.betas - prior_betas) ** 2)
            return c

        for _ in range(iters):
            s_ref = st.scale
            rig = self.rig(st.betas)
            rd, Jd, rb, Jb, _ = self._residuals(st, rig, kp, wl, lw, prev, s_ref, jac=True, shape_jac=fit_shape)
            cost = float(rd @ rd + np.sum(rb * rb))
            H = _gram(Jd)
            g = Jd.T @ rd
            # per-joint blocks: joint k's columns are 3 (k + 1) .. 3 (k + 1) + 3
            Hb = np.einsum("pkia,pkib->pab", Jb, Jb)
            gb = np.einsum("pkia,pki->pa", Jb, rb)
            for k in range(P - 1):
                c0 = 3 * (k + 1)
                H[c0:c0 + 3, c0:c0 + 3] += Hb[k]
                g[c0:c0 + 3] += gb[k]
            if fit_shape:
                c0 = 3 * P + 6
                H[c0:, c0:] += np.diag(wb)
                g[c0:] += wb * (st.betas - prior_betas)
                cost += float(wb @ (st.betas - prior_betas) ** 2)
            diag = np.diag(H).copy() + 1e-9
            for _attempt in range(4):
                delta = -np.linalg.solve(H + lam * np.diag(diag), g)
                om = delta[:3 * P].reshape(P, 3)
                big = np.linalg.norm(om, axis=1)
                om *= np.minimum(1.0, cfg.step_clamp / np.maximum(big, 1e-12))[:, None]
                new = self._apply(st, rig, delta, s_ref)
                if fit_shape:
                    new.betas = np.clip(st.betas + delta[3 * P + 6:], -cfg.max_betas, cfg.max_betas)
                if total(new, self.rig(new.betas)) <= cost:
                    st = new
                    lam = max(lam * 0.3, 1e-4)
                    break
                lam *= 10.0
        return st

    def repose(self, fit: BodyFit, D: np.ndarray, lin: np.ndarray) -> BodyFit:
        """``fit`` with the posed bones' rotations ``D`` [P, 3, 3] (``D[0]`` the root's) and
        (root_t, log scale, tx / scale, ty / scale) ``lin`` [6] replaced; vertices, landmarks and
        joints recomputed, the quality numbers kept from ``fit``."""
        scale = math.exp(lin[3])
        st = _State(np.array(D, np.float64), np.array(lin[:3], np.float64), scale, lin[4] * scale, lin[5] * scale,
                    fit.betas.astype(np.float64))
        out = self._result(st, None, None, None, None, (0, 0), fit.shape_frames, quality=False)
        return dataclasses.replace(out, reprojection_error=fit.reprojection_error, mask_inside=fit.mask_inside,
                                   world_scale=fit.world_scale)

    # -- output
    def _result(self, st: _State, kp, wl, lw, mask, mask_offset, shape_frames, quality: bool = True) -> BodyFit:
        cfg = self.config
        model = self.model
        rig = self.rig(st.betas)
        G, w = rig_kinematics(rig, st.D, st.root_t)
        L = rig_landmarks(rig, G, w)
        rotations, root_R, Gall, wall = _full_pose(model, self.topo, rig, st.D, G, w)
        rest = model.rest(st.betas)
        verts = model.skin_vertices(skinning_transforms(Gall, wall, rest), st.betas)
        z0 = 0.5 * (L[23, 2] + L[24, 2])

        def to_image(p):
            out = np.empty_like(p)
            out[:, 0] = st.scale * p[:, 0] + st.tx
            out[:, 1] = st.scale * p[:, 1] + st.ty
            out[:, 2] = st.scale * (p[:, 2] - z0)
            return out

        v_img = to_image(verts.astype(np.float64)).astype(np.float32)
        l_img = to_image(L)
        height_px = st.scale * rig.height
        err = float("nan")
        inside = None
        k3 = 1.0
        if quality:
            k3 = self._residuals(st, rig, kp, wl, lw, None, st.scale, jac=False)[-1]
        if quality and cfg.quality:
            visible = kp[:, 2] > 0.5
            if visible.any():
                d = np.linalg.norm(l_img[visible, :2] - kp[visible, :2], axis=1)
                err = float(np.median(d) / height_px * 100.0)
            if mask is not None:
                inside = silhouette_inside(v_img[:, :2], model.faces, mask, mask_offset, height_px,
                                           cfg.silhouette_cells)
        return BodyFit(betas=st.betas.astype(np.float64), rotations=rotations, root_R=root_R, root_t=st.root_t.copy(),
                       scale=float(st.scale), tx=float(st.tx), ty=float(st.ty), vertices=v_img, landmarks=l_img,
                       joints=to_image(wall), reprojection_error=err, mask_inside=inside,
                       shape_frames=int(shape_frames), world_scale=float(k3), body_height_px=float(height_px))


# ----------------------------------------------------------------------------- quality


def silhouette_grid(xy: np.ndarray, faces: np.ndarray, origin, cell: float, shape: Tuple[int, int]) -> np.ndarray:
    """Coarse silhouette of a projected closed mesh: cells of size ``cell`` pixels (grid origin
    ``origin`` (x, y) in pixels, ``shape`` (rows, cols)) hit by a vertex or a face centroid, then
    closed by one cell. The mesh's vertices are ~1 cm apart, so on a grid whose cells are ~1 cm
    at the body (``FitConfig.silhouette_cells`` rows over its height) this covers the silhouette
    without holes (its boundary is within a cell of the exact one)."""
    import cv2

    # 1-D coordinate arrays and np.take throughout: on [N, 2] arrays and with int32 fancy indices
    # numpy's gathers and reductions take the slow strided paths (~10x here)
    x = np.ascontiguousarray(xy[:, 0], np.float32)
    y = np.ascontiguousarray(xy[:, 1], np.float32)
    f = [np.ascontiguousarray(faces[:, k], np.intp) for k in range(3)]
    third = np.float32(1.0 / 3.0)
    cx = (np.take(x, f[0]) + np.take(x, f[1]) + np.take(x, f[2])) * third
    cy = (np.take(y, f[0]) + np.take(y, f[1]) + np.take(y, f[2])) * third
    inv = np.float32(1.0 / cell)
    # origin lies below every point of interest: truncation floors there, and points below it
    # (negative) or beyond the grid are dropped
    ix = ((np.concatenate([x, cx]) - np.float32(origin[0])) * inv).astype(np.int32)
    iy = ((np.concatenate([y, cy]) - np.float32(origin[1])) * inv).astype(np.int32)
    rows, cols = shape
    ok = (ix >= 0) & (ix < cols) & (iy >= 0) & (iy < rows)
    grid = np.zeros(shape, np.uint8)
    np.put(grid, iy[ok].astype(np.intp) * cols + ix[ok], 1)
    grid = cv2.morphologyEx(grid, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return grid.astype(bool)


def silhouette_inside(xy: np.ndarray, faces: np.ndarray, mask: np.ndarray, mask_offset, height_px: float,
                      cells: int) -> float:
    """Share of the body's projected silhouette (vertices ``xy`` [V, 2] in frame pixels) inside the
    person ``mask`` (bool [H, W], top-left pixel at ``mask_offset`` in frame pixels), measured on
    a grid of ~``cells`` rows over the body's height. The silhouette outside the mask's array (a
    body part out of the frame or the crop) is left out: nothing is known there. 0 when none is
    left."""
    import cv2

    H, W = mask.shape
    ox, oy = float(mask_offset[0]), float(mask_offset[1])
    cell = max(height_px / max(cells, 1), 1.0)
    # the grid covers the body's box clipped to the mask's array (plus a cell for the closing)
    x, y = xy[:, 0], xy[:, 1]
    lo = np.maximum(np.floor([x.min(), y.min()]) - cell, [ox - cell, oy - cell])
    hi = np.minimum(np.ceil([x.max(), y.max()]) + cell, [ox + W + cell, oy + H + cell])
    if np.any(hi <= lo):
        return 0.0
    shape = (int(math.ceil((hi[1] - lo[1]) / cell)), int(math.ceil((hi[0] - lo[0]) / cell)))
    sil = silhouette_grid(xy, faces, lo, cell, shape)
    # the mask's share in each cell (area average over the cell's pixels)
    x0, y0 = int(math.floor(lo[0] - ox)), int(math.floor(lo[1] - oy))
    x1, y1 = int(math.ceil(x0 + shape[1] * cell)), int(math.ceil(y0 + shape[0] * cell))
    pad = np.zeros((y1 - y0, x1 - x0), np.float32)
    known = np.zeros((y1 - y0, x1 - x0), np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if sx1 > sx0 and sy1 > sy0:
        pad[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = mask[sy0:sy1, sx0:sx1]
        known[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = 1.0
    size = (shape[1], shape[0])
    share = cv2.resize(pad, size, interpolation=cv2.INTER_AREA)
    cover = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
    w = cover[sil]
    if w.sum() <= 0:
        return 0.0
    # a cell partly outside the array counts by the share of its pixels inside
    return float(share[sil].sum() / w.sum())


# ----------------------------------------------------------------------------- mirror


def mirror_inputs(keypoints: np.ndarray, world: np.ndarray, width: float) -> Tuple[np.ndarray, np.ndarray]:
    """The inputs of the horizontally mirrored frame (x -> width - x, left <-> right landmarks)."""
    kp = np.asarray(keypoints, np.float64)[list(BLAZEPOSE_MIRROR)].copy()
    kp[:, 0] = width - kp[:, 0]
    wl = np.asarray(world, np.float64)[list(BLAZEPOSE_MIRROR)].copy()
    wl[:, 0] = -wl[:, 0]
    return kp, wl


# ----------------------------------------------------------------------------- smoothing


class BodySmoother:
    """One-Euro filter on a person's fit parameters over a video (one instance per tracked
    person, used from the fitter's thread): the local rotations of the posed bones and the root
    rotation (each filtered as a rotation vector of its change from the last filtered value, with
    the cutoff driven by that bone's angular speed), the root translation and the camera
    (log scale, tx / scale, ty / scale). Shape is not filtered (it is frozen after the first frames).
    ``__call__(fit, t)`` returns the smoothed fit, re-posed."""

    def __init__(self, fitter: BodyFitter):
        self.fitter = fitter
        cfg = fitter.config
        self.min_cutoff, self.beta, self.d_cutoff = cfg.smooth_min_cutoff, cfg.smooth_beta, cfg.smooth_d_cutoff
        self.reset()

    def reset(self) -> None:
        self._t = None
        self._D = None
        self._lin = None
        self._dD = None
        self._dlin = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, fit: BodyFit, t: float) -> BodyFit:
        if not isinstance(fit, BodyFit):
            raise ValueError(f"fit: expected a BodyFit, got {type(fit).__name__}")
        if not math.isfinite(t):
            raise ValueError(f"t: expected a finite time in seconds, got {t}")
        posed = self.fitter.topo.posed
        D = np.concatenate([fit.root_R[None], fit.rotations[posed[1:]]])
        lin = np.concatenate([fit.root_t, [math.log(fit.scale), fit.tx / fit.scale, fit.ty / fit.scale]])
        if self._t is None or t <= self._t:
            self._t, self._D, self._lin = t, D, lin
            self._dD, self._dlin = np.zeros((len(D), 3)), np.zeros_like(lin)
            return fit
        dt = t - self._t
        self._t = t
        # rotations: change from the last filtered value, as rotation vectors
        delta = matrix_to_rotvec(D @ np.swapaxes(self._D, -1, -2))
        ad = self._alpha(self.d_cutoff, dt)
        self._dD = ad * delta / dt + (1 - ad) * self._dD
        cut = self.min_cutoff + self.beta * np.linalg.norm(self._dD, axis=1)
        a = np.array([self._alpha(c, dt) for c in cut])
        self._D = rotvec_to_matrix(a[:, None] * delta) @ self._D
        dl = lin - self._lin
        self._dlin = ad * dl / dt + (1 - ad) * self._dlin
        cut = self.min_cutoff + self.beta * np.abs(self._dlin)
        a = np.array([self._alpha(c, dt) for c in cut])
        self._lin = self._lin + a * dl
        return self.fitter.repose(fit, self._D, self._lin)
