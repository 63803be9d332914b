"""Stacked-hourglass image filter of PIFu/PIFuHD (``ConvBlock``, ``HourGlass``, ``HGFilter``).

Module names and registration order mirror the reference because they are the state-dict keys.
One quirk is kept on purpose: a ``ConvBlock`` whose width changes registers its fourth norm twice,
as ``bn4`` and as ``downsample.0`` (the same module object), so the state dict has two keys for
one tensor; a block with equal widths still owns an unused ``bn4``.

Shapes: ``HGFilter`` maps [B, in_ch, H, W] to ``n_stack`` maps [B, last_ch, H/4, W/4]
(``ave_pool``) or [B, last_ch, H/2, W/2] (``no_down``); the internal width is 256 whatever
``last_ch`` is.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("group", "batch")
DOWN_TYPES = ("ave_pool", "no_down")


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(32, ch)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    raise ValueError(f"norm: expected one of {NORMS}, got {kind!r}")


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Residual block whose output concatenates three 3x3 conv branches of widths
    out/2, out/4, out/4 (pre-activation: norm, relu, conv)."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.conv1 = _conv3x3(cin, half)
        self.conv2 = _conv3x3(half, quarter)
        self.conv3 = _conv3x3(quarter, quarter)
        self.bn1 = _norm(norm, cin)
        self.bn2 = _norm(norm, half)
        self.bn3 = _norm(norm, quarter)
        self.bn4 = _norm(norm, cin)
        if cin != cout:
            self.downsample = nn.Sequential(self.bn4, nn.ReLU(True), nn.Conv2d(cin, cout, 1, bias=False))
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU on fresh norm outputs and an in-place residual add: the same arithmetic
        # without three 256-channel temporaries per block (at the fine level's 512x512 each is
        # 256 MB, and fresh allocations of that size cost page faults on every call).
        a = self.conv1(F.relu_(self.bn1(x)))
        b = self.conv2(F.relu_(self.bn2(a)))
        c = self.conv3(F.relu_(self.bn3(b)))
        skip = x if self.downsample is None else self.downsample(x)
        out = torch.cat([a, b, c], 1)
        return out.add_(skip)


class HourGlass(nn.Module):
    """Recursive hourglass of ``depth`` levels: an upper branch at full resolution plus a lower
    branch at half resolution (average pool, blocks, bicubic upsampling with aligned corners)."""

    def __init__(self, depth: int, ch: int, norm: str) -> None:
        super().__init__()
        self.depth = depth
        self._build(depth, ch, norm)

    def _build(self, level: int, ch: int, norm: str) -> None:
        # registration order = state-dict order: b1_L, b2_L, (deeper levels | b2_plus_1), b3_L
        self.add_module(f"b1_{level}", ConvBlock(ch, ch, norm))
        self.add_module(f"b2_{level}", ConvBlock(ch, ch, norm))
        if level > 1:
            self._build(level - 1, ch, norm)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(ch, ch, norm))
        self.add_module(f"b3_{level}", ConvBlock(ch, ch, norm))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        if level > 1:
            low = self._level(level - 1, low)
        else:
            low = self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        # upper + up in place on the fresh upsampled map (addition commutes exactly)
        return F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=True).add_(upper)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class HGFilter(nn.Module):
    """Stem (7x7/2 conv, blocks, optional 2x average pool) then ``n_stack`` hourglasses, each
    ending in a 1x1 conv to ``last_ch`` channels; intermediate stacks feed the next one."""

    def __init__(self, n_stack: int, depth: int, in_ch: int, last_ch: int, norm: str, down_type: str) -> None:
        super().__init__()
        if down_type not in DOWN_TYPES:
            raise ValueError(f"hg_down: expected one of {DOWN_TYPES}, got {down_type!r}")
        self.n_stack = n_stack
        self.down_type = down_type
        self.conv1 = nn.Conv2d(in_ch, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = _norm(norm, 64)
        self.conv2 = ConvBlock(64, 128, norm)
        self.conv3 = ConvBlock(128, 128, norm)
        self.conv4 = ConvBlock(128, 256, norm)
        for i in range(n_stack):
            self.add_module(f"m{i}", HourGlass(depth, 256, norm))
            self.add_module(f"top_m_{i}", ConvBlock(256, 256, norm))
            self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, 1))
            self.add_module(f"bn_end{i}", _norm(norm, 256))
            self.add_module(f"l{i}", nn.Conv2d(256, last_ch, 1))
            if i < n_stack - 1:
                self.add_module(f"bl{i}", nn.Conv2d(256, 256, 1))
                self.add_module(f"al{i}", nn.Conv2d(last_ch, 256, 1))

    def forward(self, x: torch.Tensor, last_only: bool = True,
                keep_normx: bool = True) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """Returns (feature maps of the stacks, the stem output ``normx``). With ``last_only``
        (inference) only the last stack's map is returned, as the reference keeps in eval mode.
        ``keep_normx=False`` returns None for ``normx`` and frees it early: at the fine level it
        is a 128-channel map at 512 x 512 (128 MB) that nothing reads."""
        x = F.relu_(self.bn1(self.conv1(x)))
        x = self.conv2(x)
        if self.down_type == "ave_pool":
            x = F.avg_pool2d(x, 2, stride=2)
        normx = x if keep_normx else None
        prev = self.conv4(self.conv3(x))
        del x
        outputs = []
        for i in range(self.n_stack):
            y = self._modules[f"m{i}"](prev)
            if i == self.n_stack - 1 and last_only:
                prev = None  # the last stack's input is not needed past its hourglass (256 MB at the fine level)
            y = self._modules[f"top_m_{i}"](y)
            y = F.relu_(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](y)))
            out = self._modules[f"l{i}"](y)
            outputs.append(out)
            if i < self.n_stack - 1:
                prev = prev + self._modules[f"bl{i}"](y) + self._modules[f"al{i}"](out)
            if last_only and i < self.n_stack - 1:
                outputs.clear()
        return outputs, normx
