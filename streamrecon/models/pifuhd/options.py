"""Sizes and switches of our PIFuHD, read from a checkpoint.

The official ``pifuhd.pt`` stores the fine level's options as ``opt`` and the coarse level's as
``opt_netG`` (``argparse.Namespace`` objects produced by the reference's ``lib/options.py``). The
normal nets' sizes are hard-coded in the reference and stored nowhere, so they are inferred from
the state-dict shapes (``infer_normal_net_config``).

Everything here is a frozen dataclass; ``release_options()`` gives the released model's values
(used to build the full-size model on the meta device in tests).
"""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple


@dataclass(frozen=True)
class NormalNetOptions:
    """pix2pixHD global generator sizes (not in the options; inferred from weight shapes)."""

    ngf: int = 64
    """channels of the first convolution (doubled by each downsampling)."""
    n_downsampling: int = 4
    """number of stride-2 convolutions (and of transposed convolutions)."""
    n_blocks: int = 9
    """residual blocks at the bottleneck."""
    input_nc: int = 3
    """input channels (RGB)."""
    output_nc: int = 3
    """output channels (a normal map)."""


@dataclass(frozen=True)
class CoarseOptions:
    """Coarse level (reference ``HGPIFuNetwNML``), from ``opt_netG``."""

    num_stack: int = 4
    """hourglass stacks; only the last stack's features are used at inference."""
    hg_depth: int = 2
    """levels of each hourglass."""
    hg_dim: int = 256
    """channels of the image feature map handed to the MLP."""
    hg_down: str = "ave_pool"
    """stem downsampling: 'ave_pool' (feature map = input / 4)."""
    norm: str = "group"
    """image-filter normalisation: 'group' or 'batch'."""
    mlp_norm: str = "none"
    """MLP normalisation: 'none' (points independent), 'group' or 'batch'."""
    mlp_dim: Tuple[int, ...] = (257, 1024, 512, 256, 128, 1)
    """MLP widths including the input (hg_dim + 1 for the depth feature)."""
    mlp_res_layers: Tuple[int, ...] = (2, 3, 4)
    """MLP layers that also receive the input features."""
    merge_layer: int = 2
    """MLP layer whose activation (phi) is handed to the fine level."""
    use_front_normal: bool = True
    """feed a predicted front normal map to the filter."""
    use_back_normal: bool = True
    """feed a predicted back normal map to the filter."""
    load_size: int = 512
    """input image size of the coarse level (``loadSize``)."""
    z_size: float = 200.0
    """depth normalisation: depth feature = z * (load_size // 2) / z_size."""


@dataclass(frozen=True)
class FineOptions:
    """Fine level (reference ``HGPIFuMRNet``), from ``opt``."""

    num_stack: int = 1
    """hourglass stacks (last one used)."""
    hg_depth: int = 4
    """levels of the hourglass."""
    hg_dim: int = 16
    """channels of the fine feature map."""
    norm: str = "group"
    """image-filter normalisation: 'group' or 'batch'."""
    mlp_norm: str = "none"
    """MLP normalisation: 'none', 'group' or 'batch'."""
    mlp_dim: Tuple[int, ...] = (272, 512, 256, 128, 1)
    """MLP widths including the input (hg_dim + coarse phi channels)."""
    mlp_res_layers: Tuple[int, ...] = (1, 2)
    """MLP layers that also receive the input features."""
    load_size_big: int = 1024
    """input image size of the fine level (``loadSizeBig``)."""


@dataclass(frozen=True)
class PifuhdOptions:
    """Both levels and the two normal nets (None when the level does not use that normal)."""

    coarse: CoarseOptions = CoarseOptions()
    """coarse level options."""
    fine: FineOptions = FineOptions()
    """fine level options."""
    front: Optional[NormalNetOptions] = NormalNetOptions()
    """front normal net sizes, or None."""
    back: Optional[NormalNetOptions] = NormalNetOptions()
    """back normal net sizes, or None."""


def release_options() -> PifuhdOptions:
    """The released ``pifuhd.pt`` model's options (see ../shared/README.md)."""
    return PifuhdOptions()


# Bounds of the options read from a checkpoint. They are checked before anything is built: a
# 1.6 KB file claiming num_stack=10**7 made the loader build modules for minutes and past 1 GB, and
# hg_depth=10**5 overflowed the recursion of ``HourGlass``. The released model uses 4 stacks of
# depth 2 (coarse) and 1 of depth 4 (fine), MLPs up to 1024 wide and 6 layers.
MAX_STACKS = 8
MAX_HG_DIM = 4096
MAX_MLP_LAYERS = 16
MAX_MLP_WIDTH = 8192
LOAD_SIZES = (32, 4096)
NORMS = ("group", "batch")
MLP_NORMS = ("none", "group", "batch")


def _get(ns: Any, name: str, default: Any = None, required: bool = False) -> Any:
    if isinstance(ns, Mapping):
        if name in ns:
            return ns[name]
    elif hasattr(ns, name):
        return getattr(ns, name)
    if required:
        raise ValueError(f"option '{name}' is missing")
    return default


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(ns: Any, level: str, name: str, lo: int, hi: int, default: Any = None, required: bool = False) -> int:
    """An integer option in [lo, hi]; ``ValueError`` naming it otherwise (a list, None, a bool,
    inf, a float with a fraction, a string)."""
    v = _get(ns, name, default, required)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"{level}.{name}={_show(v)}: expected an integer in [{lo}, {hi}]")
    return v


def _ints(ns: Any, level: str, name: str, lo: int, hi: int, min_len: int, max_len: int,
          default: Any = None, required: bool = False) -> Tuple[int, ...]:
    """A list/tuple of ``min_len``..``max_len`` integers each in [lo, hi]."""
    v = _get(ns, name, default, required)
    if not isinstance(v, (list, tuple)) or not min_len <= len(v) <= max_len:
        raise ValueError(f"{level}.{name}={_show(v)}: expected a list of {min_len} to {max_len} integers")
    out = []
    for x in v:
        if isinstance(x, float) and math.isfinite(x) and x.is_integer():
            x = int(x)
        if not isinstance(x, int) or isinstance(x, bool) or not lo <= x <= hi:
            raise ValueError(f"{level}.{name}={_show(v)}: expected integers in [{lo}, {hi}], got {_show(x)}")
        out.append(x)
    return tuple(out)


def _choice(ns: Any, level: str, name: str, choices: Tuple[str, ...], default: str) -> str:
    v = _get(ns, name, default)
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{level}.{name}={_show(v)}: expected one of {choices}")
    return v


def _flag(ns: Any, level: str, name: str) -> bool:
    v = _get(ns, name, False)
    if v is None or (isinstance(v, int) and v in (0, 1)):  # bool is an int
        return bool(v)
    raise ValueError(f"{level}.{name}={_show(v)}: expected True or False")


def _depth(ns: Any, level: str, side: int) -> int:
    """``hg_depth``: each level halves the feature map of side ``side``, which must stay whole."""
    most = max(1, int(side).bit_length() - 1)
    depth = _int(ns, level, "hg_depth", 1, min(most, 16), required=True)
    if side % (1 << depth):
        raise ValueError(f"{level}.hg_depth={depth}: the {side}-pixel feature map does not halve {depth} times")
    return depth


def options_from_checkpoint(opt: Any, opt_netG: Any, state_dict: Mapping[str, Any]) -> PifuhdOptions:
    """Build ``PifuhdOptions`` from the checkpoint's ``opt`` (fine), ``opt_netG`` (coarse)
    (Namespaces or dicts) and its state dict (normal-net sizes). Missing non-size options take
    the reference's ``lib/options.py`` defaults. Every option's type and range is checked here,
    before anything is built (see the bounds above). Raises ``ValueError`` naming a missing or bad
    option."""
    for level, ns in (("opt_netG", opt_netG), ("opt", opt)):
        if not isinstance(ns, (Mapping, argparse.Namespace)):
            raise ValueError(f"{level} is a {type(ns).__name__}, expected the options (a Namespace or a dict)")
    g, f = "opt_netG", "opt"
    hg_down = _get(opt_netG, "hg_down", "ave_pool")
    if hg_down != "ave_pool":
        raise ValueError(f"opt_netG.hg_down={_show(hg_down)} is not supported (the released model uses 'ave_pool')")
    load_size = _int(opt_netG, g, "loadSize", *LOAD_SIZES, default=512)
    load_size_big = _int(opt, f, "loadSizeBig", *LOAD_SIZES, default=1024)
    if load_size % 4 or load_size_big % 2:
        raise ValueError(f"opt_netG.loadSize={load_size} / opt.loadSizeBig={load_size_big}: expected multiples of 4 / 2")
    z_size = _get(opt_netG, "z_size", 200.0)
    if not isinstance(z_size, (int, float)) or isinstance(z_size, bool) or not (math.isfinite(z_size) and 0 < z_size <= 1e6):
        raise ValueError(f"opt_netG.z_size={_show(z_size)}: expected a number in (0, 1e6]")
    mlp_g = _ints(opt_netG, g, "mlp_dim", 1, MAX_MLP_WIDTH, 2, MAX_MLP_LAYERS, required=True)
    mlp_f = _ints(opt, f, "mlp_dim", 1, MAX_MLP_WIDTH, 2, MAX_MLP_LAYERS, required=True)
    coarse = CoarseOptions(
        num_stack=_int(opt_netG, g, "num_stack", 1, MAX_STACKS, required=True),
        hg_depth=_depth(opt_netG, g, load_size // 4),
        hg_dim=_int(opt_netG, g, "hg_dim", 1, MAX_HG_DIM, required=True),
        hg_down="ave_pool",
        norm=_choice(opt_netG, g, "norm", NORMS, "batch"),
        mlp_norm=_choice(opt_netG, g, "mlp_norm", MLP_NORMS, "group"),
        mlp_dim=mlp_g,
        mlp_res_layers=_ints(opt_netG, g, "mlp_res_layers", 0, len(mlp_g) - 2, 0, len(mlp_g), default=()),
        merge_layer=_int(opt_netG, g, "merge_layer", -1, len(mlp_g) - 2, default=-1),
        use_front_normal=_flag(opt_netG, g, "use_front_normal"),
        use_back_normal=_flag(opt_netG, g, "use_back_normal"),
        load_size=load_size,
        z_size=float(z_size),
    )
    fine = FineOptions(
        num_stack=_int(opt, f, "num_stack", 1, MAX_STACKS, required=True),
        hg_depth=_depth(opt, f, load_size_big // 2),
        hg_dim=_int(opt, f, "hg_dim", 1, MAX_HG_DIM, required=True),
        norm=_choice(opt, f, "norm", NORMS, "batch"),
        mlp_norm=_choice(opt, f, "mlp_norm", MLP_NORMS, "group"),
        mlp_dim=mlp_f,
        mlp_res_layers=_ints(opt, f, "mlp_res_layers", 0, len(mlp_f) - 2, 0, len(mlp_f), default=()),
        load_size_big=load_size_big,
    )
    front = infer_normal_net_config(state_dict, "netG.netF.") if coarse.use_front_normal else None
    back = infer_normal_net_config(state_dict, "netG.netB.") if coarse.use_back_normal else None
    return PifuhdOptions(coarse=coarse, fine=fine, front=front, back=back)


def _norm_values(kind: str, ch: int) -> int:
    """State-dict values of one norm layer over ``ch`` channels (batch norm adds running stats)."""
    return 2 * ch if kind == "group" else 4 * ch + 1


def _conv_block_values(cin: int, cout: int, norm: str) -> int:
    half, quarter = cout // 2, cout // 4
    n = 9 * (cin * half + half * quarter + quarter * quarter)
    n += _norm_values(norm, cin) * 2 + _norm_values(norm, half) + _norm_values(norm, quarter)
    if cin != cout:  # downsample.0 is bn4 again (a second key), downsample.2 a 1x1 conv
        n += _norm_values(norm, cin) + cin * cout
    return n


def _filter_values(n_stack: int, depth: int, in_ch: int, last_ch: int, norm: str) -> int:
    n = in_ch * 64 * 49 + 64 + _norm_values(norm, 64)
    n += _conv_block_values(64, 128, norm) + _conv_block_values(128, 128, norm) + _conv_block_values(128, 256, norm)
    hourglass = (3 * depth + 1) * _conv_block_values(256, 256, norm)
    per_stack = hourglass + _conv_block_values(256, 256, norm) + (256 * 256 + 256) + _norm_values(norm, 256) + (256 * last_ch + last_ch)
    link = (256 * 256 + 256) + (last_ch * 256 + 256)
    return n + n_stack * per_stack + (n_stack - 1) * link


def _mlp_values(dims: Tuple[int, ...], res_layers: Tuple[int, ...], norm: str) -> int:
    n = 0
    for layer in range(len(dims) - 1):
        cin = dims[layer] + (dims[0] if layer in res_layers else 0)
        n += cin * dims[layer + 1] + dims[layer + 1]
        if layer != len(dims) - 2 and norm != "none":
            n += _norm_values(norm, dims[layer + 1])
    return n


def implied_state_values(opt: PifuhdOptions) -> int:
    """Values (tensor elements) in the state dict of the image filters and MLPs that ``opt``
    describes, alias keys included, the normal nets excluded (their sizes come from the file).
    Arithmetic only: it tells the size of what ``build_network`` would make before it is made."""
    c, f = opt.coarse, opt.fine
    in_ch = 3 + 3 * int(c.use_front_normal) + 3 * int(c.use_back_normal)
    return (_filter_values(c.num_stack, c.hg_depth, in_ch, c.hg_dim, c.norm) + _mlp_values(c.mlp_dim, c.mlp_res_layers, c.mlp_norm)
            + _filter_values(f.num_stack, f.hg_depth, in_ch, f.hg_dim, f.norm) + _mlp_values(f.mlp_dim, f.mlp_res_layers, f.mlp_norm))


_KEY = re.compile(r"^model\.(\d+)\.(conv_block\.\d+\.)?weight$")


def infer_normal_net_config(state_dict: Mapping[str, Any], prefix: str) -> NormalNetOptions:
    """Read ``ngf``, ``n_downsampling`` and ``n_blocks`` of one generator from the shapes of its
    weights under ``prefix`` (e.g. ``"netG.netF."``). Raises ``ValueError`` naming what is missing
    or inconsistent; the caller turns it into a ``CheckpointError``."""
    plain: dict = {}
    blocks = set()
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        m = _KEY.match(key[len(prefix):])
        if not m:
            continue
        idx = int(m.group(1))
        if m.group(2):
            blocks.add(idx)
        else:
            plain[idx] = tuple(value.shape)
    if 1 not in plain or len(plain[1]) != 4:
        raise ValueError(f"no first convolution '{prefix}model.1.weight' [ngf, 3, 7, 7] in the state dict")
    ngf, input_nc = plain[1][0], plain[1][1]
    first_block = min(blocks) if blocks else None
    downs = [i for i in sorted(plain) if i > 1 and (first_block is None or i < first_block)]
    n_down = len(downs)
    if first_block is None:
        # no residual blocks: down- and up-sampling convs are symmetric around the middle
        n_down = (len(plain) - 2) // 2
    n_blocks = len(blocks)
    last = max(plain)
    output_nc = plain[last][0]
    return NormalNetOptions(ngf=ngf, n_downsampling=n_down, n_blocks=n_blocks,
                            input_nc=input_nc, output_nc=output_nc)
