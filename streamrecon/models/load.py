"""Which model a checkpoint holds, loaded safely: ``load_model(None)`` is the embedded default
model, a PIFuHD container (``opt``, ``opt_netG``, ``model_state_dict``) is our PIFuHD, an
embedded-format file is an embedded model. Every file goes through the safe loader
(``checkpoint.load_checkpoint``: ``weights_only``, allow-listed types) before its kind is read.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

from ..errors import BackendUnavailableError, UserInputError


NAMED = ("default", "mask-only", "body")
"""models shipped in the package: ``default`` (the embedded model: ``weights/default.pt``),
``mask-only`` (the embedded model that reads the person mask without the fitted body) and ``body``
(the embedded model that reads the mask and the fitted body)"""


def load_named(name: str, device: Any = "cpu"):
    """A model shipped in the package by name (``NAMED``)."""
    from . import embedded

    if name not in NAMED:
        raise UserInputError(f"--model: expected one of {', '.join(NAMED)}, got {name!r}")
    device = check_device(device)
    return embedded.load_default(device) if name == "default" else embedded.load_shipped(name, device)


def load_model(checkpoint: Optional[Union[str, "os.PathLike[str]"]] = None, device: Any = "cpu"):
    """Return an ``ImplicitModel`` on ``device``.

    - ``None``: the embedded default model shipped in the package (``embedded.load_default``).
    - a PIFuHD container (``pifuhd.pt``): our PIFuHD, sizes from the file, loaded strictly.
    - anything else: an embedded-format checkpoint (``embedded.load_embedded``).

    Raises ``CheckpointError`` (one line) for anything that cannot be loaded.
    """
    from . import embedded
    from .checkpoint import is_pifuhd_container, load_checkpoint, model_from_checkpoint, pifuhd_from_object

    device = check_device(device)
    if checkpoint is None:
        return embedded.load_default(device)
    path = os.fspath(checkpoint)
    obj = load_checkpoint(path)  # safe for any kind; its one-line errors cover broken files
    if is_pifuhd_container(obj):
        return model_from_checkpoint(pifuhd_from_object(obj, path), device=device)
    del obj
    return embedded.load_embedded(path, device)


def check_device(device: Any):
    """``device`` as a ``torch.device``; one-line errors for a malformed name or a CUDA device
    that this torch build / machine does not have."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserInputError(f"device {device!r}: not a torch device name ({exc}); use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r}: no CUDA GPU is available to torch here; use --device cpu")
    return dev
