"""Native mesh kernels (native/mesh_ops.cpp) against their Python twins: OBJ text byte for byte,
connected-component labels equal."""
import numpy as np
import pytest

from streamrecon.mesh.cleanup import connected_components
from streamrecon.mesh_types import Mesh
from streamrecon.meshio import obj_bytes, obj_bytes_py, read_obj
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
