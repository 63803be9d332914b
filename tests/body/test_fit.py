"""The body fitter on synthetic inputs made from our own posed body (tests/body/conftest.py):
the fitted body must land near the true one, start from a previous frame, survive hidden
landmarks, mirror with its input, and refuse bad inputs by name."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from body_inputs import SCALE, random_pose, synthetic_inputs
from streamrecon.body.model import mirror_name
from streamrecon.body.fit import (BodyFit, BodyFitter, BodySmoother, FitConfig, mirror_inputs, silhouette_inside)
from streamrecon.body.model import rotvec_to_matrix


@pytest.fixture(scope="module")
def fitter(body_model):
    return BodyFitter(body_model, FitConfig())


def vertex_error_cm(fit: BodyFit, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(fit.vertices - truth, axis=1) / SCALE * 100.0


def test_recovers_a_synthetic_body_at_one_centimetre_of_noise(body_model, fitter):
    """Noise: 1 cm (std per coordinate) on the world landmarks and 4 px (1 cm at 400 px/m) on the
    keypoints. Bounds over 6 random bodies and shapes, cold start at the real-time settings
    (measured: mean ~1.4 cm, p95 ~3 cm)."""
    rng = np.random.default_rng(10)
    errs = []
    for _ in range(6):
        betas, rots, root_R = random_pose(body_model, rng)
        kp, world, verts, _ = synthetic_inputs(body_model, betas, rots, root_R, rng, noise_m=0.01)
        fit = fitter.fit(kp, world)
        e = vertex_error_cm(fit, verts)
        assert e.mean() < 3.0, e.mean()
        errs.append(e)
    e = np.concatenate(errs)
    assert e.mean() < 2.0 and np.percentile(e, 95) < 4.5, (e.mean(), np.percentile(e, 95))


def test_exact_inputs_are_fitted_closely_offline(body_model):
    """No noise, the offline preset with the true shape given: the pose alone is recovered to a
    few millimetres on average (the pose prior and twist ambiguities leave the rest)."""
    rng = np.random.default_rng(11)
    f = BodyFitter(body_model, FitConfig.for_reconstruct())
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, verts, _ = synthetic_inputs(body_model, betas, rots, root_R, rng)
    fit = f.fit(kp, world, betas=betas)
    e = vertex_error_cm(fit, verts)
    assert e.mean() < 1.5, e.mean()
    assert fit.reprojection_error < 0.5
    np.testing.assert_allclose(fit.betas, betas)


def test_fit_is_reproduced_by_the_body_model(body_model, fitter):
    """The fitter's reduced kinematics against BodyModel.pose on the full skeleton."""
    rng = np.random.default_rng(12)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, _, _ = synthetic_inputs(body_model, betas, rots, root_R, rng, noise_m=0.01)
    fit = fitter.fit(kp, world)
    v, j, lm = body_model.pose(fit.betas, fit.rotations, fit.root_R, fit.root_t)
    z0 = 0.5 * (lm[23, 2] + lm[24, 2])

    def image(p):
        return np.concatenate([fit.scale * p[:, :2] + [fit.tx, fit.ty], fit.scale * (p[:, 2:] - z0)], 1)

    assert np.abs(image(v.astype(np.float64)) - fit.vertices).max() < 1e-2  # pixels (float32 vertices)
    assert np.abs(image(j) - fit.joints).max() < 1e-6
    assert np.abs(image(lm) - fit.landmarks).max() < 1e-3  # BodyModel regresses them from float32 vertices


def test_warm_start_converges_from_a_wrong_previous_frame(body_model, fitter):
    rng = np.random.default_rng(13)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, verts, _ = synthetic_inputs(body_model, betas, rots, root_R, rng, noise_m=0.005)
    cold = fitter.fit(kp, world)
    # the previous frame: every fitted joint turned by ~0.25 rad, the camera off by 5 %
    wrong = cold.rotations.copy()
    moved = [i for i in range(1, body_model.n_bones) if not np.allclose(cold.rotations[i], np.eye(3))]
    wrong[moved] = rotvec_to_matrix(rng.normal(0, 0.15, (len(moved), 3))) @ wrong[moved]
    prev = dataclasses.replace(cold, rotations=wrong, scale=cold.scale * 1.05)
    errors = []
    for _ in range(6):
        prev = fitter.fit(kp, world, previous=prev)
        errors.append(vertex_error_cm(prev, verts).mean())
    assert errors[-1] < errors[0] or errors[0] < 1.5
    assert errors[-1] < vertex_error_cm(cold, verts).mean() + 0.5, errors
    assert prev.shape_frames == cold.shape_frames + 6


def test_hidden_landmarks_do_not_make_the_fit_diverge(body_model):
    """Legs hidden: visibility 0 and hallucinated positions 1-2 m off. The upper body must still
    fit and the legs must stay attached, cold and over warm-started frames."""
    rng = np.random.default_rng(14)
    f = BodyFitter(body_model, FitConfig())
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, verts, joints = synthetic_inputs(body_model, betas, rots, root_R, rng, noise_m=0.005)
    legs = np.arange(25, 33)
    kp[legs, 2] = 0.0
    kp[legs, :2] += rng.normal(0, 1.5 * SCALE, (len(legs), 2))
    world[legs] += rng.normal(0, 1.5, (len(legs), 3))
    prev = None
    for _ in range(5):
        fit = f.fit(kp, world, previous=prev)
        assert np.all(np.isfinite(fit.vertices))
        upper = np.linalg.norm(fit.landmarks[:23, :2] - kp[:23, :2], axis=1) / SCALE * 100
        assert np.median(upper) < 2.0, np.median(upper)
        # every vertex within 2.2 m (in the image plane) of the hips
        hips = 0.5 * (fit.landmarks[23, :2] + fit.landmarks[24, :2])
        assert np.linalg.norm(fit.vertices[:, :2] - hips, axis=1).max() / SCALE < 2.2
        prev = fit


def test_mirrored_input_gives_the_mirrored_fit(body_model, fitter):
    rng = np.random.default_rng(15)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, _, _ = synthetic_inputs(body_model, betas, rots, root_R, rng, noise_m=0.005)
    width = 640.0
    fit = fitter.fit(kp, world)
    mfit = fitter.fit(*mirror_inputs(kp, world, width))
    names = body_model.asset.bone_names
    swap = [names.index(mirror_name(n)) for n in names]
    expect = fit.joints[swap].copy()
    expect[:, 0] = width - expect[:, 0]
    err = np.linalg.norm(mfit.joints - expect, axis=1) / SCALE * 100
    assert err.max() < 2.0, err.max()  # cm; the rig itself is symmetric to 0.3 cm
    np.testing.assert_allclose(mfit.betas, fit.betas, atol=0.1)


def test_quality_numbers(body_model, fitter):
    rng = np.random.default_rng(16)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, verts, _ = synthetic_inputs(body_model, betas, rots, root_R, rng)
    import cv2

    # the true silhouette, exactly rasterised triangle by triangle, grown by 3 px
    h, w = 1000, 900
    mask = np.zeros((h, w), np.uint8)
    for t in np.round(verts[body_model.faces, :2]).astype(np.int32):
        cv2.fillConvexPoly(mask, t, 1)
    grown = cv2.dilate(mask, np.ones((7, 7), np.uint8)).astype(bool)
    fit = fitter.fit(kp, world, mask=grown)
    assert fit.reprojection_error < 1.0
    assert fit.mask_inside > 0.95
    assert fitter.fit(kp, world, mask=np.zeros((h, w), bool)).mask_inside == 0.0
    # the mask as a crop: the same answer, up to the grid's cells, which start at the crop's edge
    crop = grown[100:, 50:]
    inside = silhouette_inside(fit.vertices[:, :2], body_model.faces, crop, (50, 100), fit.body_height_px, 160)
    assert abs(inside - fit.mask_inside) < 0.01
    # and against the exact silhouette of the fitted body
    exact = np.zeros((h, w), np.uint8)
    for t in np.round(fit.vertices[body_model.faces, :2]).astype(np.int32):
        cv2.fillConvexPoly(exact, t, 1)
    assert abs(grown[exact.astype(bool)].mean() - fit.mask_inside) < 0.02
    # a mask covering only the left half of the body's box: about half inside
    half = np.zeros((h, w), bool)
    cx = np.median(fit.vertices[:, 0])
    half[:, :int(cx)] = grown[:, :int(cx)]
    share = fitter.fit(kp, world, mask=half).mask_inside
    assert 0.25 < share < 0.75


def test_smoother_follows_a_still_body_and_calms_a_noisy_one(body_model, fitter):
    rng = np.random.default_rng(17)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, _, _ = synthetic_inputs(body_model, betas, rots, root_R, rng)
    fit = fitter.fit(kp, world)
    sm = BodySmoother(fitter)
    for i in range(5):
        out = sm(fit, i / 30)
    assert np.abs(out.vertices - fit.vertices).max() < 1e-2
    raw_motion, smooth_motion, prev, prev_s = [], [], None, None
    sm.reset()
    for i in range(20):
        noisy_kp = kp.copy()
        noisy_kp[:, :2] += rng.normal(0, 3.0, (33, 2))
        f = fitter.fit(noisy_kp, world + rng.normal(0, 0.01, world.shape), previous=prev)
        s = sm(f, i / 30)
        if prev is not None:
            raw_motion.append(np.abs(f.vertices - prev.vertices).mean())
            smooth_motion.append(np.abs(s.vertices - prev_s.vertices).mean())
        prev, prev_s = f, s
    assert np.mean(smooth_motion) < 0.8 * np.mean(raw_motion)


# ----------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def good_inputs(body_model):
    rng = np.random.default_rng(18)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world, _, _ = synthetic_inputs(body_model, betas, rots, root_R, rng)
    return kp, world


@pytest.mark.parametrize("change, name", [
    (dict(keypoints=np.zeros((33, 2))), "keypoints"),
    (dict(keypoints=None), "keypoints"),
    (dict(keypoints="nan"), "keypoints"),
    (dict(keypoints="vis"), "keypoints"),
    (dict(world=np.zeros((32, 3))), "world"),
    (dict(world=np.zeros((33, 3))), "world"),
    (dict(world="nan"), "world"),
    (dict(mask=np.zeros((10, 10), np.uint8)), "mask"),
    (dict(mask=np.zeros(10, bool)), "mask"),
    (dict(previous="fit"), "previous"),
    (dict(mask_offset=(1, 2, 3)), "mask_offset"),
    (dict(betas=np.zeros(3)), "betas"),
])
def test_bad_inputs_name_the_argument(fitter, good_inputs, change, name):
    kp, world = good_inputs
    args = dict(keypoints=kp.copy(), world=world.copy())
    args.update(change)
    if isinstance(args["keypoints"], str):
        k = kp.copy()
        if args["keypoints"] == "nan":
            k[3, 0] = np.nan
        else:
            k[3, 2] = 1.5
        args["keypoints"] = k
    if isinstance(args.get("world"), str):
        w = world.copy()
        w[0, 0] = np.inf
        args["world"] = w
    with pytest.raises(ValueError, match=name):
        fitter.fit(**args)


@pytest.mark.parametrize("field, value", [("iterations", -1), ("damping", -0.1), ("step_clamp", 0.0),
                                          ("world_scale_range", (1.2, 0.8)), ("group_weights", (("face", 1.0),))])
def test_config_checks_its_fields(field, value):
    with pytest.raises(ValueError, match=field):
        FitConfig(**{field: value})


def test_bodyfit_validates_shapes(body_model, fitter, good_inputs):
    fit = fitter.fit(*good_inputs)
    with pytest.raises(ValueError, match="landmarks"):
        dataclasses.replace(fit, landmarks=np.zeros((32, 3)))
    with pytest.raises(ValueError, match="scale"):
        dataclasses.replace(fit, scale=0.0)
