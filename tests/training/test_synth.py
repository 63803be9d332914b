"""The synthetic people generator: analytic checks of labels, renders and the camera, and the
anny-based recipe (determinism, watertight garments, poses within limits). Needs the train extra;
the anny part is skipped when anny is not installed."""
from __future__ import annotations

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh", reason="the train extra (trimesh) is not installed")
pytest.importorskip("igl", reason="the train extra (libigl) is not installed")

from streamrecon.training.synth import camera, clothing, labels, poses, render  # noqa: E402


def sphere(r=0.5, subdiv=4):
    s = trimesh.creation.icosphere(subdivisions=subdiv, radius=r)
    return np.asarray(s.vertices, np.float64), np.asarray(s.faces, np.int64)


def test_winding_number_labels_match_analytic_sphere():
    v, f = sphere(0.5)
    rng = np.random.default_rng(0)
    p = rng.uniform(-0.8, 0.8, (20000, 3))
    r = np.linalg.norm(p, axis=1)
    occ = labels.inside(v, f, p)
    clear = np.abs(r - 0.5) > 0.01  # the icosphere deviates from the sphere by < 1%
    assert np.array_equal(occ[clear], r[clear] < 0.5)


def test_sample_points_mix():
    v, f = sphere(0.5)
    pts = labels.sample_points(v, f, 8000, np.random.default_rng(1), sigmas=(0.01,), uniform_share=0.25)
    near = np.abs(np.linalg.norm(pts[:6000], axis=1) - 0.5)
    assert np.median(near) < 0.015 and pts.shape == (8000, 3)
    assert np.all(np.abs(pts[6000:]) <= 0.7 + 1e-9)  # bbox grown by 20% of its size per side


def test_render_sphere_mask_area_normals_and_depth():
    v, f = sphere(0.5)
    res = 128
    r = render.render(v, f, res)
    px = (2.0 / (res - 1)) ** 2
    assert abs(r.mask.sum() * px - np.pi * 0.25) / (np.pi * 0.25) < 0.03
    xy = render.pixel_grid(res)[r.mask]
    # visible hemisphere: z = -sqrt(r^2 - x^2 - y^2), normals face the camera (-z)
    zexp = -np.sqrt(np.clip(0.25 - (xy ** 2).sum(1), 0, None))
    assert np.abs(r.depth[r.mask] - zexp).max() < 0.02
    assert np.all(r.normals[r.mask][:, 2] < 0.05)
    img = render.shade(r)
    assert img.shape == (res, res, 3) and img[~r.mask].max() == 0 and img[r.mask].max() > 0
    assert r.back_depth is None
    # cast from behind too: the far hemisphere, +inf exactly where the front cast missed
    rb = render.render(v, f, res, back=True)
    assert np.array_equal(rb.mask, r.mask) and np.array_equal(rb.depth, r.depth)
    assert np.array_equal(np.isfinite(rb.back_depth), r.mask)
    assert np.abs(rb.back_depth[r.mask] + zexp).max() < 0.02


def test_camera_frames_body_and_reverses_winding():
    rng = np.random.default_rng(0)
    v, f = sphere(0.3)
    v = v * [1.0, 0.6, 2.5]  # a tall body, z up in the world
    cam = camera.make_camera(v, yaw=0.3)
    c = cam.apply(v)
    # PIFuHD crop rule: the larger side spans 1 / 0.65 of the half-width -> |coord| <= 1/1.3
    assert abs(np.abs(c[:, 1]).max() - 1 / 1.3) < 1e-6
    assert np.linalg.det(cam.matrix[:3, :3]) < 0  # a reflection (x right, y up, z away)
    # world up -> crop y up; facing -y (toward the camera at yaw 0) -> crop -z
    c0 = camera.make_camera(v, yaw=0.0)
    d = c0.apply(np.array([[0, 0, 1.0], [0, -1.0, 0]])) - c0.apply(np.zeros((1, 3)))
    assert d[0, 1] > 0 and abs(d[0, 0]) < 1e-9 and d[1, 2] < 0
    from streamrecon.training.synth.generate import to_crop

    cv, cf = to_crop(cam, v, f)
    assert labels.winding_number(cv, cf, cam.apply(np.zeros((1, 3))))[0] > 0.99
    jit = camera.make_camera(v, 0.3, rng)
    assert not np.allclose(jit.matrix, cam.matrix)


def test_pose_angles_within_limits_and_mirrored():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = poses.sample_pose(rng)
        for name, lim in poses.JOINT_LIMITS.items():
            R = p[name][:3, :3]
            assert np.allclose(R @ R.T, np.eye(3), atol=1e-9)
        assert set(p) >= {"upperarm01.L", "upperarm01.R", "lowerleg01.R"}
    a = poses.sample_pose(np.random.default_rng(5), amplitude=0.0)
    assert all(np.allclose(t, np.eye(4)) for t in a.values())
    # x angles (flexion) are shared by mirrored bones, y and z angles change sign
    ang = np.array([0.3, 0.2, -0.1])
    assert np.allclose(poses.euler_xyz(ang * [1, -1, -1]), np.diag([-1, 1, 1]) @ poses.euler_xyz(ang) @ np.diag([-1, 1, 1]))


anny = pytest.importorskip("anny", reason="the train extra (anny) is not installed")


@pytest.fixture(scope="module")
def model():
    from streamrecon.training.synth.bodies import load_anny

    return load_anny()  # the first run builds anny's ~790 MB cache (about a minute)


@pytest.mark.slow
def test_subject_is_deterministic_for_a_seed(model):
    from streamrecon.training.synth import generate as g

    cfg = g.SynthConfig(res=48, points=1500, views=2)
    a = g.make_subject(g.subject_seed(3, 11), cfg)
    b = g.make_subject(g.subject_seed(3, 11), cfg)
    c = g.make_subject(g.subject_seed(3, 11, g.HELDOUT), cfg)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.occupancy, b.occupancy)
    assert np.array_equal(a.masks, b.masks) and np.allclose(a.cameras[1].matrix, b.cameras[1].matrix)
    assert not np.array_equal(a.vertices[:100], c.vertices[:100])  # held-out stream: another body
    assert 0.2 < a.occupancy.mean() < 0.7 and a.masks.any(axis=(1, 2)).all()
    assert 1.3 < a.height < 2.1  # adults, metres


@pytest.mark.slow
def test_body_watertight_and_garments_closed(model):
    from streamrecon.training.synth import bodies

    rng = np.random.default_rng(0)
    body = bodies.make_body(model, bodies.sample_phenotype(model, rng), poses.sample_pose(rng))
    assert trimesh.Trimesh(body.vertices, body.faces, process=False).is_watertight
    assert np.all(body.bone_weights.sum(1) <= 1 + 1e-5)
    outfit = clothing.Outfit(shirt=0.03, sleeves="long", trousers=0.02, trouser_length="long", skirt=True,
                             skirt_hem=0.6, skirt_flare=1.4, hair=0.02)
    parts = clothing.dress(body, outfit, rng)
    assert len(parts) == 2
    for v, f in parts:
        m = trimesh.Trimesh(v, f, process=False)
        assert m.is_watertight and m.volume > 0  # closed and outward
    shell_v, _ = parts[0]
    push = np.linalg.norm(shell_v - body.vertices, axis=1)
    assert push.max() < 0.08 and push.max() > 0.01


@pytest.mark.slow
def test_body_prior_is_a_fit_of_the_views_landmarks_that_leaves_the_rest_of_the_subject_alone(model):
    from streamrecon.training.synth import generate as g
    from streamrecon.training.synth.landmarks import perturb, view_landmarks

    cfg = g.SynthConfig(res=64, points=800, views=2, max_yaw_deg=60.0, body=True)
    a = g.make_subject(g.subject_seed(4, 2), cfg)
    plain = g.make_subject(g.subject_seed(4, 2), g.SynthConfig(res=64, points=800, views=2, max_yaw_deg=60.0))
    assert np.array_equal(a.points, plain.points) and np.array_equal(a.masks, plain.masks)  # its own noise stream
    b = g.make_subject(g.subject_seed(4, 2), cfg)
    np.testing.assert_array_equal(a.body_depths, b.body_depths)  # deterministic
    assert a.body_depths.shape == (2, 2, 64, 64) and a.landmarks.shape == (33, 3)
    for k in range(2):
        on = np.isfinite(a.body_depths[k, 0])
        assert on.sum() > 100 and np.all(a.body_depths[k, 1][on] >= a.body_depths[k, 0][on])
        inside = (on & a.masks[k]).sum() / on.sum()
        assert inside > 0.75, inside  # the fitted body lies (mostly) under the dressed person's silhouette
        # the fitted body's depth is near the dressed person's front (clothes on top, detector noise)
        both = on & np.isfinite(a.depths[k, 0])
        gap_cm = np.median(np.abs(a.body_depths[k, 0][both] - a.depths[k, 0][both])) / a.cameras[k].crop_per_metre * 100
        assert gap_cm < 12, gap_cm
    # the true landmarks project onto the person, and the noise is the measured size
    v = view_landmarks(a.landmarks, a.cameras[0], 64)
    cols, rows = np.clip(v.keypoints[:, 0].astype(int), 0, 63), np.clip(v.keypoints[:, 1].astype(int), 0, 63)
    assert a.masks[0][rows, cols].mean() > 0.8
    rng = np.random.default_rng(0)
    d = np.stack([perturb(v, rng, swap_share=0.0).keypoints[:, :2] - v.keypoints[:, :2] for _ in range(200)])
    sigma_pct = d.std(axis=0).mean(1) / v.height_px * 100
    assert 0.7 < np.median(sigma_pct) < 2.5
