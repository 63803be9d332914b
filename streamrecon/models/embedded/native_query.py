"""The embedded point decoder on the native kernel (``streamrecon._native.decode_points``).

``PointDecoder`` in eval mode is a short chain of small products over [B, C, N] tensors: at the
octree's batch sizes torch spends most of a query moving those intermediates through memory
(3-4 us per point on one core of the 2-core Xeon). The kernel runs the same function per block of
32 points in cache (native/point_decoder.cpp). This module packs a decoder's weights for it once
(``NativeDecoder.from_decoder``) and a person's features once per frame (``pack_features``).

The kernel reads the z term from the decoder's own table (``Z_TABLE`` samples of
``z_term_exact`` over [-1, 1], linear interpolation, clamped outside), as the torch eval path
does, so the two agree to float rounding (tests/models/embedded/test_point_decoder.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np


@dataclass(frozen=True)
class PackedFeatures:
    """One person's features as the kernel reads them: ``feat`` [H * W, C] channels-last,
    ``mask`` [MH, MW], both float32 C-contiguous."""

    feat: np.ndarray
    height: int
    width: int
    mask: np.ndarray


def pack_features(feat, mask) -> PackedFeatures:
    """torch ``feat`` [1, C, H, W] and ``mask`` [1, 1, MH, MW] -> ``PackedFeatures``."""
    if feat.ndim != 4 or feat.shape[0] != 1 or mask.ndim != 4 or mask.shape[:2] != (1, 1):
        raise ValueError(f"pack_features: expected feat [1, C, H, W] and mask [1, 1, MH, MW], got "
                         f"{list(feat.shape)} and {list(mask.shape)}")
    _, c, h, w = feat.shape
    rows = feat[0].detach().float().permute(1, 2, 0).reshape(h * w, c).contiguous().cpu().numpy()
    m = np.ascontiguousarray(mask[0, 0].detach().float().cpu().numpy())
    return PackedFeatures(rows, int(h), int(w), m)


@dataclass(frozen=True)
class NativeDecoder:
    """A ``PointDecoder``'s eval-mode weights packed for the kernel (a snapshot: repack after
    changing the weights)."""

    z_table: np.ndarray  # [T, F]
    mask_w: np.ndarray  # [F]
    depth_w: Optional[np.ndarray]  # [F, 2] with a depth prior
    prior_k: float
    weights_t: List[np.ndarray]  # per layer [in, out]
    biases: List[np.ndarray]  # per layer [out]
    native: object  # the loaded streamrecon._native module

    @classmethod
    def from_decoder(cls, decoder, native) -> "NativeDecoder":
        import torch

        def arr(t) -> np.ndarray:
            return np.ascontiguousarray(t.detach().float().cpu().numpy())

        with torch.no_grad():
            zs = torch.linspace(-1, 1, decoder.Z_TABLE, device=decoder.mask_w.device)[None]
            table = arr(decoder.z_term_exact(zs)[0].T)  # [T, F]
            depth_w = arr(decoder.depth_w) if decoder.depth_prior else None
            prior_k = float(decoder.log_prior_scale.exp()) if decoder.depth_prior else 0.0
            weights_t = [arr(lin.weight.T) for lin in decoder.layers]
            biases = [arr(lin.bias) for lin in decoder.layers]
        return cls(table, arr(decoder.mask_w), depth_w, prior_k, weights_t, biases, native)

    def logits(self, packed: PackedFeatures, points: np.ndarray) -> np.ndarray:
        """Occupancy logits [N] at crop-frame ``points`` [N, 3] (float32)."""
        pts = np.ascontiguousarray(points, dtype=np.float32)
        return self.native.decode_points(packed.feat, packed.height, packed.width, packed.mask, self.z_table,
                                         self.mask_w, self.depth_w, self.prior_k, self.weights_t, self.biases,
                                         pts)
