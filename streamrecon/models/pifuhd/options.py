"""Sizes and switches of our PIFuHD, read from a checkpoint.

The official ``pifuhd.pt`` stores the fine level's options as ``opt`` and the coarse level's as
``opt_netG`` (``argparse.Namespace`` objects produced by the reference's ``lib/options.py``). The
normal nets' sizes are hard-coded in the reference and stored nowhere, so they are inferred from
the state-dict shapes (``infer_normal_net_config``).

Everything here is a frozen dataclass; ``release_options()`` gives the released model's values
(used to build the full-size model on the meta device in tests).
"""
from __future__ import annotations

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


def _get(ns: Any, name: str, default: Any = None, required: bool = False) -> Any:
    if isinstance(ns, Mapping):
        if name in ns:
            return ns[name]
    elif hasattr(ns, name):
        return getattr(ns, name)
    if required:
        raise ValueError(f"option '{name}' is missing")
    return default


def _ints(v: Any) -> Tuple[int, ...]:
    return tuple(int(x) for x in v)


def options_from_checkpoint(opt: Any, opt_netG: Any, state_dict: Mapping[str, Any]) -> PifuhdOptions:
    """Build ``PifuhdOptions`` from the checkpoint's ``opt`` (fine), ``opt_netG`` (coarse)
    (Namespaces or dicts) and its state dict (normal-net sizes). Missing non-size options take
    the reference's ``lib/options.py`` defaults. Raises ``ValueError`` naming a missing or bad
    option."""

    front_used = bool(_get(opt_netG, "use_front_normal", False))
    back_used = bool(_get(opt_netG, "use_back_normal", False))
    coarse = CoarseOptions(
        num_stack=int(_get(opt_netG, "num_stack", required=True)),
        hg_depth=int(_get(opt_netG, "hg_depth", required=True)),
        hg_dim=int(_get(opt_netG, "hg_dim", required=True)),
        hg_down=str(_get(opt_netG, "hg_down", "ave_pool")),
        norm=str(_get(opt_netG, "norm", "batch")),
        mlp_norm=str(_get(opt_netG, "mlp_norm", "group")),
        mlp_dim=_ints(_get(opt_netG, "mlp_dim", required=True)),
        mlp_res_layers=_ints(_get(opt_netG, "mlp_res_layers", ())),
        merge_layer=int(_get(opt_netG, "merge_layer", -1)),
        use_front_normal=front_used,
        use_back_normal=back_used,
        load_size=int(_get(opt_netG, "loadSize", 512)),
        z_size=float(_get(opt_netG, "z_size", 200.0)),
    )
    fine = FineOptions(
        num_stack=int(_get(opt, "num_stack", required=True)),
        hg_depth=int(_get(opt, "hg_depth", required=True)),
        hg_dim=int(_get(opt, "hg_dim", required=True)),
        norm=str(_get(opt, "norm", "batch")),
        mlp_norm=str(_get(opt, "mlp_norm", "group")),
        mlp_dim=_ints(_get(opt, "mlp_dim", required=True)),
        mlp_res_layers=_ints(_get(opt, "mlp_res_layers", ())),
        load_size_big=int(_get(opt, "loadSizeBig", 1024)),
    )
    if coarse.hg_down != "ave_pool":
        raise ValueError(f"opt_netG.hg_down={coarse.hg_down!r} is not supported (the released model uses 'ave_pool')")
    front = infer_normal_net_config(state_dict, "netG.netF.") if front_used else None
    back = infer_normal_net_config(state_dict, "netG.netB.") if back_used else None
    return PifuhdOptions(coarse=coarse, fine=fine, front=front, back=back)


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
