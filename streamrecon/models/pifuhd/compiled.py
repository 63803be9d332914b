"""PIFuHD's sub-networks through ``streamrecon.backends`` runners (``PifuhdModel.compile``).

Five sub-networks, each compiled on its own (own engine, own cache entry keyed by the weights'
sha256 and the sub-network name):

==============  ==========================================  =====================================
name            inputs -> output                            what
==============  ==========================================  =====================================
normal_front    img [1, 3, S, S] -> [1, 3, S, S]            pix2pixHD front normal net
normal_back     img [1, 3, S, S] -> [1, 3, S, S]            pix2pixHD back normal net
coarse_filter   img, nmls [1, 6, S, S] -> [1, C, S/4, S/4]  coarse hourglass (last stack)
fine_filter     img_big [1, 3, B, B], nmls -> [1, c, B/2..] fine hourglass (normals upsampled)
query_head      coarse_in [C+1, N], fine_in [c, N] -> [N]   coarse MLP to phi, then fine MLP
==============  ==========================================  =====================================

The point sampling (``grid_sample``) and the in-image mask stay in torch around ``query_head``;
N (points per batch) is a dynamic axis. ``auto`` on CPU picks per sub-network what measured
fastest on a 2-core AMD EPYC (benchmarks/README.md): ONNX Runtime for the normal nets (1.8x less
CPU time than PyTorch eager) and the query MLPs (2.6x less: MLAS's GEMM runs near peak on this
CPU where PyTorch's addmm does not), eager for the filters (ORT was no faster there;
channels-last for the fine filter: ~9% less).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Dict, Optional

import torch
from torch import nn

log = logging.getLogger(__name__)

SUBNETS = ("normal_front", "normal_back", "coarse_filter", "fine_filter", "query_head")

CPU_AUTO = {
    "normal_front": ("onnxruntime", "eager"),
    "normal_back": ("onnxruntime", "eager"),
    "coarse_filter": ("eager",),
    "fine_filter": ("eager",),
    "query_head": ("onnxruntime", "eager"),
}
"""``auto`` on CPU: preferred backends per sub-network, first available wins (measured, see the
module docstring)."""

CHANNELS_LAST = ("fine_filter",)
"""sub-networks run in channels-last layout under eager on CPU (measured faster there)."""


class _CoarseFilter(nn.Module):
    """``CoarseNet.filter`` holding only the hourglass (not the normal nets it sits beside)."""

    def __init__(self, coarse) -> None:
        super().__init__()
        self.image_filter = coarse.image_filter
        self._filter = type(coarse).filter  # the plain function; it uses only self.image_filter

    def forward(self, img: torch.Tensor, nmls: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._filter(self, img, nmls)


class _FineFilter(nn.Module):
    """``FineNet.filter`` holding only the fine hourglass."""

    def __init__(self, fine) -> None:
        super().__init__()
        self.image_filter = fine.image_filter
        self.opt = fine.opt
        self._filter = type(fine).filter  # the plain function; it uses self.image_filter and self.opt

    def forward(self, img_big: torch.Tensor, nmls: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._filter(self, img_big, nmls)


class QueryHead(nn.Module):
    """Both MLPs for one batch of points: coarse_in [C_coarse + 1, N] (sampled coarse features
    and the depth feature), fine_in [C_fine, N] (sampled fine features) -> fine occupancy [N]
    (sigmoid, before the in-image mask)."""

    def __init__(self, coarse_mlp, fine_mlp) -> None:
        super().__init__()
        self.coarse_mlp = coarse_mlp
        self.fine_mlp = fine_mlp

    def forward(self, coarse_in: torch.Tensor, fine_in: torch.Tensor) -> torch.Tensor:
        _, phi = self.coarse_mlp(coarse_in, phi_only=True)
        occ, _ = self.fine_mlp(torch.cat([fine_in, phi], 0))
        return occ[0]


def weights_sha256(net: nn.Module) -> str:
    """sha256 over the state dict (sorted keys, names, dtypes, shapes and bytes): the identity of
    the weights when the checkpoint file's hash is not known."""
    h = hashlib.sha256()
    for key, t in sorted(net.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def subnet_modules(net) -> Dict[str, nn.Module]:
    """The sub-networks of a ``FineNet`` as modules (sharing its parameters)."""
    coarse = net.netG
    mods: Dict[str, nn.Module] = {}
    if coarse.netF is not None:
        mods["normal_front"] = coarse.netF
    if coarse.netB is not None:
        mods["normal_back"] = coarse.netB
    mods["coarse_filter"] = _CoarseFilter(coarse)
    mods["fine_filter"] = _FineFilter(net)
    mods["query_head"] = QueryHead(coarse.mlp, net.mlp)
    return mods


def example_inputs(net, options, device) -> Dict[str, tuple]:
    """Inputs with the shapes each sub-network will see (zeros; N = 1024 query points)."""
    s, b = options.coarse.load_size, options.fine.load_size_big
    has_nml = net.netG.netF is not None or net.netG.netB is not None
    n_nml = 3 * int(net.netG.netF is not None) + 3 * int(net.netG.netB is not None)
    img = torch.zeros(1, 3, s, s, device=device)
    img_big = torch.zeros(1, 3, b, b, device=device)
    nmls = torch.zeros(1, n_nml, s, s, device=device) if has_nml else None
    c_coarse = net.netG.mlp.filters[0].weight.shape[1]
    c_fine = net.mlp.filters[0].weight.shape[1] - net.netG.mlp.filters[net.netG.mlp.merge_layer].weight.shape[0]
    n = 1024
    return {
        "normal_front": (img,),
        "normal_back": (img,),
        "coarse_filter": (img, nmls) if has_nml else (img,),
        "fine_filter": (img_big, nmls) if has_nml else (img_big,),
        "query_head": (torch.zeros(c_coarse, n, device=device), torch.zeros(c_fine, n, device=device)),
    }


def pick_backend(subnet: str, cfg) -> str:
    """The concrete backend for one sub-network under ``cfg`` (``auto`` resolved per sub-network on
    CPU from ``CPU_AUTO``; elsewhere ``streamrecon.backends.resolve_backend``)."""
    from ...backends import available_backends, resolve_backend

    if cfg.backend == "auto" and not cfg.device.startswith("cuda"):
        avail = available_backends(cfg.device)
        for name in CPU_AUTO[subnet]:
            if avail.get(name) is None:
                return name
        return "eager"
    return resolve_backend(cfg)


RELEASABLE = ("normal_front", "normal_back")
"""sub-networks whose PyTorch weights nothing else uses (the MLPs and filters are shared or small)."""


def compile_subnets(model, cfg, cache=None, release_weights: bool = True) -> Dict[str, object]:
    """Runners for every sub-network of ``model`` (a ``PifuhdModel``) under ``cfg``. Engines are
    built or taken from the cache. Returns {name: Runner}.

    ``release_weights``: once ONNX Runtime or TensorRT holds a normal net, its PyTorch copy (0.73 GB
    each at full size) is moved to the meta device (for ONNX Runtime before the engine is loaded,
    so the two copies never coexist); those nets then run only through their
    runners (``model.released`` names them; compiling them again for eager/compile is refused)."""
    from ...backends import compile_module

    net = model.net
    if model.weights_id is None:
        model.weights_id = "sha256:" + weights_sha256(net)
    mods = subnet_modules(net)
    examples = example_inputs(net, model.options, model.device)
    runners = {}
    released = model.released = getattr(model, "released", set())  # attached first: a failed load still says what is gone
    for name, mod in mods.items():
        backend = pick_backend(name, cfg)
        if name in released and backend in ("eager", "compile"):
            raise ValueError(f"{name}: its PyTorch weights were released by an earlier compile; reload the model")
        sub_cfg = replace(cfg, backend=backend)
        cl = backend == "eager" and name in CHANNELS_LAST and not cfg.device.startswith("cuda")
        if cl:
            mod = mod.to(memory_format=torch.channels_last)
        dynamic = {0: [1], 1: [1]} if name == "query_head" else None
        release = release_weights and name in RELEASABLE and backend in ("onnxruntime", "tensorrt") and name not in released
        # ONNX Runtime: the PyTorch copy is freed before the engine is loaded (peak = one copy)
        runner = compile_module(mod, examples[name], sub_cfg, f"pifuhd:{model.weights_id}:{name}",
                                dynamic=dynamic, cache=cache,
                                before_load=(lambda m=mod, n=name: (m.to("meta"), released.add(n))) if release else None)
        if cl:
            runner = _ChannelsLast(runner)
        if release:
            mod.to("meta")  # TensorRT: after its build (a no-op when already released)
            released.add(name)
        runners[name] = runner
        log.info("pifuhd %s: backend %s", name, backend)
    model.released = released
    return runners


class _ChannelsLast:
    """Runner wrapper feeding 4-d inputs in channels-last layout (outputs returned contiguous)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.backend = runner.backend
        self.info = runner.info

    def __call__(self, *xs):
        xs = [x.contiguous(memory_format=torch.channels_last) if x is not None and x.ndim == 4 else x for x in xs]
        return self.runner(*xs).contiguous()
