"""Backend configuration (frozen dataclass mirrored by the CLI's ``--backend/--precision/--device``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

BACKENDS = ("auto", "eager", "compile", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class BackendConfig:
    backend: str = "auto"
    """Execution backend: auto (best available, logged), eager, compile (torch.compile),
    onnxruntime, tensorrt (NVIDIA GPUs, `pip install 'streamrecon[tensorrt]'`)."""
    precision: str = "fp32"
    """Arithmetic precision: fp32 everywhere; fp16/bf16 on GPUs only."""
    device: str = "cpu"
    """torch device string: cpu, cuda, cuda:1, ..."""
    cache_dir: Optional[str] = None
    """Where compiled engines are cached; default: ./engines if it exists and is writable,
    else ~/.cache/streamrecon/engines (or $STREAMRECON_ENGINES)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if self.precision != "fp32" and not self.device.startswith("cuda"):
            raise ValueError(
                f"precision: {self.precision} needs a CUDA device (got device={self.device!r}); use fp32 on CPU"
            )
