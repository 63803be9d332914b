"""Body depth maps (``streamrecon.body.maps``): the native kernel (its vector path and its one-pixel
loop) against its numpy twin bit for bit (all three evaluate the same float64 expressions in the
same order, each product and sum rounded on its own, so equality is exact, not approximate), a
convex sphere against the analytic bounds of its
depth, crack-free coverage of shared edges, clipping, degenerate and empty input, bad input, and
the crop-frame conventions against ray casting as the training renders do it."""
from __future__ import annotations

import numpy as np
import pytest

from streamrecon.body.maps import (body_depth_maps, body_depth_maps_reference, crop_to_raster,
                                   raster_depth_maps_reference)
from streamrecon.testing.shapes import uv_sphere


@pytest.fixture(scope="module")
def nat():
    from streamrecon.native import load_native

    try:
        return load_native()
    except ImportError as exc:
        pytest.skip(f"native extension not built: {exc}")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def raster_pair(nat, v, f, h, w):
    """The kernel's vector path (AVX2 where the CPU has it), its one-pixel loop and the twin on the
    same raster input, asserted bitwise equal; returns the kernel's maps."""
    v, f = np.asarray(v, np.float32), np.asarray(f, np.int32).reshape(-1, 3)
    front, back = nat.depth_range_maps(v, f, h, w)
    sf, sb = nat.depth_range_maps(v, f, h, w, simd=False)
    rf, rb = raster_depth_maps_reference(v, f, h, w)
    assert same_bits(front, rf) and same_bits(back, rb)
    assert same_bits(sf, rf) and same_bits(sb, rb)
    return front, back


def random_raster_mesh(rng, nv, nf, h, w, lattice=None):
    """Vertices spread over 1.6x the picture (partly outside); with ``lattice`` their x, y are
    multiples of it, so many pixel centres fall exactly on edges and vertices."""
    xy = rng.uniform(-0.3, 1.3, (nv, 2)) * [w, h]
    if lattice:
        xy = np.round(xy / lattice) * lattice
    v = np.concatenate([xy, rng.uniform(-2, 5, (nv, 1))], 1).astype(np.float32)
    return v, rng.integers(0, nv, (nf, 3)).astype(np.int32)


@pytest.mark.parametrize("seed,h,w,lattice", [(0, 32, 32, None), (1, 37, 53, None), (2, 48, 40, 0.5),
                                              (3, 20, 64, 0.25), (4, 1, 9, None), (5, 9, 3, None)])
def test_kernel_equals_twin_bitwise_on_random_meshes(nat, seed, h, w, lattice):
    rng = np.random.default_rng(seed)
    # large random triangles (they overlap a lot: min and max both matter) and small ones (several
    # batches of the kernel's set-up, the last one partial)
    for nv, nf, shrink in [(30, 40, 1.0), (400, 300, 0.05)]:
        v, f = random_raster_mesh(rng, nv, nf, h, w, lattice)
        if shrink < 1:  # small triangles around random centres
            c = v[f[:, 0]]
            v = np.concatenate([c + rng.normal(0, shrink * max(h, w), (nf, 3)).astype(np.float32) * [1, 1, 0.1]
                                for _ in range(3)]).astype(np.float32)
            f = np.arange(3 * nf, dtype=np.int32).reshape(3, nf).T.copy()
        front, back = raster_pair(nat, v, f, h, w)
        covered = np.isfinite(front)
        assert covered.any() and np.array_equal(covered, np.isfinite(back))
        assert np.all(front[covered] <= back[covered])


def test_crop_maps_equal_the_reference_on_a_sphere_and_random_meshes():
    v, f = uv_sphere(radius=0.7, centre=(0.1, -0.15, 0.2), n_lat=20, n_lon=40)
    for mesh in [(v, f), (v.astype(np.float32), f.astype(np.int32))]:
        a, b = body_depth_maps(*mesh, 72), body_depth_maps_reference(*mesh, 72)
        assert same_bits(a[0], b[0]) and same_bits(a[1], b[1]) and np.array_equal(a[2], b[2])
    rng = np.random.default_rng(5)
    vr = rng.uniform(-1.4, 1.4, (60, 3))
    fr = rng.integers(0, 60, (80, 3))
    a, b = body_depth_maps(vr, fr, 33), body_depth_maps_reference(vr, fr, 33)
    assert same_bits(a[0], b[0]) and same_bits(a[1], b[1]) and np.array_equal(a[2], b[2]) and a[2].any()


def test_closed_sphere_matches_the_analytic_depth_and_has_no_cracks():
    """A UV sphere is a convex polyhedron between the balls of radius r_in (its nearest face
    plane) and r (its vertices), so along a pixel's ray at distance d < r_in from the centre its
    front lies in [cz - sqrt(r^2 - d^2), cz - sqrt(r_in^2 - d^2)] and its back mirrors that: the
    analytic depth within the faceting bound, plus 1e-5 for float32 rounding. Every such pixel is
    covered (a crack would show as a hole), none beyond r is."""
    c = np.array([0.12, -0.2, 0.3])
    v, f = uv_sphere(radius=0.75, centre=c, n_lat=48, n_lon=96)
    v = v.astype(np.float32)
    size = 160
    front, back, mask = body_depth_maps(v, f, size)
    vd = v.astype(np.float64) - c
    r = np.linalg.norm(vd, axis=1).max()
    n = np.cross(vd[f[:, 1]] - vd[f[:, 0]], vd[f[:, 2]] - vd[f[:, 0]])
    r_in = np.min(np.abs(np.einsum("ij,ij->i", n, vd[f[:, 0]])) / np.linalg.norm(n, axis=1))
    assert 0.74 < r_in < r < 0.7501
    t = np.linspace(-1.0, 1.0, size)  # pixel (i, j) at crop (x, y) = (t[j], -t[i])
    d = np.hypot(t[None, :] - c[0], -t[:, None] - c[1])
    inner = d < r_in - 1e-4
    assert mask[inner].all()
    assert not mask[d > r + 1e-4].any()
    far, near = np.sqrt(r ** 2 - d[inner] ** 2), np.sqrt(r_in ** 2 - d[inner] ** 2)
    tol = 1e-5
    assert np.all(front[inner] >= c[2] - far - tol) and np.all(front[inner] <= c[2] - near + tol)
    assert np.all(back[inner] <= c[2] + far + tol) and np.all(back[inner] >= c[2] + near - tol)
    # the faceting bound is small where the sphere is not steep
    mid = d[inner] < 0.8 * r
    assert np.max((far - near)[mid]) < 3e-3
    assert np.all(front[mask] < back[mask])


def jittered_grid(rng, n, cell, jitter, lattice=None):
    """An n x n grid of squares of side ``cell`` from (0.5, 0.5), each split into two triangles
    along a random diagonal with a random winding; interior vertices moved by up to ``jitter``
    (on a ``lattice`` when given), the border kept straight."""
    g = np.stack(np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="xy"), -1).reshape(-1, 2) * cell + 0.5
    border = (g.min(1) == 0.5) | (g.max(1) == 0.5 + n * cell)
    move = rng.uniform(-jitter, jitter, g.shape)
    if lattice:
        move = np.round(move / lattice) * lattice
    g = np.where(border[:, None], g, g + move)
    v = np.concatenate([g, rng.uniform(0, 1, (len(g), 1))], 1).astype(np.float32)
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j + 1, (i + 1) * (n + 1) + j
            tris = [(a, b, c), (a, c, d)] if rng.random() < 0.5 else [(a, b, d), (b, c, d)]
            faces += [t if rng.random() < 0.5 else t[::-1] for t in tris]
    return v, np.array(faces, np.int32)


@pytest.mark.parametrize("seed,lattice", [(0, None), (1, 0.5), (2, 0.25), (3, None)])
def test_no_cracks_along_shared_edges(nat, seed, lattice):
    """Pixel centres on (or within rounding of) an edge shared by two triangles are covered: every
    centre of a tiled square is, whatever the jitter, diagonals and windings. On the lattices many
    centres lie exactly on edges and vertices."""
    rng = np.random.default_rng(seed)
    n, cell = 12, 3.0
    v, f = jittered_grid(rng, n, cell, jitter=1.2, lattice=lattice)
    front, _ = raster_pair(nat, v, f, 40, 40)
    mask = np.isfinite(front)
    # the tiled square spans [0.5, 36.5]: centres 0.5 .. 36.5 on both axes, its border included
    assert mask[:37, :37].all() and not mask[37:, :].any() and not mask[:, 37:].any()


def test_centre_exactly_on_a_shared_edge_and_vertex_is_covered(nat):
    # two triangles sharing the diagonal through the centres (k + 0.5, k + 0.5), opposite windings
    v = np.array([[0.5, 0.5, 1.0], [6.5, 0.5, 1.0], [6.5, 6.5, 1.0], [0.5, 6.5, 1.0]], np.float32)
    for f in ([[0, 1, 2], [0, 2, 3]], [[0, 1, 2], [0, 3, 2]]):
        front, _ = raster_pair(nat, v, f, 8, 8)
        assert np.isfinite(front[:7, :7]).all() and not np.isfinite(front[7]).any()
    # one triangle alone still covers its side of the diagonal and the diagonal itself
    front, _ = raster_pair(nat, v, [[0, 1, 2]], 8, 8)
    want = np.zeros((8, 8), bool)
    for i in range(7):
        want[i, i:7] = True
    assert np.array_equal(np.isfinite(front), want)
    # a fan of 7 triangles around a vertex that sits on a pixel centre, slanted spokes
    ang = np.sort(np.random.default_rng(0).uniform(0, 2 * np.pi, 7))
    rim = np.stack([4.5 + 3.7 * np.cos(ang), 4.5 + 3.7 * np.sin(ang), np.zeros(7)], 1)
    v = np.concatenate([[[4.5, 4.5, -1.0]], rim]).astype(np.float32)
    f = [[0, 1 + k, 1 + (k + 1) % 7] for k in range(7)]
    front, back = raster_pair(nat, v, f, 9, 9)
    assert front[4, 4] == back[4, 4] == -1.0


def test_centre_on_an_edge_whose_differences_round_is_covered(nat):
    """An edge from a corner with tiny coordinates (~2^-60, fine bits) through a pixel centre C to
    2C or 3C: the corner differences need more than double's 53 bits, so the edge function at C,
    exactly 0, comes out as a tiny value whose sign depends on the corner it is evaluated from.
    Evaluated from each triangle's own first corner, both triangles would miss C in about a fifth
    of these cases; from the canonical corner they never do."""
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(300):
        c = rng.integers(0, 16, 2) + 0.5
        p = c * (float(rng.integers(2 ** 17, 2 ** 18) | 1) * 2.0 ** -float(rng.integers(50, 70)))
        q = c * float(rng.integers(2, 4))
        if not (np.all(p.astype(np.float32) == p) and np.all(q.astype(np.float32) == q)):
            continue
        n = np.array([q[1] - p[1], p[0] - q[0]]) / np.hypot(*(q - p))
        for side in (1, -1):  # the two triangles (P, Q, R) and (Q, P, S) on either side of PQ
            r, s = (p + q) / 2 + 3 * side * n, (p + q) / 2 - 3 * side * n
            v = np.array([[*p, 0], [*q, 0], [*r, 0], [*s, 0]], np.float32)
            front, _ = raster_pair(nat, v, [[0, 1, 2], [1, 0, 3]], 48, 48)
            assert np.isfinite(front[int(c[1]), int(c[0])]), v.tolist()
            checked += 1
    assert checked > 400


def test_partly_outside_and_shifted_picture_agree(nat):
    """Clipping: the maps of a mesh that runs far off the picture equal the window of a larger
    picture holding the mesh shifted by whole pixels (dyadic coordinates: shifts are exact)."""
    rng = np.random.default_rng(7)
    v, f = random_raster_mesh(rng, 50, 60, 24, 30)
    v[:, :2] = np.round(v[:, :2] * 64) / 64
    v[:5, :2] = [[-1e5, 3.0], [4.0, 1.2e5], [-3e4, -3e4], [1e5, 10.0], [10.0, -8e4]]  # far outside
    front, back = raster_pair(nat, v, f, 24, 30)
    huge = v.copy()
    huge[:5, :2] *= 1e25  # no overflow into the maps, same in both
    raster_pair(nat, huge, f, 24, 30)
    shifted = v + np.array([7, 5, 0], np.float32)
    big_f, big_b = raster_pair(nat, shifted, f, 24 + 5 + 6, 30 + 7 + 3)
    assert same_bits(front, big_f[5:29, 7:37]) and same_bits(back, big_b[5:29, 7:37])
    assert np.isfinite(front).any()


def test_degenerate_and_non_finite_triangles_cover_nothing(nat):
    good = [[0.2, 0.3, 1.0], [9.7, 1.1, 2.0], [4.1, 8.8, 3.0]]
    bad = [[0.5, 0.5, 0.0], [2.5, 2.5, 0.0], [4.5, 4.5, 0.0],  # collinear through pixel centres
           [3.5, 1.5, 0.0], [3.5, 1.5, 0.0], [7.5, 6.5, 0.0],  # repeated corner
           [1.5, 1.5, np.nan], [8.0, 2.0, 0.0], [2.0, 8.0, 0.0],  # nan
           [1.5, 1.5, 0.0], [np.inf, 2.0, 0.0], [2.0, 8.0, 0.0]]  # inf
    v = np.array(good + bad, np.float32)
    f_bad = np.arange(3, 15).reshape(4, 3)
    front, back = raster_pair(nat, v, f_bad, 10, 10)
    assert np.isinf(front).all() and (front > 0).all() and np.isinf(back).all() and (back < 0).all()
    alone = raster_pair(nat, v, [[0, 1, 2]], 10, 10)
    mixed = raster_pair(nat, v, np.concatenate([f_bad[:2], [[0, 1, 2]], f_bad[2:]]), 10, 10)
    assert same_bits(alone[0], mixed[0]) and same_bits(alone[1], mixed[1]) and np.isfinite(alone[0]).any()


def test_empty_inputs(nat):
    v = np.zeros((0, 3), np.float32)
    f = np.zeros((0, 3), np.int32)
    front, back = raster_pair(nat, v, f, 5, 7)
    assert front.shape == (5, 7) and np.all(front == np.inf) and np.all(back == -np.inf)
    raster_pair(nat, np.ones((4, 3), np.float32), f, 5, 7)
    for h, w in [(0, 7), (5, 0), (0, 0)]:
        front, back = raster_pair(nat, np.array([[0, 0, 0], [9, 0, 0], [0, 9, 0]], np.float32), [[0, 1, 2]], h, w)
        assert front.shape == back.shape == (h, w)
    front, back, mask = body_depth_maps(np.zeros((0, 3)), np.zeros((0, 3), int), 16)
    assert front.shape == (16, 16) and not mask.any() and np.all(back == -np.inf)
    assert not body_depth_maps([], [], 4)[2].any()


def test_strided_inputs_need_no_copy(nat):
    rng = np.random.default_rng(3)
    v, f = random_raster_mesh(rng, 40, 50, 20, 20)
    wide = np.zeros((40, 5), np.float32)
    wide[:, 1:4] = v
    ft = np.asfortranarray(f)
    a = nat.depth_range_maps(wide[:, 1:4], ft, 20, 20)
    b = nat.depth_range_maps(v, f, 20, 20)
    assert same_bits(a[0], b[0]) and same_bits(a[1], b[1])


def test_bad_inputs_raise_value_errors_naming_the_argument(nat):
    v = np.zeros((4, 3), np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    cases = [((v.astype(np.float64), f, 4, 4), "vertices"), ((v[:, :2], f, 4, 4), "vertices"),
             ((v.tolist(), f, 4, 4), "vertices"), ((v, f.astype(np.int64), 4, 4), "faces"),
             ((v, f[:, :2], 4, 4), "faces"), ((v, np.array([[0, 1, 4]], np.int32), 4, 4), "faces"),
             ((v, np.array([[0, -1, 2]], np.int32), 4, 4), "faces"), ((v, f, -1, 4), "height"),
             ((v, f, 4, 70000), "width")]
    for args, name in cases:
        for fn in (nat.depth_range_maps, raster_depth_maps_reference):
            with pytest.raises(ValueError, match=name):
                fn(*args)
    crop_cases = [((v, f, 1), "size"), ((v, f, 2.5), "size"), ((v, f, True), "size"), ((v[:, :2], f, 8), "vertices_crop"),
                  ((v.astype(complex), f, 8), "vertices_crop"), ((v, f.astype(float), 8), "faces"),
                  ((v, np.array([[0, 1, 4]]), 8), "faces"), ((v, np.array([[0, 1, 2 ** 32]]), 8), "faces"),
                  ((v, np.array([[0, 1, 4]], np.int32), 8), "faces")]
    for args, name in crop_cases:
        for fn in (body_depth_maps, body_depth_maps_reference):
            with pytest.raises(ValueError, match=name):
                fn(*args)


def test_crop_frame_pixel_grid_and_depth_direction():
    """Map pixel (i, j) sits at crop (x, y) = (-1 + 2 j / (R - 1), 1 - 2 i / (R - 1)): a small
    triangle around that point covers exactly that pixel; y up means row 0 is the crop's top; the
    front map holds the smaller crop z (nearer the camera, which looks along +z)."""
    size = 9
    for i, j in [(0, 0), (0, 8), (8, 0), (2, 5), (4, 4)]:
        x, y = -1 + 2 * j / (size - 1), 1 - 2 * i / (size - 1)
        e = 0.05  # well under the pixel pitch of 0.25
        tri = np.array([[x - e, y - e, 0.3], [x + e, y - e, 0.3], [x, y + e, 0.3]])
        behind = tri + [0, 0, 0.4]
        front, back, mask = body_depth_maps(np.concatenate([behind, tri]), [[0, 1, 2], [3, 5, 4]], size)
        want = np.zeros((size, size), bool)
        want[i, j] = True
        assert np.array_equal(mask, want)
        assert front[i, j] == np.float32(0.3) and back[i, j] == np.float32(0.3 + 0.4)
    r = crop_to_raster(np.array([[-1.0, 1.0, 0.5], [1.0, -1.0, -2.0]]), 256)
    np.testing.assert_array_equal(r, np.array([[0.5, 0.5, 0.5], [255.5, 255.5, -2.0]], np.float32))


def test_maps_match_ray_casting_as_the_training_renders_do():
    """Front and back against embree ray casting of the same mesh in the crop frame along +z from
    z = -3 (front) and along -z from z = +3 (back), one ray through each map pixel's crop point
    (the training renders' method). An off-centre, tilted ellipsoid catches flipped axes."""
    trimesh = pytest.importorskip("trimesh", reason="the train extra (trimesh) is not installed")
    v, f = uv_sphere(radius=0.5, centre=(0.25, -0.3, 0.1), n_lat=32, n_lon=64, scale=(1.3, 0.6, 0.8))
    c = np.array([0.25, -0.3, 0.1])
    a = 0.5
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ \
        np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    v = (v - c) @ rot.T + c
    size = 64
    front, back, mask = body_depth_maps(v, f, size)
    t = np.linspace(-1.0, 1.0, size)
    xy = np.stack(np.meshgrid(t, -t), -1).reshape(-1, 2)
    mesh = trimesh.Trimesh(v, f, process=False)
    hits = []
    for z0, dz in ((-3.0, 1.0), (3.0, -1.0)):
        origins = np.concatenate([xy, np.full((len(xy), 1), z0)], 1)
        dirs = np.tile([0.0, 0.0, dz], (len(xy), 1))
        loc, ray, _ = mesh.ray.intersects_location(origins, dirs, multiple_hits=False)
        z = np.full(len(xy), np.nan)
        z[ray] = loc[:, 2]
        hits.append(z.reshape(size, size))
    ray_mask = np.isfinite(hits[0])
    both = mask & ray_mask
    assert np.sum(mask != ray_mask) <= 0.01 * mask.sum() and both.sum() > 0.1 * size * size
    np.testing.assert_allclose(front[both], hits[0][both], atol=1e-4)
    np.testing.assert_allclose(back[both], hits[1][both], atol=1e-4)
    assert np.all(front[both] < back[both])
