"""CLI flags mirroring ``BackendConfig`` (``--backend/--precision/--engines-dir``) and the one call
commands make after loading a model. No heavy imports at module level."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Optional

from .config import BACKENDS, PRECISIONS, BackendConfig

log = logging.getLogger(__name__)


def add_backend_flags(p: argparse.ArgumentParser, with_device: bool = False) -> None:
    """Add the ``BackendConfig`` flags (and ``--device`` when the command has none yet)."""
    g = p.add_argument_group("backend")
    g.add_argument("--backend", choices=BACKENDS, default=BackendConfig.backend,
                   help="execution backend: auto (best available per sub-network, logged), eager, compile "
                   "(torch.compile), onnxruntime, tensorrt (NVIDIA GPUs: pip install 'streamrecon[tensorrt]'); "
                   "default %(default)s")
    g.add_argument("--precision", choices=PRECISIONS, default=BackendConfig.precision,
                   help="arithmetic precision: fp32 everywhere; fp16/bf16 on CUDA devices; bf16 on CPUs with native "
                   "bfloat16 (AVX512-BF16 or AMX): faster image networks, the same held-out quality (default %(default)s)")
    g.add_argument("--engines-dir", default=None, metavar="DIR",
                   help="compiled-engine cache (default ./engines if writable, else ~/.cache/streamrecon/engines, or $STREAMRECON_ENGINES)")
    if with_device:
        g.add_argument("--device", default=BackendConfig.device, help="torch device: cpu, cuda, cuda:1 (default %(default)s)")


def backend_config(args: argparse.Namespace, device: Optional[str] = None) -> BackendConfig:
    """``BackendConfig`` from parsed flags; a bad combination is a one-line ``UserInputError``."""
    from ..errors import UserInputError

    try:
        return BackendConfig(backend=args.backend, precision=args.precision,
                             device=str(device if device is not None else getattr(args, "device", "cpu")),
                             cache_dir=getattr(args, "engines_dir", None))
    except ValueError as exc:
        raise UserInputError(f"--{str(exc).split(':', 1)[0]} {str(exc).split(':', 1)[1].strip()}") from None


def apply_backend(model: Any, cfg: BackendConfig, checkpoint: Optional[str] = None) -> str:
    """Compile ``model`` for ``cfg`` when it supports it; returns what runs it (logged).

    Models without ``compile`` run eagerly: fine for ``auto``/``eager``
    at fp32; an explicit other backend or precision is a ``UserInputError``. ``checkpoint``: the
    file the model came from; its sha256 identifies the weights in the engine cache."""
    from ..errors import UserInputError

    name = getattr(model, "name", type(model).__name__)
    if not hasattr(model, "compile"):
        if cfg.backend not in ("auto", "eager") or cfg.precision != "fp32":
            raise UserInputError(f"--backend {cfg.backend} --precision {cfg.precision}: model {name!r} has no "
                                 "compiled path; use --backend eager --precision fp32")
        log.info("backend: %s runs eagerly (no compiled path)", name)
        return "eager"
    if cfg.backend == "eager" and cfg.precision == "fp32" and not hasattr(model, "_runners"):
        return "eager"
    if checkpoint is not None and getattr(model, "weights_id", "unset") is None:
        from .cache import file_sha256

        model.weights_id = "sha256:" + file_sha256(os.fspath(checkpoint))
    model.compile(cfg)
    backend = getattr(model, "backend", cfg.backend)
    log.info("backend: %s runs on %s", name, backend)
    return backend
