"""What the CPU runs natively (probed through torch's oneDNN build; torch imported lazily)."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu_runs_bf16() -> bool:
    """True when oneDNN has bfloat16 kernels for this CPU (AVX512-BF16 or AMX: Intel Cooper Lake /
    Sapphire Rapids and later, AMD Zen 4 and later). Elsewhere bf16 would be emulated, slower than fp32."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
