"""Native mesh kernels (native/mesh_ops.cpp) against their Python twins: OBJ text byte for byte,
connected-component labels equal."""
import numpy as np
import pytest

from streamrecon.mesh.cleanup import connected_components
from streamrecon.types import Mesh
from streamrecon.mesh.io import obj_bytes, obj_bytes_py, read_obj
from streamrecon.native import load_native


def _mesh(nv=500, nf=900, seed=0, normals=True, colors=False):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal((nv, 3)) * rng.choice([1e-4, 0.5, 300.0], (nv, 3))).astype(np.float32)
    v[:3] = [[0.0, -0.0, 1e-7], [-5e-7, 5e-7, 123456.789], [0.0000005, -0.0000015, 2.5e-6]]  # rounding edges
    f = rng.integers(0, nv, (nf, 3))
    n = rng.standard_normal((nv, 3)).astype(np.float32) if normals else None
    c = rng.integers(0, 256, (nv, 3)).astype(np.uint8) if colors else None
    return Mesh(v, f, normals=n, colors=c)


@pytest.mark.parametrize("normals,colors", [(False, False), (True, False), (False, True), (True, True)])
def test_native_obj_text_equals_the_python_twin(normals, colors):
    pytest.importorskip("streamrecon._native", reason="native extension not built")
    for seed in range(3):
        m = _mesh(seed=seed, normals=normals, colors=colors)
        assert obj_bytes(m) == obj_bytes_py(m)
    empty = Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    assert obj_bytes(empty) == obj_bytes_py(empty) == b""


def test_native_obj_text_rounds_as_printf_at_the_edges():
    """Exact decimal ties round to even (1/128 = 0.0078125 -> 0.007812, 3/128 -> 0.023438; for
    normals' 5 places 1/64 -> 0.01562), tiny negatives keep their sign (-0.000000), huge values,
    inf and nan print as Python's '%.6f' does."""
    pytest.importorskip("streamrecon._native", reason="native extension not built")
    edges = np.array([1 / 128, 3 / 128, -1 / 128, -5 / 128, 1 / 64, -3 / 64, 1e-9, -1e-9, -0.0, 0.5, 2.5,
                      999999.9999995, 123456789.0, 9.99e11, 1.0e12, -3.5e13, 3.0e38, np.inf, -np.inf, np.nan,
                      np.float32(0.1), np.float32(-2.675)], np.float32)
    v = np.resize(edges, (len(edges) + 2) // 3 * 3).reshape(-1, 3)
    m = Mesh(v, np.zeros((1, 3), np.int64), normals=v[::-1].copy(), colors=np.full(v.shape, 2, np.uint8))
    text = obj_bytes(m)
    assert text == obj_bytes_py(m)
    assert b"v 0.007812 0.023438 -0.007812" in text and b"-0.000000" in text and b"nan" in text
    assert obj_bytes(Mesh(v, np.zeros((1, 3), np.int64))) == obj_bytes_py(Mesh(v, np.zeros((1, 3), np.int64)))


def test_native_obj_round_trips(tmp_path):
    m = _mesh(seed=4)
    path = tmp_path / "m.obj"
    path.write_bytes(obj_bytes(m))
    back = read_obj(path)
    np.testing.assert_allclose(back.vertices, m.vertices, atol=6e-7, rtol=1e-6)
    np.testing.assert_array_equal(back.faces, m.faces)


def test_native_obj_rejects_bad_shapes():
    nat = pytest.importorskip("streamrecon._native", reason="native extension not built")
    v = np.zeros((4, 3), np.float32)
    f = np.zeros((2, 3), np.int64)
    with pytest.raises(ValueError, match="normals"):
        nat.obj_text(v, f, np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="vertices"):
        nat.obj_text(np.zeros((4, 2), np.float32), f)


def test_native_components_equal_the_numpy_twin():
    nat = load_native()
    rng = np.random.default_rng(1)
    for nv, nf in [(1, 0), (50, 10), (2000, 1500), (5000, 9000)]:
        f = rng.integers(0, nv, (nf, 3)) if nf else np.zeros((0, 3), np.int64)
        np.testing.assert_array_equal(nat.face_components(f, nv), connected_components(f, nv, native=False))
    # a long strip (worst case for label propagation) is one component labelled 0
    strip = np.array([[i, i + 1, i + 2] for i in range(3000)])[::-1]
    assert set(nat.face_components(strip, 3002)) == {0}
    with pytest.raises(ValueError, match="outside"):
        nat.face_components(np.array([[0, 1, 7]]), 5)
