"""Mesh cleanup (small and hidden components, smoothing), vertex normals and colour sampling."""
from collections import deque

import numpy as np
import pytest
import torch

from streamrecon.testing.fields import CapsuleUnionField, SphereField
from streamrecon.mesh import CleanupConfig, cleanup_mesh, connected_components, extract_mesh, taubin_smooth, vertex_normals
from streamrecon.mesh.cleanup import remove_hidden_components, visible_fractions
from streamrecon.mesh.colour import sample_vertex_colours
from streamrecon.mesh.normals import mesh_area_volume
from streamrecon.types import Mesh
from streamrecon.occupancy import DenseOccupancy, evaluate_dense


def _components_bfs(faces, nv):
    """Slow twin: breadth-first search over the vertex adjacency."""
    adj = [[] for _ in range(nv)]
    for a, b, c in faces:
        adj[a] += [b, c]
        adj[b] += [a, c]
        adj[c] += [a, b]
    lab = -np.ones(nv, dtype=np.int64)
    for s in range(nv):
        if lab[s] >= 0:
            continue
        lab[s] = s
        q = deque([s])
        while q:
            u = q.popleft()
            for w in adj[u]:
                if lab[w] < 0:
                    lab[w] = s
                    q.append(w)
    return lab


@pytest.mark.parametrize("seed", range(4))
def test_components_match_bfs(seed):
    rng = np.random.default_rng(seed)
    nv = 300
    faces = rng.integers(0, nv, size=(120, 3))
    # a long chain too: pointer jumping must still converge
    chain = np.stack([np.arange(200, 297), np.arange(201, 298), np.arange(202, 299)], 1)
    faces = np.concatenate([faces, chain])
    np.testing.assert_array_equal(connected_components(faces, nv), _components_bfs(faces, nv))


def _two_blobs():
    # a big ball and a small floater, as one field
    field = CapsuleUnionField([[0, 0, 0], [0.7, 0.7, 0]], [[0, 0, 0], [0.7, 0.7, 0]], [0.5, 0.06], width=0.01)
    return extract_mesh(evaluate_dense(field, 64))


def test_small_components_dropped_main_body_kept():
    mesh = _two_blobs()
    assert len(np.unique(connected_components(mesh.faces, mesh.num_vertices))) == 2
    clean = cleanup_mesh(mesh)
    assert len(np.unique(connected_components(clean.faces, clean.num_vertices))) == 1
    assert clean.meta["components_dropped"] == 1
    # the kept part is the big ball, untouched, and no vertex is left unreferenced
    assert np.linalg.norm(clean.vertices, axis=1).max() < 0.55
    assert len(np.unique(clean.faces)) == clean.num_vertices
    keep_all = cleanup_mesh(mesh, CleanupConfig(min_component_fraction=0.0))
    assert keep_all.num_faces == mesh.num_faces


N = 64  # grid points per axis over the crop box; spacing 2 / N = 0.031


def _boxes(*boxes):
    """Occupancy grid [N, N, N] (1 inside any of the axis-aligned ``boxes`` ((lo), (hi)), crop
    frame, else 0) on the ``occupancy.grid`` convention, optionally with cavities: a box given as
    ("cavity", lo, hi) is carved out of what came before."""
    t = (2.0 * np.arange(N) - N) / N
    x, y, z = np.meshgrid(t, t, t, indexing="ij")
    occ = np.zeros((N, N, N), np.float32)
    for b in boxes:
        carve = b[0] == "cavity"
        lo, hi = (b[1], b[2]) if carve else b
        inside = (x > lo[0]) & (x < hi[0]) & (y > lo[1]) & (y < hi[1]) & (z > lo[2]) & (z < hi[2])
        occ[inside] = 0.0 if carve else 1.0
    return DenseOccupancy(torch.from_numpy(occ))


# A standing "body", the embedded model's depth slab (a sheet 1-2 voxels thick behind it, wider
# than the body where a limb is missing: front-most there, on ~24% of its pixels), a detached
# "hand" in front of and beside the body, and a cavity inside the body (a hidden inner shell).
BODY = ((-0.3, -0.6, -0.15), (0.3, 0.6, 0.15))
SHEET = ((-0.4, -0.6, 0.5), (0.4, 0.6, 0.55))
HAND = ((0.32, 0.0, -0.35), (0.5, 0.18, -0.2))
CAVITY = ("cavity", (-0.1, -0.1, -0.06), (0.1, 0.1, 0.06))


def _sorted_vertices(mesh):
    v = mesh.vertices.astype(np.float64)
    return v[np.lexsort(v.T[::-1])]


def _slow_visible_fractions(mesh, labels, res):
    """Slow twin of ``visible_fractions``: exact z-buffer rasterisation (streamrecon.eval.render) of the
    whole mesh and of each component alone, at res x res pixels over the crop square."""
    from streamrecon.eval.render.rasterizer import rasterize

    v = mesh.vertices.astype(np.float64)
    raster = np.stack([(v[:, 0] + 1) * res / 2, (1 - v[:, 1]) * res / 2, v[:, 2]], 1)
    whole = rasterize(raster, mesh.faces, res, res).face_index
    owner = np.where(whole >= 0, labels[np.maximum(whole, 0)], -1)
    out = []
    for c in range(labels.max() + 1):
        covered = rasterize(raster, mesh.faces[labels == c], res, res).mask
        out.append((owner[covered] == c).mean())
    return np.array(out)


def _face_components(mesh):
    lab = connected_components(mesh.faces, mesh.num_vertices)
    return np.unique(lab[mesh.faces[:, 0]], return_inverse=True)[1].reshape(-1)


def test_hidden_sheet_and_cavity_dropped_visible_detached_part_kept():
    mesh = extract_mesh(_boxes(BODY, CAVITY, SHEET, HAND))
    labels = _face_components(mesh)
    assert labels.max() + 1 == 4
    frac = visible_fractions(mesh.vertices, mesh.faces, labels)
    centre = np.array([mesh.vertices[mesh.faces[labels == c]].reshape(-1, 3).mean(0) for c in range(4)])
    body, hand, sheet = np.argmax(np.bincount(labels)), np.argmin(centre[:, 2]), np.argmax(centre[:, 2])
    (cavity,) = set(range(4)) - {body, hand, sheet}
    assert frac[body] > 0.95 and frac[hand] > 0.95
    assert 0.15 < frac[sheet] < 0.35  # seen beside the body only
    assert frac[cavity] == 0.0
    clean = cleanup_mesh(mesh)
    assert clean.meta["components_hidden"] == 2 and clean.meta["components_kept"] == 2
    # exactly the body and the hand, untouched: the mesh of a grid that holds only them
    want = extract_mesh(_boxes(BODY, HAND))
    assert (clean.num_vertices, clean.num_faces) == (want.num_vertices, want.num_faces)
    np.testing.assert_array_equal(_sorted_vertices(clean), _sorted_vertices(want))
    keep_all = cleanup_mesh(mesh, CleanupConfig(min_visible_fraction=0.0))
    assert keep_all.num_faces == mesh.num_faces
    # image frame (y down, pixels): the same components go
    from streamrecon.mesh import mesh_to_frame

    img = remove_hidden_components(mesh_to_frame(mesh, "image", (10.0, 20.0, 300.0, 300.0)), 0.5)
    assert (img.num_vertices, img.meta["components_hidden"]) == (want.num_vertices, 2)


def test_visible_fractions_match_rasterised_twin():
    # plus an "arm" behind the body that sticks out to one side: front-most on about half its pixels
    mesh = extract_mesh(_boxes(BODY, SHEET, HAND, ((-0.5, -0.2, 0.25), (-0.1, 0.0, 0.4))))
    labels = _face_components(mesh)
    fast = visible_fractions(mesh.vertices, mesh.faces, labels)
    slow = _slow_visible_fractions(mesh, labels, N)
    assert len(fast) == 4 and np.abs(fast - slow).max() < 0.05, (fast, slow)
    assert sorted(np.round(slow, 1)) == [0.2, 0.5, 1.0, 1.0], slow


def test_visibility_cleanup_is_a_no_op_on_one_solid():
    for field in (SphereField(radius=0.5), CapsuleUnionField([[0, -0.5, 0]], [[0, 0.5, 0.2]], [0.15], width=0.01)):
        mesh = extract_mesh(evaluate_dense(field, 48))
        clean = remove_hidden_components(mesh, 1.0)
        np.testing.assert_array_equal(clean.vertices, mesh.vertices)
        np.testing.assert_array_equal(clean.faces, mesh.faces)
        assert clean.meta["components_hidden"] == 0
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    assert cleanup_mesh(empty).num_faces == 0
    with pytest.raises(ValueError, match="min_visible_fraction"):
        remove_hidden_components(mesh, 1.5)


def test_taubin_smoothing_reduces_noise_keeps_volume():
    f = SphereField(radius=0.5)
    mesh = extract_mesh(evaluate_dense(f, 48))
    rng = np.random.default_rng(0)
    noisy = mesh.vertices + rng.normal(0, 0.01, mesh.vertices.shape).astype(np.float32)
    smooth = taubin_smooth(noisy, mesh.faces, iterations=10)
    err = lambda v: np.abs(np.linalg.norm(v, axis=1) - 0.5).mean()  # noqa: E731
    assert err(smooth) < 0.5 * err(noisy)
    assert abs(mesh_area_volume(smooth, mesh.faces)[1] / f.volume - 1) < 0.02
    out = cleanup_mesh(Mesh(noisy, mesh.faces), CleanupConfig(smooth_iterations=10))
    np.testing.assert_allclose(out.vertices, smooth, atol=1e-6)


def test_vertex_normals_of_a_tetrahedron_point_out():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    n = vertex_normals(v, f)
    centre = v.mean(0)
    assert (np.einsum("ij,ij->i", n, v - centre) > 0).all()
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(n[0], -np.ones(3) / np.sqrt(3), atol=1e-6)


def test_colour_sampling_reads_the_right_pixels():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = (255, 0, 0)  # left half red
    img[:, 100:] = (0, 0, 255)  # right half blue
    img[:50, :, 1] = 200  # top half has green
    rect = (50.0, 0.0, 100.0, 100.0)  # crop x 50..150
    # crop (-0.5, 0.5) -> image (75, 25): left/top; (0.5, -0.5) -> (125, 75): right/bottom
    v = np.array([[-0.5, 0.5, 0.3], [0.5, -0.5, -0.2]], dtype=np.float32)
    c = sample_vertex_colours(v, img, rect)
    np.testing.assert_array_equal(c, [[255, 200, 0], [0, 0, 255]])
    # bilinear between the two halves at the border pixel centres
    mid = sample_vertex_colours(np.array([[0.0, -0.5, 0]], np.float32), img, rect)
    assert 100 <= mid[0, 0] <= 155 and 100 <= mid[0, 2] <= 155
    with pytest.raises(ValueError, match="uint8"):
        sample_vertex_colours(v, img.astype(np.float32), rect)


def test_compact_keeping_every_face_still_drops_unused_vertices():
    from streamrecon.mesh.cleanup import _compact, remove_small_components

    mesh = _two_blobs()
    same = _compact(mesh, np.ones(mesh.num_faces, bool))  # nothing to drop: the same arrays
    assert same.vertices is mesh.vertices and same.faces is mesh.faces
    extra = Mesh(np.concatenate([mesh.vertices, np.float32([[9, 9, 9]])]), mesh.faces)
    out = remove_small_components(extra, 0.0)  # every component kept, the stray vertex goes
    assert out.num_vertices == mesh.num_vertices and np.array_equal(out.faces, mesh.faces)
    assert out.meta["components_kept"] == 2 and out.meta["components_dropped"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_cleanup_hands_its_labels_on_and_equals_the_two_passes(seed):
    """``cleanup_mesh`` labels the components once (the small pass hands its labels to the hidden
    pass): the same mesh, arrays and counts as ``remove_small_components`` then
    ``remove_hidden_components``, each labelling on its own, on random scenes of boxes (hidden,
    detached, tiny ones) where one or several components survive the small pass."""
    from streamrecon.mesh.cleanup import _remove_small, remove_small_components

    rng = np.random.default_rng(seed)
    boxes = [BODY]
    for _ in range(int(rng.integers(2, 7))):
        lo = rng.uniform(-0.8, 0.5, 3)
        boxes.append((tuple(lo), tuple(lo + rng.uniform(0.04, 0.4, 3))))
    mesh = extract_mesh(_boxes(*boxes))
    cfg = CleanupConfig(min_component_fraction=float(rng.choice([0.0, 0.02, 0.2])))
    small = remove_small_components(mesh, cfg.min_component_fraction) if cfg.min_component_fraction > 0 else mesh
    want = remove_hidden_components(small, cfg.min_visible_fraction)
    got = cleanup_mesh(mesh, cfg)
    np.testing.assert_array_equal(got.vertices, want.vertices)
    np.testing.assert_array_equal(got.faces, want.faces)
    for key in ("components_kept", "components_hidden", "components_dropped"):
        assert got.meta.get(key) == want.meta.get(key), key
    if cfg.min_component_fraction > 0:  # the handed-on labels are the ones labelling would give
        out, labels = _remove_small(mesh, cfg.min_component_fraction)
        np.testing.assert_array_equal(labels, _face_components(out))


def test_visibility_ties_go_to_the_lower_face_index():
    """Two copies of one sheet at the same depth: every pixel's nearest centroid is a tie, which
    goes to the lower face index, so the first copy owns everything and the second nothing."""
    sheet = extract_mesh(_boxes(SHEET))
    nv = sheet.num_vertices
    both = Mesh(np.concatenate([sheet.vertices, sheet.vertices]), np.concatenate([sheet.faces, sheet.faces + nv]))
    labels = np.r_[np.zeros(sheet.num_faces, np.int64), np.ones(sheet.num_faces, np.int64)]
    np.testing.assert_array_equal(visible_fractions(both.vertices, both.faces, labels), [1.0, 0.0])
    flipped = np.r_[np.ones(sheet.num_faces, np.int64), np.zeros(sheet.num_faces, np.int64)]
    np.testing.assert_array_equal(visible_fractions(both.vertices, both.faces, flipped), [0.0, 1.0])
