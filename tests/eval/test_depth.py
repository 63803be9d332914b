"""The 3D figures against a fitted body (``eval.metrics.depth``, ``eval.metrics.motion``) on
scenes made from our own body model, where the answers are known: a body in 2 cm of clothes is
covered and thicker than the body, the same squashed to 20% of its depth is neither; a depth offset
is found and removed; the body's own motion carries its clothes."""
import numpy as np
import pytest

from body_scenes import H, RECT, SCALE, W, body_params, clothed, flattened, silhouette


@pytest.fixture(scope="module")
def scene():
    from streamrecon.eval.metrics.depth import body_from_params

    p = body_params(1)
    v, f = clothed(p, 2.0)
    return body_from_params(p), v, f, silhouette(v, f)


def _figures(body, v, f, mask, **kw):
    from streamrecon.eval.metrics.depth import person_depth_metrics

    return person_depth_metrics(v, f, body, RECT, (H, W), mask, **kw)


def test_clothed_body_passes_and_flattened_fails(scene):
    from streamrecon.eval.metrics.depth import depth_verdict

    body, v, f, mask = scene
    fig, shifted = _figures(body, v, f, mask)
    assert fig["body_points"] > 1500  # the whole body is inside the frame and the mask
    assert fig["body_inside"] > 0.97 and fig["body_covered"] > 0.99
    # every body point lies 2 cm under the clothes (less where the inflation folds: armpits)
    assert 1.2 < fig["body_dist_mean_cm"] < 2.2 and fig["body_dist_p95_cm"] < 2.6
    assert abs(fig["depth_shift_px"]) < 0.5 and np.allclose(shifted[:, :2], body.vertices[:, :2])
    th = fig["thickness"]
    assert th["min_ratio"] > 1.0 and th["overall"] > 1.05 and len(th["ratio"]) == 10
    assert all(m > b for m, b in zip(th["mesh_px"], th["body_px"]) if b is not None)
    assert depth_verdict(fig, 0.5, 0.35) is None

    flat, _ = _figures(body, flattened(v), f, mask)
    assert flat["body_covered"] < 0.5 and flat["thickness"]["min_ratio"] < 0.3 and flat["thickness"]["overall"] < 0.3
    why = depth_verdict(flat, 0.5, 0.35)
    assert "body sticks out" in why and "thinner than the body" in why


def test_depth_offset_is_found_and_the_figures_do_not_move(scene):
    body, v, f, mask = scene
    ref, _ = _figures(body, v, f, mask)
    moved = v + np.array([0.0, 0.0, 37.0])  # another depth origin (as PIFuHD's meshes have)
    fig, shifted = _figures(body, moved, f, mask)
    assert fig["depth_shift_px"] == pytest.approx(37.0, abs=0.5)
    assert shifted[:, 2] - body.vertices[:, 2] == pytest.approx(np.full(len(shifted), fig["depth_shift_px"]))
    assert fig["body_covered"] == pytest.approx(ref["body_covered"], abs=0.01)
    assert fig["thickness"]["min_ratio"] == pytest.approx(ref["thickness"]["min_ratio"], abs=1e-6)


def test_crop_frame_of_a_left_handed_mesh_reads_the_same(scene):
    """The same mesh given in reversed winding is judged the same (orientation from its volume)."""
    body, v, f, mask = scene
    a, _ = _figures(body, v, f, mask)
    b, _ = _figures(body, v, f[:, ::-1], mask)
    assert a["body_inside"] == b["body_inside"] and a["body_covered"] == b["body_covered"]


def test_only_the_body_inside_the_frame_and_mask_is_judged(scene):
    body, v, f, mask = scene
    half = mask.copy()
    half[H // 2:] = False  # a person cut at the waist (the frame's lower half unseen)
    fig, _ = _figures(body, v, f, half)
    full, _ = _figures(body, v, f, mask)
    assert 0.3 * full["body_points"] < fig["body_points"] < 0.7 * full["body_points"]
    # a mesh of the upper half only: the body's hidden legs do not count against it
    keep = v[f].mean(1)[:, 1] < H // 2 + 5
    upper, _ = _figures(body, v, f[keep], half)
    assert upper["body_covered"] > 0.95
    nothing, _ = _figures(body, v, f[:0], mask)
    assert nothing["body_covered"] == 0.0 and nothing["body_dist_mean_cm"] is None


def test_tolerance_and_thin_band():
    """A mesh 1 cm inside the body: nothing enclosed, all within 3 cm (covered), none within
    0.5 cm; a mesh whose legs are squashed fails the thickness rule in the leg bands only."""
    from streamrecon.eval.metrics.depth import body_from_params
    from body_scenes import inflated

    p = body_params(1)
    body = body_from_params(p)
    shrunk = inflated(body.vertices, body.faces, -0.01 * SCALE)
    mask = silhouette(body.vertices, body.faces)
    fig, _ = _figures(body, shrunk, body.faces, mask, tolerance_cm=3.0)
    assert fig["body_inside"] < 0.1 and fig["body_covered"] > 0.95
    fig, _ = _figures(body, shrunk, body.faces, mask, tolerance_cm=0.5)
    assert fig["body_covered"] < 0.1
    v, f = clothed(p, 2.0)
    legs = v[:, 1] > p["ty"] + 15  # below the hips
    squashed = v.copy()
    squashed[legs] = flattened(v)[legs]
    fig, _ = _figures(body, squashed, f, mask)
    ratios = fig["thickness"]["ratio"]
    assert fig["thickness"]["min_band"] >= 6 and ratios[fig["thickness"]["min_band"]] < 0.35
    assert all(r > 0.9 for r in ratios[:4])  # head and chest untouched


def test_body_motion_is_removed_from_the_mesh_change():
    from streamrecon.eval.metrics.depth import body_from_params
    from streamrecon.eval.metrics.motion import body_motion, carry_with_body, mesh_change, vertex_transforms
    from streamrecon.body.params import _model

    a, b = body_params(1), body_params(1, t=1.0, seed_to=2, tx=95.0)
    ba, bb = body_from_params(a), body_from_params(b)
    Ta, Tb = vertex_transforms(ba), vertex_transforms(bb)
    rest = _model().rest(ba.fit.betas).vertices.astype(np.float64)
    posed = np.einsum("vab,vb->va", Ta[:, :3, :3], rest) + Ta[:, :3, 3]
    assert posed == pytest.approx(ba.vertices, abs=1e-3)  # the transforms reproduce the body
    carried = carry_with_body(ba.vertices, ba.vertices, body_motion(Ta, Tb))
    assert carried == pytest.approx(bb.vertices, abs=1e-3)  # and carry it into the next pose
    va, vb = clothed(a)[0], clothed(b)[0]
    ch = mesh_change(va, vb, ba, bb, Ta, Tb)
    # raw: the person moved (15 px and a new pose); with the body's motion removed a few mm are left
    # (the clothes were pushed out along the new pose's normals, which skinning does not reproduce)
    assert ch["mesh_change_raw_cm"] > 10.0 and ch["mesh_change_cm"] < 0.07 * ch["mesh_change_raw_cm"]
    assert ch["mesh_change_cm"] == pytest.approx(ch["mesh_change_px"] / SCALE * 100)
    bumped = vb.copy()
    bumped[:, 2] += 0.05 * SCALE  # the clothes jump 5 cm in depth: that is the mesh's own change
    assert mesh_change(va, bumped, ba, bb, Ta, Tb)["mesh_change_cm"] > 3 * ch["mesh_change_cm"]


def test_joint_acceleration():
    from streamrecon.eval.metrics.depth import body_from_params
    from streamrecon.eval.metrics.motion import joint_acceleration_mm, joints_m

    # a person gliding at constant speed: no acceleration; a 6 px jump in the middle: 2 x 6 px
    xs = [body_from_params(body_params(1, tx=80.0 + 3 * k)) for k in range(3)]
    j = [joints_m(b.fit) for b in xs]
    assert j[0].shape == (19, 3)
    assert joint_acceleration_mm(*j) == pytest.approx(0.0, abs=1e-3)
    jumped = joints_m(body_from_params(body_params(1, tx=80.0 + 3 + 6)).fit)
    assert joint_acceleration_mm(j[0], jumped, j[2]) == pytest.approx(2 * 6 / SCALE * 1000, rel=1e-3)
