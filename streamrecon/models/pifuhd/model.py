"""PIFuHD's two levels and the ``ImplicitModel`` around them.

Frames (see ``streamrecon.types``): query points are in the **crop frame** (x right, y up,
z in [-1, 1]). The orthographic calibration diag(1, -1, 1) maps them to sampling coordinates
(u, v, d) = (x, -y, z), where u, v are ``grid_sample`` coordinates with aligned corners
(u = -1 is the centre of column 0, v = -1 the centre of the top row).

- ``CoarseNet`` (reference ``HGPIFuNetwNML``): normal nets on the 512 image, hourglass filter on
  [image, front normal, back normal], MLP on [feature(u, v), z * (load_size // 2) / z_size].
  Its output is masked by the in-box test on u, v and d.
- ``FineNet`` (reference ``HGPIFuMRNet``; owns ``netG`` = the coarse net, so the state-dict keys
  are ``image_filter.*``, ``mlp.*``, ``netG.*``): hourglass filter on the 1024 image with the
  normal maps upsampled to it, MLP on [fine feature(u, v), coarse phi]. Masked by the in-box test
  on u, v only. Only the fine occupancy is used for meshes.

Everything runs in eval mode under ``torch.no_grad``. (The reference leaves the fine net in train
mode; with group norm and an MLP without norm that changes nothing.)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .hourglass import HGFilter
from .mlp import PointMLP
from .normal_net import GlobalGenerator
from .options import CoarseOptions, PifuhdOptions

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 50_000
"""points per network batch in ``query`` (the reference's batch size); bounds peak memory."""
ORT_QUERY_CHUNK = 16_384
"""points per query batch when ONNX Runtime runs the MLPs (see ``PifuhdModel.compile``)."""


class CoarseNet(nn.Module):
    """Coarse level. Registration order = the reference's key order."""

    def __init__(self, opt: CoarseOptions, front, back) -> None:
        super().__init__()
        self.opt = opt
        in_ch = 3 + 3 * int(opt.use_front_normal) + 3 * int(opt.use_back_normal)
        self.image_filter = HGFilter(opt.num_stack, opt.hg_depth, in_ch, opt.hg_dim, opt.norm, opt.hg_down)
        self.mlp = PointMLP(opt.mlp_dim, opt.mlp_res_layers, opt.merge_layer, opt.mlp_norm)
        self.netF = GlobalGenerator(front) if opt.use_front_normal else None
        self.netB = GlobalGenerator(back) if opt.use_back_normal else None

    def normal_maps(self, img: torch.Tensor) -> Optional[torch.Tensor]:
        """img [1, 3, S, S] -> [1, 3 or 6, S, S] (front then back normals) or None."""
        maps = [net(img) for net in (self.netF, self.netB) if net is not None]
        return torch.cat(maps, 1) if maps else None

    def filter(self, img: torch.Tensor, nmls: Optional[torch.Tensor]) -> torch.Tensor:
        """img [1, 3, S, S], nmls from ``normal_maps`` -> last-stack features [1, hg_dim, S/4, S/4]."""
        x = img
        if nmls is not None:
            if nmls.shape[2:] != img.shape[2:]:
                nmls = F.interpolate(nmls, size=img.shape[2:], mode="bilinear", align_corners=True)
            x = torch.cat([img, nmls], 1)
        feats, _ = self.image_filter(x, keep_normx=False)
        return feats[-1]

    def depth_feature(self, d: torch.Tensor) -> torch.Tensor:
        # same operation order as the reference (multiply, then divide) for matching rounding
        return d * (self.opt.load_size // 2) / self.opt.z_size


class FineNet(nn.Module):
    """Fine level; owns the coarse level as ``netG``."""

    def __init__(self, opt: PifuhdOptions) -> None:
        super().__init__()
        self.opt = opt.fine
        c = opt.coarse
        in_ch = 3 + 3 * int(c.use_front_normal) + 3 * int(c.use_back_normal)
        f = opt.fine
        self.image_filter = HGFilter(f.num_stack, f.hg_depth, in_ch, f.hg_dim, f.norm, "no_down")
        self.mlp = PointMLP(f.mlp_dim, f.mlp_res_layers, -1, f.mlp_norm)
        self.netG = CoarseNet(c, opt.front, opt.back)

    def filter(self, img_big: torch.Tensor, nmls: Optional[torch.Tensor]) -> torch.Tensor:
        """img_big [1, 3, B, B] (B = load_size_big), nmls at the coarse size -> fine features
        [1, hg_dim, B/2, B/2]. Normal maps are upsampled bilinearly with aligned corners."""
        x = img_big
        if nmls is not None:
            size = (self.opt.load_size_big, self.opt.load_size_big)
            x = torch.cat([img_big, F.interpolate(nmls, size=size, mode="bilinear", align_corners=True)], 1)
        feats, _ = self.image_filter(x, keep_normx=False)
        return feats[-1]


def build_network(opt: PifuhdOptions, device: Any = "cpu") -> FineNet:
    """Construct the network for ``opt`` on ``device`` (``"meta"``: shapes only, no memory)."""
    with torch.device(device):
        net = FineNet(opt)
    return net.eval().requires_grad_(False)


@dataclass
class PifuhdFeatures:
    """What ``encode`` computes once per person crop. Shapes (batch 1):
    ``coarse`` [1, C_coarse, S/4, S/4], ``fine`` [1, C_fine, B/2, B/2], ``normals`` [1, 6, S, S]
    (front, back; None without normal nets), ``rect`` (x, y, w, h) in frame pixels or None."""

    coarse: torch.Tensor
    fine: torch.Tensor
    normals: Optional[torch.Tensor]
    rect: Optional[tuple] = None


def _sample(feat: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear, zero padding, aligned corners. feat [1, C, H, W], uv [N, 2] -> [C, N]."""
    grid = uv.view(1, -1, 1, 2)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, :, :, 0]


class PifuhdModel:
    """``ImplicitModel`` for PIFuHD. Used from one thread (the reconstruction stage's).

    ``encode(image, rect)`` preprocesses the crop (``streamrecon.models.preprocess``) and runs the normal
    nets and both filters once; ``query(features, points)`` returns the fine occupancy at crop-
    frame points. ``chunk`` points are evaluated per network batch.
    """

    name = "pifuhd"

    def __init__(self, net: FineNet, options: PifuhdOptions, device: Any = "cpu", chunk: int = DEFAULT_CHUNK) -> None:
        self.net = net.to(device).eval().requires_grad_(False)
        self.options = options
        self.device = torch.device(device)
        self.chunk = int(chunk)
        self.backend = "eager"
        """what runs the sub-networks: 'eager' until ``compile``, then e.g. 'onnxruntime' or
        'mixed: normal_front=onnxruntime, ...'."""
        self.weights_id: Optional[str] = None
        """identity of the weights in engine-cache keys ("sha256:<checkpoint file sha256>" when the
        loader knows the file); ``compile`` hashes the state dict when None."""
        self._runners: Dict[str, Any] = {}

    def compile(self, cfg, cache=None) -> "PifuhdModel":
        """Run the normal nets, both filters and the query MLPs through ``streamrecon.backends``
        runners for ``cfg`` (a ``BackendConfig``); engines are built once and cached (see
        ``streamrecon.models.pifuhd.compiled``). ``cfg.device`` must be this model's device. Returns self."""
        from .compiled import compile_subnets

        if torch.device(cfg.device) != self.device:
            raise ValueError(f"cfg.device: the model is on {self.device}, got {cfg.device!r}")
        self._runners = compile_subnets(self, cfg, cache=cache)
        used = {name: r.backend for name, r in self._runners.items()}
        if used.get("query_head") == "onnxruntime":
            # ONNX Runtime's arena keeps the largest batch's activations for good (the 1024-wide
            # first layer: 4 KB per point): smaller batches keep ~350 MB less resident at the
            # price of ~5% more query time (measured at 512^3 on the full-size model).
            self.chunk = min(self.chunk, ORT_QUERY_CHUNK)
        kinds = set(used.values())
        self.backend = kinds.pop() if len(kinds) == 1 else "mixed: " + ", ".join(f"{k}={v}" for k, v in used.items())
        log.info("pifuhd backends: %s", self.backend)
        return self

    # ---- image side -------------------------------------------------------------------------
    @torch.no_grad()
    def encode_tensors(self, img: torch.Tensor, img_big: torch.Tensor, rect: Optional[tuple] = None) -> PifuhdFeatures:
        """img [1, 3, S, S] and img_big [1, 3, B, B], normalised to [-1, 1] (``preprocess``)."""
        img = img.to(self.device, torch.float32)
        img_big = img_big.to(self.device, torch.float32)
        if self._runners:
            return self._encode_compiled(img, img_big, rect)
        nmls = self.net.netG.normal_maps(img)
        coarse = self.net.netG.filter(img, nmls)
        fine = self.net.filter(img_big, nmls)
        return PifuhdFeatures(coarse=coarse, fine=fine, normals=nmls, rect=rect)

    def _encode_compiled(self, img: torch.Tensor, img_big: torch.Tensor, rect: Optional[tuple]) -> PifuhdFeatures:
        r = self._runners
        maps = [r[name](img) for name in ("normal_front", "normal_back") if name in r]
        nmls = torch.cat(maps, 1) if maps else None
        extra = (nmls,) if nmls is not None else ()
        coarse = r["coarse_filter"](img, *extra)
        fine = r["fine_filter"](img_big, *extra)
        return PifuhdFeatures(coarse=coarse, fine=fine, normals=nmls, rect=rect)

    def prepare_rect(self, rect: tuple) -> tuple:
        """The rect ``encode`` crops with: rounded to integer pixels (``preprocess.check_rect``).
        Wrappers that transform the rect (``mirror_average``) do so after this, so the crop they
        get is exactly the transformed crop."""
        from ..preprocess import check_rect

        return check_rect(rect)

    def encode(self, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None) -> PifuhdFeatures:
        """image [H, W, 3] uint8 RGB, rect (x, y, w, h) frame pixels (rounded to integers, may
        extend beyond the image). PIFuHD does not use a mask; ``mask`` is ignored."""
        from ..preprocess import preprocess

        pre = preprocess(image, rect, load_size=self.options.coarse.load_size,
                         load_size_big=self.options.fine.load_size_big)
        return self.encode_tensors(pre.img_512, pre.img, rect=pre.rect)

    # ---- point side -------------------------------------------------------------------------
    @torch.no_grad()
    def query_debug(self, features: PifuhdFeatures, points: torch.Tensor) -> Dict[str, torch.Tensor]:
        """All intermediate values for points [N, 3] (one batch): ``uvd`` [N, 3], ``coarse``,
        ``fine`` [N] (masked occupancies), ``coarse_unmasked``, ``fine_unmasked`` [N],
        ``phi`` [C_phi, N], ``in_xyz``, ``in_xy`` [N] bool."""
        coarse_net = self.net.netG
        p = points.to(self.device, torch.float32)
        uvd = torch.stack([p[:, 0], -p[:, 1], p[:, 2]], 1)
        inside = (uvd >= -1) & (uvd <= 1)
        in_xy = inside[:, 0] & inside[:, 1]
        in_xyz = in_xy & inside[:, 2]
        uv = uvd[:, :2].contiguous()
        z = coarse_net.depth_feature(uvd[:, 2:3]).T
        occ_c, phi = coarse_net.mlp(torch.cat([_sample(features.coarse, uv), z], 0))
        occ_f, _ = self.net.mlp(torch.cat([_sample(features.fine, uv), phi], 0))
        return {
            "uvd": uvd, "phi": phi, "in_xy": in_xy, "in_xyz": in_xyz,
            "coarse_unmasked": occ_c[0], "fine_unmasked": occ_f[0],
            "coarse": occ_c[0] * in_xyz.float(), "fine": occ_f[0] * in_xy.float(),
        }

    @torch.no_grad()
    def _query_batch(self, features: PifuhdFeatures, p: torch.Tensor) -> torch.Tensor:
        coarse_net = self.net.netG
        u, v, d = p[:, 0], -p[:, 1], p[:, 2]
        in_xy = (u >= -1) & (u <= 1) & (v >= -1) & (v <= 1)
        uv = torch.stack([u, v], 1)
        z = coarse_net.depth_feature(d)[None]
        head = self._runners.get("query_head")
        if head is not None:
            occ = head(torch.cat([_sample(features.coarse, uv), z], 0), _sample(features.fine, uv))
            return occ * in_xy.to(occ.dtype)
        _, phi = coarse_net.mlp(torch.cat([_sample(features.coarse, uv), z], 0), phi_only=True)
        occ, _ = self.net.mlp(torch.cat([_sample(features.fine, uv), phi], 0))
        return occ[0] * in_xy.to(occ.dtype)

    @torch.no_grad()
    def query(self, features: PifuhdFeatures, points: torch.Tensor) -> torch.Tensor:
        """points [N, 3] float32 crop frame -> fine occupancy [N] float32 in [0, 1]."""
        p = torch.as_tensor(points).to(self.device, torch.float32)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points: expected shape [N, 3], got {list(p.shape)}")
        if p.shape[0] <= self.chunk:
            return self._query_batch(features, p)
        return torch.cat([self._query_batch(features, c) for c in torch.split(p, self.chunk)])
