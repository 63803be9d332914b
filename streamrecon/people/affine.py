"""2x3 affine maps between model-tensor pixels and frame pixels (the ROI warps of the person
models)."""
from __future__ import annotations

import numpy as np


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a [2, 3] affine map (x' = A x + t): [A^-1, -A^-1 t]."""
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, (-a_inv @ m[:, 2])[:, None]], 1)
