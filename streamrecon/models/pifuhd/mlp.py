"""The pixel-aligned point MLP of PIFuHD: 1x1 convolutions over points with the input features
re-concatenated before the ``res_layers``, leaky ReLU between layers, sigmoid at the end.

Points are columns: features [C, N] (channel-first, one column per query point). Each layer is a
``Conv1d(kernel_size=1)`` so the state-dict keys and shapes (``filters.L.weight`` [out, in, 1])
match the checkpoint; the forward pass runs them as one matrix product per layer.

``phi`` is the activation after layer ``merge_layer`` (the coarse level hands it to the fine
level). A non-positive ``merge_layer`` means ``len(dims) // 2`` as in the reference.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

MLP_NORMS = ("none", "group", "batch")


class PointMLP(nn.Module):
    def __init__(self, dims: Sequence[int], res_layers: Sequence[int], merge_layer: int, norm: str) -> None:
        super().__init__()
        if norm not in MLP_NORMS:
            raise ValueError(f"mlp_norm: expected one of {MLP_NORMS}, got {norm!r}")
        dims = [int(d) for d in dims]
        self.res_layers = tuple(int(r) for r in res_layers)
        self.merge_layer = merge_layer if merge_layer > 0 else len(dims) // 2
        self.norm = norm
        self.filters = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(len(dims) - 1):
            cin = dims[layer] + (dims[0] if layer in self.res_layers else 0)
            self.filters.append(nn.Conv1d(cin, dims[layer + 1], 1))
            if layer != len(dims) - 2 and norm != "none":
                # 'group'/'batch' pool statistics over query points: results then depend on how
                # points are chunked. Supported only so such checkpoints load; see docs/pifuhd.md.
                self.norms.append(nn.GroupNorm(32, dims[layer + 1]) if norm == "group"
                                  else nn.BatchNorm1d(dims[layer + 1]))

    def forward(self, feat: torch.Tensor, phi_only: bool = False) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """feat [C_in, N] -> (occupancy [1, N] after sigmoid, phi [C_merge, N] or None).
        ``phi_only``: stop after the merge layer and return (None, phi) (the fine level needs
        only phi from the coarse MLP)."""
        y = feat
        phi = None
        last = len(self.filters) - 1
        for i, conv in enumerate(self.filters):
            x = torch.cat([y, feat], 0) if i in self.res_layers else y
            y = torch.addmm(conv.bias[:, None], conv.weight[:, :, 0], x)
            if i != last:
                if self.norm != "none":
                    y = self.norms[i](y[None])[0]
                y = F.leaky_relu(y)
            if i == self.merge_layer:
                phi = y
                if phi_only:
                    return None, phi
        return torch.sigmoid(y), phi
