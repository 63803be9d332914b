"""Sparse marching cubes (native) vs PyMCubes on the same grid; mesh accuracy on a sphere;
frames and the one-warning fallback."""
import logging
from collections import Counter

import numpy as np
import pytest
import torch

from streamrecon.testing.fields import SphereField, TorusField
from streamrecon.mesh import extract_mesh, marching_cubes_dense, marching_cubes_sparse, mesh_to_frame, vertex_normals
from streamrecon.mesh.normals import mesh_area_volume
from streamrecon.occupancy import DenseOccupancy, evaluate_dense, evaluate_octree
from streamrecon.occupancy.grid import surface_cells_dense

native = pytest.importorskip("streamrecon._native", reason="native extension not built (pip install -e .)")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _canonical(v: np.ndarray, f: np.ndarray):
    """Vertices sorted lexicographically, and faces as a multiset of vertex-coordinate triples
    (rounded to 1e-9), each rotated to start at its smallest vertex (rotation keeps the winding).
    Coordinates, not indices: a value exactly at the level puts several vertices on one point."""
    order = np.lexsort(v.T[::-1])
    key = np.round(v, 9)
    tri = [tuple(map(tuple, key[t])) for t in f]
    tri = [t[t.index(min(t)):] + t[: t.index(min(t))] for t in tri]
    return v[order], Counter(tri)


def _assert_same_mesh(a, b, tol=1e-6):
    va, fa = _canonical(*a)
    vb, fb = _canonical(*b)
    assert va.shape == vb.shape, f"vertex counts differ: {len(va)} vs {len(vb)}"
    assert np.abs(va - vb).max(initial=0.0) <= tol
    assert len(a[1]) == len(b[1]) and fa == fb


def _sparse_on_dense(values: np.ndarray, level=0.5):
    t = torch.from_numpy(values)
    cells = surface_cells_dense(t, level)
    c = cells.numpy()
    off = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    idx = c[:, None, :] + off[None]
    vals = values[idx[..., 0], idx[..., 1], idx[..., 2]]
    return marching_cubes_sparse(c, vals, values.shape, level)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_equals_pymcubes_on_random_grids(seed):
    # random values hit all 256 cases, the ambiguous ones included; exact 0.5 values and equal
    # endpoints exercise the "<= level" rule and the midpoint branch
    rng = np.random.default_rng(seed)
    vals = rng.random((9, 11, 10)).astype(np.float32)
    vals[rng.random(vals.shape) < 0.05] = 0.5
    vals[0, 0, 0] = vals[1, 0, 0] = 0.25
    dense = marching_cubes_dense(vals)
    assert len(dense[1]) > 100
    _assert_same_mesh(_sparse_on_dense(vals), dense)


def test_sparse_equals_pymcubes_on_analytic_fields():
    for field in (SphereField(radius=0.6), TorusField()):
        g = evaluate_dense(field, 48).to_dense()
        _assert_same_mesh(_sparse_on_dense(g), marching_cubes_dense(g))


def test_all_cells_give_the_same_mesh_as_surface_cells():
    # cells without a crossing contribute nothing, so listing every cell changes nothing
    g = evaluate_dense(SphereField(radius=0.5), 20).to_dense()
    n = g.shape[0]
    c = np.stack(np.meshgrid(*[np.arange(n - 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    off = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    idx = c[:, None, :] + off[None]
    all_cells = marching_cubes_sparse(c, g[idx[..., 0], idx[..., 1], idx[..., 2]], g.shape)
    _assert_same_mesh(all_cells, _sparse_on_dense(g))


def test_sparse_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        marching_cubes_sparse(np.array([[3, 0, 0]]), np.zeros((1, 8)), (4, 4, 4))
    with pytest.raises(ValueError, match="values"):
        marching_cubes_sparse(np.zeros((2, 3)), np.zeros((1, 8)), (4, 4, 4))


def test_sphere_area_volume_normals_outward():
    f = SphereField(radius=0.6)
    mesh = extract_mesh(evaluate_octree(f, 128))
    area, vol = mesh_area_volume(mesh.vertices, mesh.faces)
    assert abs(area / f.area - 1) < 0.01 and abs(vol / f.volume - 1) < 0.01  # positive: CCW from outside
    n = vertex_normals(mesh.vertices, mesh.faces)
    radial = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", n, radial) > 0.95).all()


def test_image_frame_keeps_outward_winding_and_round_trips():
    f = SphereField(radius=0.4, center=(0.2, -0.1, 0.0))
    mesh = extract_mesh(evaluate_dense(f, 40))
    mesh.normals = vertex_normals(mesh.vertices, mesh.faces)
    rect = (-30.0, 12.0, 300.0, 300.0)
    img = mesh_to_frame(mesh, "image", rect)
    assert mesh_area_volume(img.vertices, img.faces)[1] > 0
    # normals stay consistent with the (reversed) winding in the new frame
    assert np.einsum("ij,ij->i", img.normals, vertex_normals(img.vertices, img.faces)).min() > 0.9
    # centre of the sphere in pixels: x = rx + (0.2 + 1)/2 * w, y = ry + (1 + 0.1)/2 * h
    c = img.vertices.mean(0)
    assert abs(c[0] - (-30 + 0.6 * 300)) < 1.0 and abs(c[1] - (12 + 0.55 * 300)) < 1.0
    back = mesh_to_frame(img, "crop")
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-5)
    np.testing.assert_array_equal(back.faces, mesh.faces)


def test_fallback_to_pymcubes_warns_once(monkeypatch, caplog):
    import streamrecon.native as nat

    monkeypatch.setattr(nat, "_module", None)
    monkeypatch.setattr(nat, "_error", ImportError("simulated missing build"))
    monkeypatch.setattr(nat, "_warned", False)
    grid = evaluate_dense(SphereField(), 24)
    with caplog.at_level(logging.WARNING):
        a = extract_mesh(grid)
        b = extract_mesh(grid)
    assert a.meta["mc_method"] == b.meta["mc_method"] == "pymcubes"
    warnings = [r for r in caplog.records if "native extension unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "simulated missing build" in warnings[0].getMessage()
    from streamrecon.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="native extension"):
        extract_mesh(grid, "sparse")


def test_extract_methods_agree_on_octree_grid():
    grid = evaluate_octree(TorusField(), 64)
    a, b = extract_mesh(grid, "sparse"), extract_mesh(grid, "pymcubes")
    _assert_same_mesh((a.vertices.astype(np.float64), a.faces), (b.vertices.astype(np.float64), b.faces))


def test_dense_occupancy_validates():
    with pytest.raises(ValueError, match="float32"):
        DenseOccupancy(torch.zeros((4, 4, 5)))


def test_native_vertex_normals_equal_the_numpy_twin():
    pytest.importorskip("streamrecon._native", reason="native extension not built")
    grid = evaluate_octree(TorusField(), 64)
    mesh = extract_mesh(grid)
    assert mesh.vertices.dtype == np.float32 and mesh.num_faces > 1000
    # plus an unused vertex and a degenerate face: both get (0, 0, 0) from both paths
    v = np.concatenate([mesh.vertices, np.float32([[5, 5, 5], [6, 6, 6]])])
    f = np.concatenate([mesh.faces, np.int64([[len(v) - 1] * 3])])
    a = vertex_normals(v, f, native=True)
    b = vertex_normals(v, f, native=False)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.array_equal(a, b)  # the same float64 arithmetic in the same order: bit-identical
    assert not a[-2:].any() and np.allclose(np.linalg.norm(a[:-2], axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        vertex_normals(v, np.int64([[0, 1, len(v)]]))
