"""Backends: every backend available here gives the eager result (parity), the engine cache
rebuilds stale or foreign engines, unavailable explicit backends fail with an install hint."""
import json

import pytest
import torch

from streamrecon.backends import BackendConfig, available_backends, compile_module, resolve_backend
from streamrecon.backends.cache import EngineCache
from streamrecon.errors import BackendUnavailableError

# fp32 parity tolerance: different kernels (oneDNN vs MLAS) reorder sums; outputs are O(1).
PARITY_ATOL = 1e-5


class ToyFilterAndMLP(torch.nn.Module):
    """An image filter + pixel-aligned MLP in miniature: conv, group norm, grid_sample, 1x1 convs."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 8)
        self.mlp1 = torch.nn.Conv1d(9, 16, 1)
        self.mlp2 = torch.nn.Conv1d(16, 1, 1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5

    def forward(self, image, points):
        feat = torch.relu(self.norm(self.conv(image)))
        uv = points[:, :, :2].unsqueeze(2)  # [B, N, 1, 2]
        sampled = torch.nn.functional.grid_sample(feat, uv, align_corners=True)[..., 0]  # [B, 8, N]
        z = points[:, :, 2:].transpose(1, 2)
        return torch.sigmoid(self.mlp2(torch.relu(self.mlp1(torch.cat([sampled, z], 1)))))


def _inputs(n):
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, 32, 32, generator=g), torch.rand(1, n, 3, generator=g) * 2 - 1


CPU_BACKENDS = [b for b, why in available_backends("cpu").items() if b != "tensorrt"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_cpu_backend_parity_with_eager(backend, tmp_path):
    reason = available_backends("cpu")[backend]
    if reason:
        pytest.skip(f"{backend} unavailable: {reason}")
    module = ToyFilterAndMLP()
    image, points = _inputs(500)
    want = module(image, points)
    runner = compile_module(module, (image, points), BackendConfig(backend=backend, cache_dir=str(tmp_path)),
                            "toy", dynamic={1: [1]})
    assert runner.backend == backend
    got = runner(image, points)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=PARITY_ATOL), (got - want).abs().max()
    # a different number of query points goes through the same engine (dynamic axis)
    image2, points2 = _inputs(123)
    assert torch.allclose(runner(image2, points2), module(image2, points2), atol=PARITY_ATOL)


@pytest.mark.gpu
# GPU fp32 convolutions use TF32 by default (10-bit mantissa): ~2e-4 off the CPU result here.
@pytest.mark.parametrize("backend,precision,atol", [("eager", "fp32", 3e-3), ("eager", "fp16", 2e-2),
                                                    ("compile", "fp32", 3e-3), ("tensorrt", "fp16", 2e-2)])
def test_gpu_backend_parity_with_eager(backend, precision, atol, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    reason = available_backends("cuda")[backend]
    if reason:
        pytest.skip(f"{backend} unavailable: {reason}")
    module = ToyFilterAndMLP()
    image, points = _inputs(500)
    want = module(image, points)
    cfg = BackendConfig(backend=backend, precision=precision, device="cuda", cache_dir=str(tmp_path))
    got = compile_module(module, (image, points), cfg, "toy", dynamic={1: [1]})(image.cuda(), points.cuda())
    assert torch.allclose(got.cpu(), want, atol=atol)


def test_explicit_unavailable_backend_names_the_install():
    with pytest.raises(BackendUnavailableError, match="streamrecon\\[tensorrt\\]"):
        resolve_backend(BackendConfig(backend="tensorrt", device="cpu"))


def test_half_precision_refused_on_cpu():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        BackendConfig(precision="fp16")


def test_bf16_on_cpu_needs_native_bfloat16_and_runs_eagerly(monkeypatch):
    """bf16 on a CPU: accepted only where oneDNN has bfloat16 kernels (elsewhere it would be
    emulated, slower than fp32), resolved by auto to eager (ONNX Runtime has no bf16 CPU
    kernels), refused with ONNX Runtime named explicitly."""
    from streamrecon.backends import hardware

    monkeypatch.setattr(hardware, "cpu_runs_bf16", lambda: False)
    with pytest.raises(ValueError, match="native bfloat16.*use fp32"):
        BackendConfig(precision="bf16")
    monkeypatch.setattr(hardware, "cpu_runs_bf16", lambda: True)
    assert resolve_backend(BackendConfig(precision="bf16")) == "eager"
    assert resolve_backend(BackendConfig(precision="fp32")) in ("onnxruntime", "eager")
    with pytest.raises(ValueError, match="ONNX Runtime has no bf16 CPU kernels"):
        BackendConfig(backend="onnxruntime", precision="bf16")


def test_eager_bf16_on_cpu_runs_channels_last_and_returns_float32():
    """The CPU bf16 eager runner converts the module and 4-D inputs to channels-last bfloat16 and
    hands back float32 close to the fp32 module's output (bf16 keeps 8 significant bits)."""
    from streamrecon.backends.hardware import cpu_runs_bf16
    from streamrecon.backends.runners import eager_runner

    if not cpu_runs_bf16():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 or AMX): bf16 is refused here")
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        ref = conv(x)
    fn = eager_runner(conv, torch.device("cpu"), torch.bfloat16)
    assert next(conv.parameters()).dtype == torch.bfloat16
    assert next(conv.parameters()).is_contiguous(memory_format=torch.channels_last)
    out = fn(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert torch.allclose(out, ref, atol=0.05 * float(ref.abs().max()))
    assert not torch.equal(out, ref)  # it did run in bf16


def test_auto_picks_a_working_backend():
    name = resolve_backend(BackendConfig(backend="auto"))
    assert available_backends("cpu")[name] is None


def test_engine_cache_rebuilds_foreign_and_stale(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    module = ToyFilterAndMLP()
    image, points = _inputs(64)
    cfg = BackendConfig(backend="onnxruntime", cache_dir=str(tmp_path))
    runner = compile_module(module, (image, points), cfg, "toy-a", dynamic={1: [1]})
    cache = EngineCache(tmp_path)
    [entry] = cache.entries()
    assert entry["status"] == "ok"
    artefact = tmp_path / entry["file"]

    # a foreign file at the engine's place (not what the metadata recorded) is never used
    artefact.write_bytes(b"not an onnx model")
    assert cache.entries()[0]["status"] == "foreign"
    runner = compile_module(module, (image, points), cfg, "toy-a", dynamic={1: [1]})
    assert torch.allclose(runner(image, points), module(image, points), atol=PARITY_ATOL)
    assert cache.entries()[0]["status"] == "ok"

    # an engine built by another backend version is reported stale and cleaned
    meta_path = artefact.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["fields"]["backend_version"] = "0.0.1"
    meta_path.write_text(json.dumps(meta))
    assert cache.entries()[0]["status"] == "stale"
    removed = cache.clean(stale_only=True)
    assert artefact.name in removed and not artefact.exists()

    # different weights -> a different key: both engines coexist
    compile_module(module, (image, points), cfg, "toy-a", dynamic={1: [1]})
    compile_module(ToyFilterAndMLP(), (image, points), cfg, "toy-b", dynamic={1: [1]})
    assert len(cache.entries()) == 2


def test_large_onnx_engines_keep_weights_in_a_verified_sidecar(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from streamrecon.backends import runners

    monkeypatch.setattr(runners, "ONNX_EXTERNAL_DATA_BYTES", 0)  # every model counts as large
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 4, 1)).eval()
    image = _inputs(1)[0]
    cfg = BackendConfig(backend="onnxruntime", cache_dir=str(tmp_path))
    released = []
    runner = compile_module(module, (image,), cfg, "toy-a",
                            before_load=lambda: released.append(True))
    assert released == [True]  # the caller's hook ran once, before the engine was loaded
    assert torch.allclose(runner(image), module(image), atol=PARITY_ATOL)
    cache = EngineCache(tmp_path)
    [entry] = cache.entries()
    [sidecar] = entry["sidecars"]
    assert sidecar == entry["file"] + ".data" and (tmp_path / sidecar).stat().st_size > 1000
    assert not any(p.name.startswith(".build-") for p in tmp_path.iterdir())

    # the weights file is part of the engine: tampered weights make it foreign, and it is rebuilt
    data = bytearray((tmp_path / sidecar).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / sidecar).write_bytes(bytes(data))
    assert cache.entries()[0]["status"] == "foreign"
    runner = compile_module(module, (image,), cfg, "toy-a")
    assert torch.allclose(runner(image), module(image), atol=PARITY_ATOL)
    assert cache.entries()[0]["status"] == "ok"
    # clean --stale keeps a good engine's sidecar; clean removes it with the engine
    assert cache.clean(stale_only=True) == []
    assert sorted(cache.clean()) == sorted([entry["file"], sidecar, entry["file"].rsplit(".", 1)[0] + ".json"])


# ---- CLI flags (--backend/--precision/--engines-dir) -------------------------------------------
def test_backend_flags_mirror_config_and_reject_bad_combinations():
    import argparse

    from streamrecon.backends.flags import add_backend_flags, apply_backend, backend_config
    from streamrecon.errors import UserInputError

    p = argparse.ArgumentParser()
    add_backend_flags(p, with_device=True)
    args = p.parse_args([])
    assert backend_config(args) == BackendConfig()  # defaults live in one place
    args = p.parse_args(["--backend", "onnxruntime", "--engines-dir", "/x"])
    assert backend_config(args) == BackendConfig(backend="onnxruntime", cache_dir="/x")
    with pytest.raises(UserInputError, match="fp16.*CUDA"):
        backend_config(p.parse_args(["--precision", "fp16"]))

    class NoCompile:
        name = "plain"

    assert apply_backend(NoCompile(), BackendConfig()) == "eager"  # auto falls back
    with pytest.raises(UserInputError, match="no compiled path"):
        apply_backend(NoCompile(), BackendConfig(backend="onnxruntime"))


def test_apply_backend_hashes_the_checkpoint_file_for_the_cache_key(tmp_path):
    from streamrecon.backends.cache import file_sha256
    from streamrecon.backends.flags import apply_backend

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    seen = {}

    class Compilable:
        name = "m"
        weights_id = None
        backend = "eager"

        def compile(self, cfg):
            seen["cfg"], seen["id"] = cfg, self.weights_id
            self.backend = "onnxruntime"
            return self

    cfg = BackendConfig(backend="onnxruntime", cache_dir=str(tmp_path))
    assert apply_backend(Compilable(), cfg, str(ckpt)) == "onnxruntime"
    assert seen == {"cfg": cfg, "id": "sha256:" + file_sha256(ckpt)}


def test_engine_cache_user_errors_and_clean_touches_only_engines(tmp_path):
    import os

    from streamrecon.errors import UserInputError

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(UserInputError, match="--engines-dir"):
        EngineCache(not_a_dir).store({"a": 1}, "onnx", lambda p: p.write_bytes(b"m"))
    cache = EngineCache(tmp_path / "eng")
    fields = {"artefact": "x", "backend": "eager", "backend_version": torch.__version__, "torch": torch.__version__}
    path = cache.store(fields, "onnx", lambda p: p.write_bytes(b"model"))
    assert cache.entries()[0]["status"] == "ok"
    # metadata from the previous format is reported stale (and cleaned by --stale)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "metadata_version": 1}))
    assert cache.entries()[0]["status"] == "stale"
    # a user's file, a running build and an abandoned one
    (cache.root / "notes.txt").write_text("mine")
    running = cache.root / f".build-{'0' * 24}-{os.getpid()}"
    abandoned = cache.root / f".build-{'1' * 24}-999999999"
    running.mkdir()
    abandoned.mkdir()
    removed = cache.clean()
    assert sorted(removed) == sorted([path.name, meta_path.name, abandoned.name])
    assert (cache.root / "notes.txt").exists() and running.exists()
