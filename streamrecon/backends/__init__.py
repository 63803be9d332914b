"""Compiled execution backends behind one small interface.

``compile_module(module, example_inputs, cfg, artefact_id)`` returns a ``Runner``: a callable taking
and returning torch tensors (on ``cfg.device``), whatever runs underneath (eager PyTorch,
``torch.compile``, ONNX Runtime, TensorRT via torch-tensorrt). Optional backends are imported lazily;
``auto`` picks the best one available and logs which; an explicit backend that cannot load raises
``BackendUnavailableError`` naming how to install it. Compiled artefacts are cached on disk by
``streamrecon.backends.cache`` under a key of everything they depend on.
"""
from __future__ import annotations

from .config import BACKENDS, PRECISIONS, BackendConfig
from .registry import Runner, available_backends, compile_module, resolve_backend

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BackendConfig",
    "Runner",
    "available_backends",
    "compile_module",
    "resolve_backend",
]
