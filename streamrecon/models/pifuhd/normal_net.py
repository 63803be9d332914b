"""Front/back normal-map networks: the pix2pixHD "global" generator PIFuHD uses (hard-coded there
as ``ngf=64, n_downsampling=4, n_blocks=9``, instance norm without affine, tanh output).

The sizes are not stored in the checkpoint options, so ``options.infer_normal_net_config`` reads them
from the weight shapes. Layer indices inside ``model`` (``model.1``, ``model.4``, ...) are part of
the state-dict keys, so the ``nn.Sequential`` below keeps the reference's exact layer order:

    [pad7, conv7, norm, relu] + n_down * [conv3/2, norm, relu] + n_blocks * [ResnetBlock]
    + n_down * [convT3x2, norm, relu] + [pad7, conv7, tanh]

Shapes: input [B, 3, H, W] in [-1, 1] (H, W divisible by 2**n_down); output [B, 3, H, W] in
[-1, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from .options import NormalNetOptions


def _norm(ch: int) -> nn.Module:
    # instance norm, no affine parameters and no running stats: contributes no state-dict keys
    return nn.InstanceNorm2d(ch, affine=False)


class ResnetBlock(nn.Module):
    """x + (pad1, conv3, norm, relu, pad1, conv3, norm)(x); keys ``conv_block.1`` / ``.5``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    """pix2pixHD global generator, image to image (see the module docstring for the layout)."""

    def __init__(self, cfg: NormalNetOptions) -> None:
        super().__init__()
        ngf, nd = cfg.ngf, cfg.n_downsampling
        layers: list = [nn.ReflectionPad2d(3), nn.Conv2d(cfg.input_nc, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for i in range(nd):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(2 * c), nn.ReLU(True)]
        wide = ngf * 2 ** nd
        layers += [ResnetBlock(wide) for _ in range(cfg.n_blocks)]
        for i in range(nd):
            c = ngf * 2 ** (nd - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cfg.output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


