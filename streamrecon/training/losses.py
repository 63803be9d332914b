"""Losses of the embedded model: occupancy BCE at labelled points, and the image-space
silhouette loss (max over depth of the predicted occupancy along orthographic rays vs the mask)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def occupancy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy; ``logits``/``labels`` [B, P]."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def ray_points(rays: torch.Tensor, depths: int, generator: torch.Generator | None = None,
               zrange: torch.Tensor | None = None) -> torch.Tensor:
    """[B, Q, 2] crop (x, y) -> [B, Q * depths, 3]: stratified random z along each ray
    (orthographic: the ray through a pixel is the line of constant x, y), in [-1, 1] or in each
    item's ``zrange`` [B, 2] (lo, hi)."""
    b, q, _ = rays.shape
    edges = torch.linspace(0, 1, depths + 1, device=rays.device)
    u = torch.rand(b, q, depths, device=rays.device, generator=generator)
    t = edges[:-1] + u * (edges[1:] - edges[:-1])  # [B, Q, D] in [0, 1], increasing along a ray
    if zrange is None:
        z = -1 + 2 * t
    else:
        lo, hi = zrange[:, :1, None], zrange[:, 1:, None]
        z = lo + t * (hi - lo)
    xy = rays[:, :, None, :].expand(b, q, depths, 2)
    return torch.cat([xy, z[..., None]], -1).reshape(b, q * depths, 3)


def silhouette_loss(ray_logits: torch.Tensor, ray_mask: torch.Tensor, depths: int) -> torch.Tensor:
    """``ray_logits`` [B, Q * depths] (as laid out by ``ray_points``), ``ray_mask`` [B, Q]: BCE of
    max-over-depth occupancy vs the mask. max commutes with the sigmoid, so it is taken on logits."""
    b = ray_logits.shape[0]
    m = ray_logits.reshape(b, -1, depths).amax(-1)
    return F.binary_cross_entropy_with_logits(m, ray_mask)


def depth_loss(pred: torch.Tensor, target: torch.Tensor, ok: torch.Tensor, cm: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance in cm between predicted and true front/back depths ``pred``/``target``
    [B, Q, 2] (crop units) over the pixels where ``ok`` [B, Q]; ``cm`` [B]: one cm in crop units."""
    err = (pred - target).abs().sum(-1) / cm[:, None]  # [B, Q]: front + back
    return 0.5 * (err * ok).sum() / ok.sum().clamp(min=1)
