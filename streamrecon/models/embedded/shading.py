"""The shading channel of the embedded model (``NetConfig.shading``): a grey image of the person,
normalised within the mask, beside the mask. Pure torch functions shared by training (shaded
synthetic depth maps), evaluation (the held-out render, one fixed light) and the product (the
luminance of the photo), so all three feed the network the same kind of picture.

Frames: images are [B, R, R] on the crop pixel grid (``streamrecon.training.synth.render``: row i at
y = 1 - 2 i / (R - 1), column j at x = -1 + 2 j / (R - 1)); depth is crop z (away from the
camera), +inf off the person; normals are crop-frame unit vectors facing the camera (z < 0).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

EVAL_LIGHT = (-0.3, 0.5, -1.0)
"""direction towards the light of the evaluation renders (up and to the left, camera side)"""
EVAL_AMBIENT = 0.3


def normals_from_depth(depth: torch.Tensor) -> torch.Tensor:
    """[B, R, R] crop z (+inf off the person) -> [B, R, R, 3] unit normals facing the camera, from
    central differences (one-sided next to the outline, flat where a pixel has no neighbour on
    the person along an axis); 0 off the person."""
    b, r, _ = depth.shape
    on = torch.isfinite(depth)
    z = torch.where(on, depth, torch.zeros_like(depth))
    h = 2.0 / (r - 1)  # pixel spacing in crop units

    def grad(axis: int) -> torch.Tensor:
        zp, zm = torch.roll(z, -1, axis), torch.roll(z, 1, axis)
        op, om = torch.roll(on, -1, axis), torch.roll(on, 1, axis)
        idx = torch.arange(r, device=depth.device)
        edge_p = (idx == r - 1).view((1, r, 1) if axis == 1 else (1, 1, r))
        edge_m = (idx == 0).view((1, r, 1) if axis == 1 else (1, 1, r))
        op, om = op & ~edge_p, om & ~edge_m
        central = (zp - zm) / (2 * h)
        fwd, bwd = (zp - z) / h, (z - zm) / h
        g = torch.where(op & om, central, torch.where(op, fwd, torch.where(om, bwd, torch.zeros_like(z))))
        return torch.where(on, g, torch.zeros_like(g))

    dzdx = grad(2)  # columns go along +x
    dzdy = -grad(1)  # rows go along -y
    n = torch.stack([dzdx, dzdy, -torch.ones_like(z)], -1)  # surface z = f(x, y): normal (f_x, f_y, -1)
    n = n / n.norm(dim=-1, keepdim=True)
    return n * on[..., None]


def lambert(normals: torch.Tensor, light: torch.Tensor, ambient: torch.Tensor) -> torch.Tensor:
    """[B, R, R, 3] normals, [B, 3] direction towards the light, [B] ambient share -> [B, R, R]
    grey level in [0, 1] (albedo 1)."""
    ld = light / light.norm(dim=-1, keepdim=True)
    lam = (normals * ld[:, None, None, :]).sum(-1).clamp(min=0)
    a = ambient[:, None, None]
    return lam * (1 - a) + a


def normalise(grey: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, R, R] grey levels and masks -> the network's shading channel: zero mean and unit
    spread within the mask (so exposure and albedo scale do not matter), clipped to +-3, 0 off it."""
    m = mask.float()
    n = m.sum((1, 2), keepdim=True).clamp(min=1)
    mean = (grey * m).sum((1, 2), keepdim=True) / n
    var = (((grey - mean) * m) ** 2).sum((1, 2), keepdim=True) / n
    out = (grey - mean) / (var.sqrt() + 0.05)
    return out.clamp(-3, 3) * m


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """[..., 3] RGB in [0, 1] -> [...] luminance (Rec. 601 weights)."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def eval_shading(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The shading channel of a synthetic render under the evaluation light ([B, R, R] each)."""
    b = depth.shape[0]
    light = torch.tensor(EVAL_LIGHT, dtype=torch.float32, device=depth.device).expand(b, 3)
    grey = lambert(normals_from_depth(depth.float()), light, torch.full((b,), EVAL_AMBIENT, device=depth.device))
    return normalise(grey, mask)


def random_grey(depth: torch.Tensor, gen: Optional[torch.Generator] = None) -> torch.Tensor:
    """Training version of the evaluation render: [B, R, R] crop z (+inf off the person) -> grey
    levels (0 off the person) under a random light on the camera's side (up to ~60 degrees off
    the view axis), ambient 0.1-0.5, a smooth random albedo (+-30%, 4 x 4 cells), a random gamma
    (0.7-1.4) and pixel noise (2%), so the network learns shape from shading rather than one
    renderer's exact grey levels. ``normalise`` it with the (possibly perturbed) input mask."""
    b, r, _ = depth.shape
    dev = depth.device

    def u(*shape):
        return torch.rand(*shape, generator=gen, device=dev)

    light = torch.cat([(u(b, 2) * 2 - 1) * 1.2, -torch.ones(b, 1, device=dev)], 1)
    ambient = 0.1 + 0.4 * u(b)
    grey = lambert(normals_from_depth(depth.float()), light, ambient)
    albedo = torch.exp(0.3 * (u(b, 1, 4, 4) * 2 - 1))
    albedo = F.interpolate(albedo, size=(r, r), mode="bicubic", align_corners=True)[:, 0]
    gamma = torch.exp((u(b, 1, 1) * 2 - 1) * 0.35)
    grey = (grey * albedo).clamp(min=1e-4) ** gamma
    grey = grey + 0.02 * torch.randn(b, r, r, generator=gen, device=dev)
    return grey * torch.isfinite(depth)


def random_shading(depth: torch.Tensor, mask: torch.Tensor, gen: Optional[torch.Generator] = None) -> torch.Tensor:
    """``random_grey`` normalised within ``mask`` (the channel a training view gets)."""
    return normalise(random_grey(depth, gen), mask)
