"""Compiled PIFuHD (``PifuhdModel.compile``) against the eager model on the fixture checkpoint:
every CPU backend available here gives the eager features and occupancies within a stated
tolerance; engines are cached per sub-network and reused; the CPU ``auto`` choice is per
sub-network and reported."""
import os

import numpy as np
import pytest
import torch

from streamrecon.backends import BackendConfig, available_backends
from streamrecon.backends.cache import EngineCache
from paths import SHARED  # noqa: E402

SHARED = SHARED
FIX = SHARED / "fixtures" / "pifuhd_small"
pytestmark = pytest.mark.skipif(not FIX.is_dir(), reason=f"fixture folder {FIX} not present")

# fp32 everywhere; different kernels (oneDNN, MLAS, inductor) and layouts (channels-last) sum in
# other orders. Feature maps reach |x| ~ 5 after the fine hourglass's 20 group-normed convs: 5e-4
# absolute (1e-4 relative); occupancies, sigmoids of the MLPs on those features: 1e-4 (measured
# 4e-5 for channels-last eager), far below what moves a 0.5 iso-surface by a visible amount.
# ONNX Runtime's InstanceNormalization differs more on the fixture's small normal nets (measured
# 2.8e-3 max, 9e-5 mean on tanh outputs; 8e-7 on the full-size nets with random weights), which
# gives 2.8e-4 max (1.4e-5 mean) on the occupancies.
TOL = {"eager": (5e-4, 1e-4), "compile": (5e-4, 1e-4), "onnxruntime": (5e-3, 5e-4)}
"""backend -> (feature atol, occupancy atol)."""
CPU_BACKENDS = ["eager", "onnxruntime", "compile"]
RUN_COMPILE = os.environ.get("STREAMRECON_TEST_COMPILE") == "1"


def _load():
    from streamrecon.models.checkpoint import load_pifuhd_checkpoint, model_from_checkpoint

    return model_from_checkpoint(load_pifuhd_checkpoint(FIX / "pifuhd_small.pt"))


@pytest.fixture(scope="module")
def inputs():
    from streamrecon.images.decode import load_image
    from streamrecon.models.preprocess import preprocess, read_rect_file

    pre = preprocess(load_image(FIX / "input" / "person.png"), read_rect_file(FIX / "input" / "person_rect.txt")[0])
    g = torch.Generator().manual_seed(0)
    # fixture points plus points outside the image (mask) and beyond the depth range
    pts = torch.cat([torch.from_numpy(np.load(FIX / "query_points.npy")), torch.rand(3000, 3, generator=g) * 2.4 - 1.2])
    return pre.img_512, pre.img, pts


@pytest.fixture(scope="module")
def eager(inputs):
    model = _load()
    feats = model.encode_tensors(inputs[0], inputs[1])
    return feats, model.query(feats, inputs[2])


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_compiled_backend_matches_eager_on_fixture(backend, inputs, eager, onnx_dir, tmp_path):
    reason = available_backends("cpu")[backend]
    if backend == "onnxruntime" and reason:
        pytest.fail(f"ONNX Runtime must be installed for this test (pip install 'streamrecon[onnx]'): {reason}")
    if reason:
        pytest.skip(f"{backend} unavailable: {reason}")
    if backend == "compile" and not RUN_COMPILE:
        pytest.skip("torch.compile builds C++ kernels for 5 graphs (minutes on 2 cores); set "
                    "STREAMRECON_TEST_COMPILE=1 (the toy-model parity in test_backends.py always runs)")
    want_feats, want_occ = eager
    cache_dir = onnx_dir if backend == "onnxruntime" else tmp_path
    model = _load().compile(BackendConfig(backend=backend, cache_dir=str(cache_dir)))
    assert model.backend == backend
    feats = model.encode_tensors(inputs[0], inputs[1])
    feature_atol, occ_atol = TOL[backend]
    for name in ("normals", "coarse", "fine"):
        got, want = getattr(feats, name), getattr(want_feats, name)
        assert got.shape == want.shape, name
        assert (got - want).abs().max().item() <= feature_atol, name
    occ = model.query(feats, inputs[2])
    assert occ.shape == want_occ.shape and occ.dtype == torch.float32
    err = (occ - want_occ).abs().max().item()
    assert err <= occ_atol, err
    # points outside the image are masked to exactly 0 by every backend
    outside = (inputs[2][:, :2].abs() > 1).any(1)
    assert outside.any() and (occ[outside] == 0).all()
    # a batch of another size goes through the same engine (dynamic point axis)
    model.chunk = 777
    assert (model.query(feats, inputs[2]) - want_occ).abs().max().item() <= occ_atol


def test_onnx_engines_are_cached_per_subnetwork_and_reused(onnx_dir, caplog):
    if available_backends("cpu")["onnxruntime"]:
        pytest.skip("onnxruntime not installed")
    from streamrecon.models.pifuhd.compiled import SUBNETS

    tmp_path = onnx_dir  # built by the parity test above (or here when run alone)
    cfg = BackendConfig(backend="onnxruntime", cache_dir=str(tmp_path))
    model = _load().compile(cfg)
    entries = EngineCache(tmp_path).entries()
    names = sorted(e["fields"]["artefact"].rsplit(":", 1)[1] for e in entries)
    assert names == sorted(SUBNETS)
    assert all(e["status"] == "ok" and e["fields"]["artefact"].startswith(f"pifuhd:{model.weights_id}:") for e in entries)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with caplog.at_level("INFO", logger="streamrecon.backends.runners"):
        again = _load().compile(cfg)
    assert not [r for r in caplog.records if "building" in r.getMessage()]  # nothing rebuilt
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes
    assert again.weights_id == model.weights_id
    # ONNX Runtime holds the normal nets now: their PyTorch copies are freed, and an eager
    # compile of them is refused instead of running on empty weights
    assert model.released == {"normal_front", "normal_back"}
    assert model.net.netG.netF.model[1].weight.is_meta
    with pytest.raises(ValueError, match="reload the model"):
        model.compile(BackendConfig(backend="eager", cache_dir=str(tmp_path)))
    # other weights -> other engines
    other = _load()
    with torch.no_grad():
        other.net.mlp.filters[0].bias.add_(1.0)
    other.compile(cfg)
    assert len(EngineCache(tmp_path).entries()) == 2 * len(SUBNETS)
    assert {e["fields"]["artefact"].split(":")[2] for e in EngineCache(tmp_path).entries()} == {
        model.weights_id.split(":")[1], other.weights_id.split(":")[1]}


def test_auto_on_cpu_picks_per_subnetwork(onnx_dir):
    from streamrecon.models.pifuhd.compiled import CPU_AUTO, pick_backend

    cfg = BackendConfig(backend="auto", cache_dir=str(onnx_dir))
    avail = available_backends("cpu")
    for name, prefs in CPU_AUTO.items():
        want = next((b for b in prefs if avail[b] is None), "eager")
        assert pick_backend(name, cfg) == want
    model = _load().compile(cfg)
    if avail["onnxruntime"] is None:
        assert model.backend.startswith("mixed:") and "normal_front=onnxruntime" in model.backend
    else:
        assert model.backend == "eager"


def test_weights_hash_changes_with_any_weight():
    from streamrecon.models.pifuhd.compiled import weights_sha256

    model = _load()
    a = weights_sha256(model.net)
    assert a == weights_sha256(_load().net)
    with torch.no_grad():
        model.net.netG.netB.model[1].weight[0, 0, 0, 0] += 1e-3
    assert weights_sha256(model.net) != a
