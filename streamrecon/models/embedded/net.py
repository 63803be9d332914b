"""The embedded network: a light U-Net image encoder and a pixel-aligned occupancy MLP (PIFu
family, sized for the CPU real-time path). Pure torch; no I/O.

Shapes and frames:
- ``image``: [B, C_in, R, R] float, the crop resampled so that pixel (row i, column j) sits at crop
  x = -1 + 2 j / (R - 1), y = 1 - 2 i / (R - 1) (``align_corners=True``). Channel 0 is the person
  mask in {0, 1}; with ``rgb=True`` channels 1..3 are RGB scaled to [-1, 1] (0 off the mask); with
  ``shading=True`` the next channel is the shading channel (``embedded.shading.normalise``); with
  ``body=True`` the last three are the fitted body's front and back crop z and its coverage
  (``streamrecon.body.conditioning.BodyMaps``: 0 where the body does not cover the pixel).
- ``points``: [B, N, 3] in the crop frame (x right, y up, z away from the camera, [-1, 1]).
- features: [B, C, R/4, R/4]; sampled at (x, -y) because image rows go down while y goes up.
- output: [B, N] occupancy logits (sigmoid -> probability of being inside; 0.5 = surface).
Every op on query points is per point (no norm across points): chunking never changes a result.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class NetConfig:
    """Architecture of the embedded model (stored beside its weights)."""

    in_res: int = 256
    """crop resolution the encoder sees (pixels across the square crop)"""
    rgb: bool = False
    """feed the RGB crop besides the mask (the default model uses the mask only: it transfers
    from synthetic renders to real photos without a shading/texture domain gap)"""
    shading: bool = False
    """feed a grey shading channel after the mask (and RGB): ``streamrecon.models.embedded.shading``,
    the luminance of the crop normalised within the mask. It carries the depth cues a silhouette
    lacks (which limb is in front, how thick the body is)"""
    widths: Tuple[int, ...] = (16, 32, 64, 96, 128)
    """encoder channels at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input resolution"""
    feat: int = 96
    """channels of the pixel-aligned feature map (at 1/4 resolution) = width of the MLP's first
    layer, which is folded into the encoder"""
    mlp: Tuple[int, ...] = (48,)
    """widths of the point MLP's further hidden layers"""
    z_freqs: int = 6
    """sin/cos frequencies of the depth encoding (besides z itself)"""
    body: bool = False
    """read the fitted body (``streamrecon.body.conditioning``): three more input channels, its front
    and back depth maps and coverage. With ``depth_prior`` the predicted surfaces start from the
    body's (the depth head adds its output to the body's depths where the body covers the pixel),
    so the occupancy starts as the body and the network learns the clothes on it"""
    depth_prior: bool = False
    """two more encoder outputs: the crop z of the body's front and back surface at each pixel
    (trained on the renders' depth maps). The decoder reads the point's signed distances to both
    in its first layer and adds ``k m min(z - front, back - z)`` to its logit (``m``: the mask at
    the point, ``k`` learned): the occupancy starts as the interval between the two depth maps
    and the MLP corrects it, so the back is there after few steps instead of being carved out
    of the volume point by point"""

    @property
    def in_channels(self) -> int:
        """input channels: the mask, RGB (3) if ``rgb``, shading (1) if ``shading``, the body's
        front, back and coverage (3) if ``body``"""
        return 1 + (3 if self.rgb else 0) + (1 if self.shading else 0) + (3 if self.body else 0)

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> "NetConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"NetConfig: unknown fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


DEPTH_INIT = 0.05  # crop units (~5 cm): the depth maps' initial half-thickness
PRIOR_SCALE_INIT = 10.0  # logit per crop unit inside the interval (~0.1 per cm): the MLP leads until the depth maps are learned


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    groups = math.gcd(8, cout)
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """U-Net: 5 stride-2 stages down to R/32 (whole-body context), back up to R/4 with skips."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        w = cfg.widths
        cin = cfg.in_channels
        self.down = nn.ModuleList([_block(cin if i == 0 else w[i - 1], w[i], 2) for i in range(len(w))])
        ups = []
        c = w[-1]
        for i in range(len(w) - 2, 0, -1):  # back up to the 1/4 level (index 1)
            ups.append(_block(c + w[i], w[i], 1))
            c = w[i]
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(c, cfg.feat + (2 if cfg.depth_prior else 0), 1)
        self.feat = cfg.feat
        self.body_skip = cfg.body and cfg.depth_prior
        if cfg.depth_prior:  # the depth maps start flat: front just before z = 0, back just after
            with torch.no_grad():
                self.head.weight[cfg.feat:].mul_(0.1)
                self.head.bias[cfg.feat:] = torch.tensor([-DEPTH_INIT, DEPTH_INIT])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x
        skips = []
        for blk in self.down:
            x = blk(x)
            skips.append(x)
        for k, blk in enumerate(self.up):
            skip = skips[len(skips) - 2 - k]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = blk(torch.cat([x, skip], 1))
        out = self.head(x)
        if self.body_skip:
            base = body_depths_at(image[:, -3:], out.shape[-2:])
            out = torch.cat([out[:, :self.feat], out[:, self.feat:] + base], 1)
        return out


def body_depths_at(body: torch.Tensor, size) -> torch.Tensor:
    """[B, 3, R, R] body channels (front and back crop z, 0 off the body; coverage) -> [B, 2, h, w]
    the body's front and back depth on the ``size`` grid (``align_corners=True``, the features'
    grid), 0 where the body covers no neighbouring input pixel. Coverage-normalised interpolation:
    at the body's outline the depth of the covered neighbours, not an average with the zeros."""
    num = F.interpolate(body[:, :2], size=size, mode="bilinear", align_corners=True)
    den = F.interpolate(body[:, 2:3], size=size, mode="bilinear", align_corners=True)
    return torch.where(den > 1e-3, num / den.clamp(min=1e-3), torch.zeros_like(num))


def sample_bilinear_rows(feat: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(feat, xy[:, :, None], "bilinear", "zeros", align_corners=True)[..., 0]``
    transposed ([B, C, H, W], [B, N, 2] -> [B, N, C]), computed as a weighted sum of 4 feature rows per point
    (``F.embedding_bag`` over the map in channels-last order). Same values; its backward adds
    each point's gradient to 4 contiguous rows of C floats instead of scattering C strided
    values, which makes the training step's sampling backward several times faster on a CPU.
    No gradient flows to ``xy`` (training points are data)."""
    b, c, h, w = feat.shape
    n = xy.shape[1]
    ix = (xy[..., 0] + 1) * (0.5 * (w - 1))
    iy = (xy[..., 1] + 1) * (0.5 * (h - 1))
    x0f, y0f = torch.floor(ix), torch.floor(iy)
    fx, fy = ix - x0f, iy - y0f
    x0, y0 = x0f.long(), y0f.long()
    xs = torch.stack([x0, x0 + 1, x0, x0 + 1], -1)  # [B, N, 4] corners
    ys = torch.stack([y0, y0, y0 + 1, y0 + 1], -1)
    wts = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)  # zeros padding: outside corners weigh 0
    rows = ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1) + (torch.arange(b, device=feat.device) * (h * w))[:, None, None]
    table = feat.permute(0, 2, 3, 1).reshape(b * h * w, c)
    out = _WeightedRows.apply(table, rows.reshape(-1, 4), (wts * inside).reshape(-1, 4).to(table.dtype).detach())
    return out.reshape(b, n, c)


class _WeightedRows(torch.autograd.Function):
    """out[p] = sum_k weight[p, k] * table[index[p, k]]; the gradient flows to ``table`` only
    (the sampling positions are data), added with one ``index_add_`` per corner: about half the
    time of ``embedding_bag``'s own backward, which sorts the indices first."""

    @staticmethod
    def forward(ctx, table, index, weight):
        ctx.save_for_backward(index, weight)
        ctx.rows = table.shape[0]
        return F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")

    @staticmethod
    def backward(ctx, grad_out):
        index, weight = ctx.saved_tensors
        grad = grad_out.new_zeros(ctx.rows, grad_out.shape[1])
        for k in range(index.shape[1]):
            grad.index_add_(0, index[:, k], grad_out * weight[:, k:k + 1])
        return grad, None, None


class PointDecoder(nn.Module):
    """Pixel-aligned MLP: [feature(x, -y), mask(x, -y), z encoding] -> occupancy logit.

    The first layer is folded into the encoder: the feature map *is* that layer's image-feature
    term (a linear layer commutes with bilinear sampling), so per point it only adds the mask and
    depth terms. The depth term is a function of z alone: in eval mode it is read from a table of
    ``Z_TABLE`` samples over [-1, 1] by linear interpolation (the fast path; ``exact_z=True`` or
    train mode computes sin/cos exactly, its slow twin). Computations run channels-first
    ([B, C, N]) so each layer is one matrix product over all points.
    """

    Z_TABLE = 4096

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.z_freqs = cfg.z_freqs
        self.feat = cfg.feat
        self.depth_prior = cfg.depth_prior
        self.mask_w = nn.Parameter(torch.zeros(cfg.feat))
        if cfg.depth_prior:  # first-layer weights of (z - front, back - z), and log k
            self.depth_w = nn.Parameter(torch.zeros(cfg.feat, 2))
            self.log_prior_scale = nn.Parameter(torch.tensor(math.log(PRIOR_SCALE_INIT)))
        self.z_lin = nn.Linear(1 + 2 * cfg.z_freqs, cfg.feat)
        nn.init.normal_(self.mask_w, std=0.5)
        layers = []
        cin = cfg.feat
        for h in list(cfg.mlp) + [1]:
            layers.append(nn.Linear(cin, h))
            cin = h
        self.layers = nn.ModuleList(layers)
        self._table = None  # [1, feat, 1, Z_TABLE] in eval mode

    def train(self, mode: bool = True):
        self._table = None
        return super().train(mode)

    def z_encoding(self, z: torch.Tensor) -> torch.Tensor:
        """[..., 1] -> [..., 1 + 2 z_freqs]: z, then sin/cos(pi 2^k z)."""
        enc = [z]
        for k in range(self.z_freqs):
            a = z * (math.pi * 2 ** k)
            enc += [torch.sin(a), torch.cos(a)]
        return torch.cat(enc, -1)

    def z_term_exact(self, z: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, feat, N]: the first layer's depth term, computed exactly."""
        return self.z_lin(self.z_encoding(z[..., None])).transpose(1, 2)

    def z_term_table(self, z: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, feat, N]: the same term by linear interpolation in a table (eval mode)."""
        if self._table is None or self._table.device != z.device:
            with torch.no_grad():
                zs = torch.linspace(-1, 1, self.Z_TABLE, device=z.device)[None]
                self._table = self.z_term_exact(zs)[:, :, None, :].contiguous()  # [1, feat, 1, T]
        b = z.shape[0]
        grid = torch.stack([z, torch.zeros_like(z)], -1)[:, None]  # [B, 1, N, 2]
        # Outside [-1, 1] the table clamps (border): only used far from any person.
        return F.grid_sample(self._table.expand(b, -1, -1, -1), grid, mode="bilinear",
                             padding_mode="border", align_corners=True)[:, :, 0, :]

    def forward(self, feat: torch.Tensor, mask: torch.Tensor, points: torch.Tensor, exact_z: bool = False) -> torch.Tensor:
        xy = torch.stack([points[..., 0], -points[..., 1]], -1)  # [B, N, 2]
        m = F.grid_sample(mask, xy[:, :, None], mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0]
        z = points[..., 2]
        if feat.requires_grad and torch.is_grad_enabled():
            return self._forward_for_training(feat, m, xy, z)
        f = F.grid_sample(feat, xy[:, :, None], mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0]
        zt = self.z_term_exact(z) if (exact_z or self.training) else self.z_term_table(z)
        prior = None
        if self.depth_prior:
            gaps = torch.stack([z - f[:, self.feat], f[:, self.feat + 1] - z], 1)  # [B, 2, N]
            f = f[:, :self.feat] + torch.matmul(self.depth_w, gaps)
            prior = self.log_prior_scale.exp() * m[:, 0] * torch.minimum(gaps[:, 0], gaps[:, 1])
        h = f + zt + self.mask_w[None, :, None] * m  # [B, feat, N]
        for lin in self.layers:
            h = torch.matmul(lin.weight, F.leaky_relu(h, 0.1)) + lin.bias[None, :, None]
        return h[:, 0, :] if prior is None else h[:, 0, :] + prior

    def _forward_for_training(self, feat: torch.Tensor, m: torch.Tensor, xy: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The same function with a cheaper backward (the training step's path, exact depth
        term): points-major [B, N, C] throughout, so no layer transposes; features sampled as
        rows (``sample_bilinear_rows``); the depth and mask terms in one product."""
        m = m.transpose(1, 2)  # [B, N, 1]
        f = sample_bilinear_rows(feat, xy)  # [B, N, feat (+ 2)]
        parts = [self.z_encoding(z[..., None]), m]
        ws = [self.z_lin.weight, self.mask_w[:, None]]
        prior = None
        if self.depth_prior:
            gaps = torch.stack([z - f[..., self.feat], f[..., self.feat + 1] - z], -1)  # [B, N, 2]
            f = f[..., :self.feat]
            parts.append(gaps)
            ws.append(self.depth_w)
            prior = self.log_prior_scale.exp() * m[..., 0] * torch.minimum(gaps[..., 0], gaps[..., 1])
        h = f + F.linear(torch.cat(parts, -1), torch.cat(ws, 1), self.z_lin.bias)  # [B, N, feat]
        for lin in self.layers:
            h = F.linear(F.leaky_relu(h, 0.1), lin.weight, lin.bias)
        return h[..., 0] if prior is None else h[..., 0] + prior

    def surface_depths(self, feat: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] encoder output, [B, Q, 2] crop (x, y) -> [B, Q, 2] the predicted crop z
        of the front and back surface there (``depth_prior`` nets)."""
        if not self.depth_prior:
            raise ValueError("surface_depths: this net has no depth prior (NetConfig.depth_prior)")
        rows = torch.stack([xy[..., 0], -xy[..., 1]], -1)
        return sample_bilinear_rows(feat[:, self.feat:], rows)


class EmbeddedNet(nn.Module):
    """Encoder + point decoder. ``encode(image)`` -> (features, mask); ``query`` -> logits."""

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = PointDecoder(cfg)

    def encode(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(image), image[:, :1]

    def query(self, feats: Tuple[torch.Tensor, torch.Tensor], points: torch.Tensor, exact_z: bool = False) -> torch.Tensor:
        return self.decoder(feats[0], feats[1], points, exact_z=exact_z)

    def forward(self, image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return self.query(self.encode(image), points)


def widen_inputs(state_dict: dict, cfg: NetConfig) -> dict:
    """``state_dict`` of a net with fewer input channels, for a net of ``cfg``: the first
    convolution gets zero weights for the missing channels (appended after the existing ones),
    so the widened net computes exactly what the old one did until training moves them."""
    key = "encoder.down.0.0.weight"
    w = state_dict[key]
    if w.shape[1] > cfg.in_channels:
        raise ValueError(f"the weights read {w.shape[1]} input channels, the config only {cfg.in_channels}")
    if w.shape[1] == cfg.in_channels:
        return dict(state_dict)
    extra = w.new_zeros(w.shape[0], cfg.in_channels - w.shape[1], *w.shape[2:])
    return {**state_dict, key: torch.cat([w, extra], 1)}


GROWABLE = ("rgb", "shading", "body", "depth_prior")
"""NetConfig switches a net can gain from weights trained without them (``grow_state_dict``)"""


def grow_state_dict(state_dict: dict, src: NetConfig, net: "EmbeddedNet") -> dict:
    """``state_dict`` of a net of config ``src`` as a state dict for ``net``, whose config may add
    ``GROWABLE`` switches: new input channels start at zero weights (``widen_inputs``), the depth
    head's two outputs and the decoder's depth-prior parameters keep ``net``'s initial values.
    Everything else is copied. ValueError when ``net`` differs in anything else or drops a switch."""
    mine, theirs = net.cfg.to_json(), src.to_json()
    differ = sorted(k for k in mine if k not in GROWABLE and mine[k] != theirs.get(k))
    dropped = sorted(k for k in GROWABLE if theirs.get(k) and not mine[k])
    if differ or dropped:
        raise ValueError(f"its architecture differs in {', '.join(differ + dropped)}")
    if src.in_channels > net.cfg.in_channels:
        raise ValueError(f"the weights read {src.in_channels} input channels, the net {net.cfg.in_channels}")
    sd = widen_inputs(state_dict, net.cfg)
    if src.rgb != net.cfg.rgb or (src.shading != net.cfg.shading and src.body != net.cfg.body):
        # channels are appended in config order (mask, rgb, shading, body): widening at the end is
        # only right when one switch is added, and it is the last present one
        order = [k for k in ("rgb", "shading", "body") if getattr(net.cfg, k) and not getattr(src, k)]
        if len(order) > 1 or (order and order[0] == "rgb" and (net.cfg.shading or net.cfg.body)) or \
                (order and order[0] == "shading" and net.cfg.body):
            raise ValueError(f"cannot add {', '.join(order)} at once in front of existing channels")
    out = {}
    for key, value in net.state_dict().items():
        have = sd.get(key)
        if have is not None and have.shape == value.shape:
            out[key] = have
        elif have is not None and key.startswith("encoder.head.") and have.shape[0] < value.shape[0]:
            out[key] = torch.cat([have, value[have.shape[0]:]], 0)  # the new depth outputs keep their init
        elif have is None and key.startswith("decoder.") and net.cfg.depth_prior and not src.depth_prior:
            out[key] = value
        else:
            raise ValueError(f"{key}: {'missing' if have is None else list(have.shape)} in the weights, "
                             f"{list(value.shape)} in the net")
    return out


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
