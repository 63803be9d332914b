"""Backend selection and the runners. Each runner wraps one ``torch.nn.Module`` whose forward takes
and returns tensors; all runners take and return torch tensors on the configured device, so callers
never see which backend runs."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ..errors import BackendUnavailableError
from .cache import EngineCache, backend_version
from .config import BackendConfig

log = logging.getLogger(__name__)

ENGINE_FORMAT = 2
"""part of every engine's key: bump it when streamrecon changes what it exports for the same
weights (a module's forward, the export options), so old engines are rebuilt, never reused."""

INSTALL_HINT = {
    "onnxruntime": "pip install 'streamrecon[onnx]'",
    "tensorrt": "pip install 'streamrecon[tensorrt]' (needs an NVIDIA GPU with CUDA)",
    "compile": "torch.compile needs a C++ compiler (gcc) on PATH",
}


def _unavailable_reason(name: str, device: str) -> Optional[str]:
    """None when ``name`` can run on ``device``, else why not."""
    import shutil

    import torch

    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        return "no CUDA device is visible to torch"
    if name == "eager":
        return None
    if name == "compile":
        return None if shutil.which("g++") or shutil.which("c++") or cuda else "no C++ compiler on PATH"
    if name == "onnxruntime":
        try:
            importlib.import_module("onnxruntime")
            importlib.import_module("onnx")
        except ImportError as exc:
            return f"onnxruntime/onnx not installed ({exc.name})"
        return None
    if name == "tensorrt":
        if not cuda:
            return "TensorRT runs on NVIDIA GPUs only (use --device cuda)"
        try:
            importlib.import_module("torch_tensorrt")
        except ImportError as exc:
            return f"torch-tensorrt not installed ({exc})"
        return None
    return f"unknown backend {name!r}"


def available_backends(device: str = "cpu") -> dict[str, Optional[str]]:
    """Every concrete backend -> None if usable on ``device``, else the reason it is not."""
    return {name: _unavailable_reason(name, device) for name in ("eager", "compile", "onnxruntime", "tensorrt")}


def resolve_backend(cfg: BackendConfig) -> str:
    """The concrete backend for ``cfg``. ``auto``: tensorrt > eager on CUDA; onnxruntime > eager on
    CPU at fp32, eager at bf16 (torch.compile is opt-in: its first-call compile takes tens of seconds). Logs the choice."""
    if cfg.backend != "auto":
        reason = _unavailable_reason(cfg.backend, cfg.device)
        if reason:
            hint = INSTALL_HINT.get(cfg.backend, "")
            raise BackendUnavailableError(
                f"backend {cfg.backend!r} cannot run here: {reason}" + (f"; to install: {hint}" if hint else "")
            )
        return cfg.backend
    if cfg.device.startswith("cuda"):
        order = ("tensorrt", "eager")
    else:  # ONNX Runtime has no bf16 CPU kernels
        order = ("eager",) if cfg.precision == "bf16" else ("onnxruntime", "eager")
    skipped = []
    for name in order:
        reason = _unavailable_reason(name, cfg.device)
        if reason is None:
            if skipped:
                log.warning("backend auto: using %s (%s)", name, "; ".join(skipped))
            else:
                log.info("backend auto: using %s", name)
            return name
        skipped.append(f"{name} unavailable: {reason}")
    raise BackendUnavailableError("no backend can run on device " + cfg.device + ": " + "; ".join(skipped))


@dataclass
class Runner:
    """A compiled module. ``backend``: what runs it; call with tensors, get tensor(s) back."""

    backend: str
    fn: Any
    info: dict = field(default_factory=dict)

    def __call__(self, *inputs):
        return self.fn(*inputs)


def compile_module(
    module,
    example_inputs: Sequence,
    cfg: BackendConfig = BackendConfig(),
    artefact_id: str = "",
    dynamic: Optional[dict] = None,
    cache: Optional[EngineCache] = None,
    before_load: Optional[Callable[[], None]] = None,
) -> Runner:
    """Compile ``module`` (eval mode, no grad) for ``cfg``.

    ``example_inputs``: tensors with the shapes that will be used; ``dynamic``: {input index:
    [dims that vary]} (e.g. the number of query points); ``artefact_id``: identifies the weights
    (e.g. checkpoint sha256 + sub-network name) for the engine cache key; ``before_load``: called
    by engine backends (ONNX Runtime) between building/finding the engine and loading it, where
    the caller may free ``module``'s weights (they are not needed past that point).
    """
    import torch

    name = resolve_backend(cfg)
    module = module.eval()
    device = torch.device(cfg.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.precision]
    shapes = [list(t.shape) for t in example_inputs]
    fields = {
        "artefact": artefact_id,
        "backend": name,
        "backend_version": backend_version(name),
        "torch": torch.__version__,
        "device": device.type,
        "precision": cfg.precision,
        "input_shapes": shapes,
        "dynamic": {str(k): list(v) for k, v in (dynamic or {}).items()},
        "engine_format": ENGINE_FORMAT,
    }
    cache = cache or EngineCache(cfg.cache_dir)
    if name == "eager":
        from .runners import eager_runner

        fn = eager_runner(module, device, dtype)
    elif name == "compile":
        from .runners import compile_runner

        fn = compile_runner(module, device, dtype, dynamic=bool(dynamic))
    elif name == "onnxruntime":
        from .runners import onnx_runner

        fields["onnx_layout"] = "external-data-above-64MiB"
        fn = onnx_runner(module, example_inputs, device, dynamic or {}, cache, fields, before_load=before_load)
    elif name == "tensorrt":
        from .runners import tensorrt_runner

        fn = tensorrt_runner(module, example_inputs, device, dtype, dynamic or {}, cache, fields)
    else:  # pragma: no cover - resolve_backend guards this
        raise AssertionError(name)
    return Runner(backend=name, fn=fn, info=fields)
