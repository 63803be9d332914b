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
    """Arithmetic precision: fp32 everywhere; fp16/bf16 on GPUs; bf16 on CPUs with native bfloat16
    (AVX512-BF16 or AMX; ``hardware.cpu_runs_bf16``), where it runs the image networks eagerly in
    channels-last bfloat16 (ONNX Runtime has no bf16 CPU kernels) and the embedded model's point
    decoder stays fp32."""
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
            if self.precision == "fp16":
                raise ValueError(f"precision: fp16 needs a CUDA device (got device={self.device!r}); "
                                 "use fp32 (or bf16 on a CPU with native bfloat16) on CPU")
            from .hardware import cpu_runs_bf16

            if not cpu_runs_bf16():
                raise ValueError("precision: bf16 on CPU needs native bfloat16 (AVX512-BF16 or AMX), which this "
                                 "CPU lacks (it would run slower than fp32); use fp32")
            if self.backend == "onnxruntime":
                raise ValueError("precision: bf16 on CPU runs with --backend auto, eager or compile "
                                 "(ONNX Runtime has no bf16 CPU kernels), not onnxruntime")
