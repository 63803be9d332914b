"""Mesh cleanup (components, smoothing), vertex normals and colour sampling."""
from collections import deque

import numpy as np
import pytest

from streamrecon.fields import CapsuleUnionField, SphereField
from streamrecon.mesh import CleanupConfig, cleanup_mesh, connected_components, extract_mesh, taubin_smooth, vertex_normals
from streamrecon.mesh.colour import sample_vertex_colours
from streamrecon.mesh.normals import mesh_area_volume
from streamrecon.mesh_types import Mesh
from streamrecon.occupancy import evaluate_dense


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
