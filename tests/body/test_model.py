"""The exported body asset and our linear-blend skinning (against its slow twin and against anny)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from streamrecon.body.model import (ASSET_PATH, BLAZEPOSE_MIRROR, BLAZEPOSE_NAMES,
                                    linear_blend_skinning_reference, matrix_to_rotvec, rotvec_to_matrix,
                                    skinning_transforms, special_procrustes)


def test_asset_is_small_and_complete(body_model):
    size = ASSET_PATH.stat().st_size
    assert size <= 15e6, f"asset is {size / 1e6:.1f} MB"
    a = body_model.asset
    V, S, J = len(a.vertices), a.n_betas, a.n_bones
    assert a.shape_dirs.shape == (S, V, 3) and S >= 8
    assert a.bone_parents[0] == -1 and np.all(a.bone_parents[1:] < np.arange(1, J))
    np.testing.assert_allclose(a.skin_weight.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a.landmark_weight.sum(1), 1.0, atol=1e-6)
    assert a.landmark_names == BLAZEPOSE_NAMES
    assert a.landmark_index.max() < V and a.faces.max() < V
    meta = a.meta
    assert meta["anny_version"] and meta["seed"] == 0 and "streamrecon.training.body_asset" in meta["command"]
    assert (ASSET_PATH.parent / "NOTICE").read_text().count("CC0") >= 1


def test_body_surface_is_closed_and_consistently_wound(body_model):
    f = body_model.faces.astype(np.int64)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # each directed edge once, and its reverse once: closed, manifold, consistently oriented
    key = edges[:, 0] * len(body_model.asset.vertices) + edges[:, 1]
    rkey = edges[:, 1] * len(body_model.asset.vertices) + edges[:, 0]
    assert len(np.unique(key)) == len(key)
    assert np.array_equal(np.sort(key), np.sort(rkey))
    # outward: positive volume
    v = body_model.asset.vertices.astype(np.float64)[f]
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert 0.04 < volume < 0.12


def test_rotations_round_trip():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(200, 3))
    r *= (rng.uniform(0, np.pi - 1e-3, 200) / np.linalg.norm(r, axis=1))[:, None]
    R = rotvec_to_matrix(r)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(matrix_to_rotvec(R), r, atol=1e-7)
    np.testing.assert_allclose(special_procrustes(R * 2.0), R, atol=1e-12)


def test_skinning_matches_its_slow_twin(body_model):
    rng = np.random.default_rng(1)
    betas = rng.normal(size=body_model.n_betas)
    rots = rotvec_to_matrix(rng.normal(0, 0.5, (body_model.n_bones, 3)))
    G, w, rest = body_model.skeleton(betas, rots, rotvec_to_matrix(rng.normal(size=3)), rng.normal(size=3))
    T = skinning_transforms(G, w, rest)
    fast = body_model.skin_vertices(T, betas)
    slow = linear_blend_skinning_reference(T, body_model.asset.skin_index, body_model.asset.skin_weight, rest.vertices)
    assert np.abs(fast - slow).max() < 2e-6


def test_zero_pose_is_symmetric(body_model):
    v, j, lm = body_model.pose(np.zeros(body_model.n_betas), body_model.identity_pose(), np.eye(3), np.zeros(3))
    mirrored = lm[list(BLAZEPOSE_MIRROR)] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(mirrored - lm).max() < 3e-3  # anny's mesh is symmetric to ~0.1 mm, its rig to 3 mm
    assert 1.5 < v[:, 2].max() - v[:, 2].min() < 1.9


@pytest.mark.parametrize("arg, shape", [("betas", (3,)), ("rotations", (2, 3, 3)), ("root_R", (3,)), ("root_t", (2,))])
def test_pose_rejects_bad_shapes(body_model, arg, shape):
    good = dict(betas=np.zeros(body_model.n_betas), rotations=body_model.identity_pose(), root_R=np.eye(3),
                root_t=np.zeros(3))
    good[arg] = np.zeros(shape)
    with pytest.raises(ValueError, match=arg):
        body_model.pose(**good)


def test_import_stays_light():
    code = ("import sys, streamrecon.body, streamrecon.body.model, streamrecon.body.fit, streamrecon.body.landmarks;"
            "print(sorted(m for m in ('torch', 'anny') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- parity with anny


@pytest.fixture(scope="module")
def anny_model():
    pytest.importorskip("anny", reason="anny is not installed (pip install 'streamrecon[train]'): no parity check")
    from streamrecon.training.body_asset import load_anny

    return load_anny()


def test_skinning_matches_anny(body_model, anny_model):
    """Same pose and same shape in anny and in ours. Comparable shape: our betas reconstruct anny
    blendshape coefficients c = mean + dirs @ betas (stored in the asset), which we give to anny's
    rigged model directly; anny's own phenotype parameters are not comparable (the PCA truncates
    them, error in the asset's meta). Tolerance 2e-6 m: our skinning runs in float32 (anny float64)."""
    import torch
    from anny.models.rigged_model import RiggedModelWithLinearBlendShapes

    with np.load(ASSET_PATH) as z:
        kept, mean, dirs = z["anny_vertex_index"], z["shape_coeff_mean"], z["shape_coeff_dirs"]
    rng = np.random.default_rng(2)
    J = body_model.n_bones
    for trial in range(4):
        betas = rng.normal(0, 1, body_model.n_betas) if trial else np.zeros(body_model.n_betas)
        rots = rotvec_to_matrix(rng.normal(0, 0.5, (J, 3)))
        root_R, root_t = rotvec_to_matrix(rng.normal(size=3)), rng.normal(size=3)
        v, joints, _ = body_model.pose(betas, rots, root_R, root_t)
        D = np.tile(np.eye(4), (1, J, 1, 1))
        D[0, :, :3, :3] = rots
        D[0, 0, :3, :3] = root_R @ rots[0]
        D[0, 0, :3, 3] = root_t
        with torch.no_grad():
            out = RiggedModelWithLinearBlendShapes.forward(anny_model, torch.as_tensor(D),
                                                           torch.as_tensor((mean + dirs @ betas)[None]))
        ref_v = out["vertices"][0].numpy()[kept]
        ref_j = out["bone_poses"][0, :, :3, 3].numpy()
        assert np.abs(v - ref_v).max() < 2e-6, trial
        assert np.abs(joints - ref_j).max() < 1e-9, trial
