"""Mesh geometry of the 3D figures against slow, obviously-correct twins and known answers:
winding numbers (libigl or the numpy Barnes-Hut sum vs the sum of every triangle's solid angle),
point-to-surface distances (k-d tree candidates vs every triangle), closest points, Chamfer."""
import numpy as np
import pytest

from streamrecon.eval.metrics import geometry as g
from streamrecon.testing.shapes import uv_sphere


def _sphere(n_lat=24, n_lon=48):
    v, f = uv_sphere(1.0, n_lat=n_lat, n_lon=n_lon)
    v = v.astype(np.float64)
    return v, g.outward_faces(v, f)


def test_outward_faces_make_the_inside_positive_whatever_the_winding():
    v, f = _sphere()
    pts = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [2.0, 0.0, 0.0]])
    w = g.winding_number_reference(v, f, pts)
    assert w[:2] == pytest.approx([1.0, 1.0], abs=1e-9) and abs(w[2]) < 1e-9
    assert np.array_equal(g.outward_faces(v, f[:, ::-1]), f)
    mirrored = v * np.array([1.0, -1.0, 1.0])  # a left-handed frame (the crop frame's y flip)
    fm = g.outward_faces(mirrored, f)
    assert g.winding_number_reference(mirrored, fm, pts[:1])[0] == pytest.approx(1.0)


@pytest.mark.parametrize("open_mesh", [False, True])
def test_fast_winding_numbers_match_the_exact_sum(open_mesh):
    v, f = _sphere()
    if open_mesh:  # a hole at the top: the winding number fades near it instead of flipping
        f = f[v[f].mean(1)[:, 2] < 0.7]
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(400, 3)) * 0.7
    exact = g.winding_number_reference(v, f, pts)
    clustered = g.winding_number_clustered(v, f, pts, leaf=16)
    assert np.abs(clustered - exact).max() < 0.05
    fast = g.winding_number(v, f, pts)  # libigl when installed, else the clustered sum
    assert np.abs(fast - exact).max() < 0.05
    sure = np.abs(exact - 0.5) > 0.1
    assert np.array_equal(fast[sure] >= 0.5, exact[sure] >= 0.5)
    if not open_mesh:  # closed: inside exactly the (polygonal) sphere
        r = np.linalg.norm(pts, axis=1)
        clear = np.abs(r - 1) > 0.01
        assert np.array_equal(exact[clear] >= 0.5, r[clear] < 1)


def test_closest_points_on_a_triangle_in_every_region():
    a, b, c = np.array([0.0, 0, 0]), np.array([2.0, 0, 0]), np.array([0.0, 2, 0])
    cases = {(0.5, 0.5, 3.0): (0.5, 0.5, 0), (-1.0, -1.0, 0.5): (0, 0, 0), (3.0, -0.5, 0): (2, 0, 0),
             (-0.5, 3.0, 0): (0, 2, 0), (1.0, -2.0, 1.0): (1, 0, 0), (-3.0, 1.0, 0): (0, 1, 0),
             (2.0, 2.0, -1.0): (1, 1, 0)}
    p = np.array(list(cases), dtype=np.float64)
    n = len(p)
    got = g.closest_points_on_triangles(p, np.tile(a, (n, 1)), np.tile(b, (n, 1)), np.tile(c, (n, 1)))
    assert got == pytest.approx(np.array(list(cases.values()), dtype=np.float64))
    # brute force over a fine sampling of the triangle agrees on random points
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 3)) * 2
    got = g.closest_points_on_triangles(q, np.tile(a, (50, 1)), np.tile(b, (50, 1)), np.tile(c, (50, 1)))
    u, w = np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401))
    keep = u + w <= 1
    tri = a + np.outer(u[keep], b - a) + np.outer(w[keep], c - a)
    brute = np.sqrt(((q[:, None] - tri[None]) ** 2).sum(-1)).min(1)
    assert np.linalg.norm(q - got, axis=1) == pytest.approx(brute, abs=4e-3)
    # a degenerate triangle (all corners on a line) answers a point of the segment
    deg = g.closest_points_on_triangles(np.array([[1.0, 1.0, 0.0]]), np.array([[0.0, 0, 0]]), np.array([[1.0, 0, 0]]),
                                        np.array([[2.0, 0, 0]]))
    assert deg == pytest.approx(np.array([[1.0, 0.0, 0.0]]))


def test_surface_distance_matches_every_triangle_and_the_sphere():
    v, f = _sphere()
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(300, 3))
    ref = g.surface_distance_reference(pts, v, f)
    assert g.surface_distance_kdtree(pts, v, f) == pytest.approx(ref, abs=1e-12)
    assert g.surface_distance(pts, v, f) == pytest.approx(ref, abs=1e-9)  # libigl when installed
    r = np.linalg.norm(pts, axis=1)
    assert ref == pytest.approx(np.abs(r - 1.0), abs=0.01)  # the polygon lies within 1% of the sphere
    # uneven triangles (a stretched mesh): the candidate ball still finds the exact nearest face
    s = v * np.array([4.0, 1.0, 0.2])
    assert g.surface_distance_kdtree(pts, s, f, k=2) == pytest.approx(g.surface_distance_reference(pts, s, f), abs=1e-12)
    assert np.isinf(g.surface_distance(pts[:2], v, f[:0])).all()


def test_chamfer_of_shifted_sets_and_surface_samples():
    rng = np.random.default_rng(2)
    a = rng.random((500, 3))
    assert g.chamfer(a, a)["mean"] == 0.0
    small = a * 0.01
    far = g.chamfer(small, small + np.array([10.0, 0, 0]))
    assert far["mean"] == pytest.approx(10.0, abs=0.02) and far["a_to_b"] == pytest.approx(far["b_to_a"], abs=0.02)
    assert g.chamfer(a, a[:100], max_points=50)["a_to_b"] > 0  # a fixed draw of at most 50 points each
    v, f = _sphere()
    fi, bary = g.sample_faces(g.face_areas(v, f), 3000, seed=0)
    p = g.surface_points(v, f, fi, bary)
    assert np.linalg.norm(p, axis=1) == pytest.approx(np.ones(3000), abs=0.01)
    fi2, bary2 = g.sample_faces(g.face_areas(v, f), 3000, seed=0)
    assert np.array_equal(fi, fi2) and np.array_equal(bary, bary2)  # fixed samples
    # uniform by area: the two hemispheres get half each
    assert abs((p[:, 2] > 0).mean() - 0.5) < 0.03


def test_without_libigl_numpy_and_scipy_answer_the_same(monkeypatch):
    v, f = _sphere()
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(200, 3)) * 0.8
    with_igl = (g.winding_number(v, f, pts), g.surface_distance(pts, v, f))
    monkeypatch.setattr(g, "_igl", lambda: None)
    w, d = g.winding_number(v, f, pts), g.surface_distance(pts, v, f)
    assert np.abs(w - with_igl[0]).max() < 0.05 and d == pytest.approx(with_igl[1], abs=1e-9)
