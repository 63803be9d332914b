"""The embedded default model: a small PIFu-style network trained by this project on synthetic
people (``streamrecon.training.synth`` + ``streamrecon.training``), shipped in ``weights/``.

``load_default(device)`` returns it as an ``ImplicitModel``; ``load_embedded(path, device)`` loads
any checkpoint in the same format. Importing this package does not import torch.
"""
from __future__ import annotations


def load_shipped(name: str, device: str = "cpu"):
    from .model import load_shipped as _ls

    return _ls(name, device)


def load_mask_only(device: str = "cpu"):
    from .model import load_mask_only as _lm

    return _lm(device)


def load_default(device: str = "cpu"):
    from .model import load_default as _ld

    return _ld(device)


def load_embedded(path, device: str = "cpu"):
    from .model import load_embedded as _le

    return _le(path, device)
