"""Safe, strict checkpoint loading.

- Always ``torch.load(..., weights_only=True, map_location="cpu")``: the restricted unpickler
  builds tensors and plain containers only; ``argparse.Namespace`` (the options inside
  ``pifuhd.pt``) is the one extra class allowed, through a scoped ``safe_globals`` context (no
  global state is changed). A pickle that tries to import or call anything else is refused
  before it can run.
- Both serializers load: the legacy (non-zip, PyTorch <= 1.5, what ``pifuhd.pt`` uses) and the
  zip format. Tensors saved on CUDA are mapped to the CPU.
- Every failure (missing, empty, truncated, wrong kind, hostile) is one ``CheckpointError`` line
  saying what is wrong and what to do.

``load_checkpoint(path)`` returns the raw container (dict); ``load_pifuhd_checkpoint(path)``
checks it is a PIFuHD container (``opt``, ``opt_netG``, ``model_state_dict``; other top-level
keys are ignored) and normalises its state dict (``module.`` prefixes, the ConvBlock alias pair
``bn4`` / ``downsample.0`` when only one of the two was saved).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Union

from ..errors import CheckpointError

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
PIFUHD_KEYS = ("opt", "opt_netG", "model_state_dict")
_ALLOWED_GLOBALS = (argparse.Namespace,)


def _first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[:1])[:200]


def load_checkpoint(path: PathLike) -> Any:
    """Load a torch checkpoint safely (see the module docstring). Returns what was saved."""
    import pickle

    import torch

    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path} (check the path; download pifuhd.pt yourself, it is not fetched)")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} is not a file")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the download or copy failed; fetch it again")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (file starts with {head!r}, expected a torch.save file such as pifuhd.pt)"
        )
    try:
        with torch.serialization.safe_globals(list(_ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
        if m:
            raise CheckpointError(
                f"refused checkpoint {path}: it asks to import {m.group(1)}, which a weights-only load does not "
                "allow (it may try to run code); nothing in it was executed. Use the official pifuhd.pt or a file you trust"
            ) from None
        if "truncated" in msg:
            raise CheckpointError(f"checkpoint {path} is truncated ({size} bytes): the download or copy was cut short; fetch it again") from None
        raise CheckpointError(
            f"refused checkpoint {path}: not a plain PyTorch checkpoint of tensors and options "
            f"({_weights_only_reason(msg)}); nothing in it was executed"
        ) from None
    except (EOFError, MemoryError):
        raise CheckpointError(f"checkpoint {path} is truncated ({size} bytes): the download or copy was cut short; fetch it again") from None
    except RuntimeError as exc:
        msg = str(exc)
        if "unexpected EOF" in msg:
            raise CheckpointError(f"checkpoint {path} is truncated ({size} bytes): the download or copy was cut short; fetch it again") from None
        if "zip archive" in msg or "central directory" in msg or "PytorchStreamReader" in msg:
            raise CheckpointError(
                f"checkpoint {path} is damaged (zip archive unreadable, probably truncated: {size} bytes); fetch it again"
            ) from None
        if "inline_container" in msg or "archive" in msg:
            raise CheckpointError(f"{path} is a zip archive but not a PyTorch checkpoint; expected a torch.save file such as pifuhd.pt") from None
        raise CheckpointError(f"cannot load checkpoint {path}: {_first_line(msg)}") from None
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError,
            AssertionError, OverflowError, RecursionError) as exc:
        # AssertionError: torch's legacy loader asserts on a damaged storage table (bit flips)
        raise CheckpointError(
            f"{path} is not a valid PyTorch checkpoint ({type(exc).__name__}: {_first_line(str(exc))}); expected a torch.save file such as pifuhd.pt"
        ) from None


def _weights_only_reason(msg: str) -> str:
    m = re.search(r"WeightsUnpickler error: \s*(.+?)(?:\n\n|Check the documentation|$)", msg, re.S)
    return _first_line(m.group(1)) if m else "unsupported pickle content"


def is_pifuhd_container(obj: Any) -> bool:
    """True for the ``pifuhd.pt`` container: a dict with ``opt``, ``opt_netG``, ``model_state_dict``."""
    return isinstance(obj, Mapping) and all(k in obj for k in PIFUHD_KEYS)


@dataclass
class PifuhdCheckpoint:
    """A loaded PIFuHD container: ``opt`` (fine options) and ``opt_netG`` (coarse options) as
    read from the file (Namespace or dict), ``state_dict`` {key: CPU tensor} normalised."""

    opt: Any
    opt_netG: Any
    state_dict: Dict[str, Any]
    path: str = ""


def normalise_state_dict(sd: Mapping[str, Any]) -> Dict[str, Any]:
    """Strip a DataParallel ``module.`` prefix and complete the ConvBlock alias pair (``bn4.*``
    and ``downsample.0.*`` are one tensor; a file that saved only one of them still loads)."""
    import torch

    out: Dict[str, Any] = {}
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"model_state_dict entry {k!r} is not a tensor (got {type(v).__name__}): the checkpoint is not a PIFuHD state dict")
        out[k[7:] if k.startswith("module.") else k] = v
    for k in list(out):
        if ".downsample.0." in k:
            twin = k.replace(".downsample.0.", ".bn4.")
        elif ".bn4." in k and k.split(".bn4.")[0] + ".downsample.2.weight" in out:
            twin = k.replace(".bn4.", ".downsample.0.")  # only blocks that change width have one
        else:
            continue
        out.setdefault(twin, out[k])
    return out


def load_pifuhd_checkpoint(path: PathLike) -> PifuhdCheckpoint:
    """Load and check a PIFuHD container (see the module docstring)."""
    obj = load_checkpoint(path)
    return pifuhd_from_object(obj, os.fspath(path))


def pifuhd_from_object(obj: Any, path: str = "checkpoint") -> PifuhdCheckpoint:
    """Check an already loaded container and normalise its state dict."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a PIFuHD checkpoint (expected a dict with {', '.join(PIFUHD_KEYS)})")
    missing = [k for k in PIFUHD_KEYS if k not in obj]
    if missing:
        raise CheckpointError(
            f"{path} is not a PIFuHD checkpoint: missing {', '.join(missing)} (expected the pifuhd.pt container with {', '.join(PIFUHD_KEYS)})"
        )
    extra = sorted(str(k) for k in obj if k not in PIFUHD_KEYS)
    if extra:
        log.info("ignoring top-level checkpoint keys: %s", ", ".join(extra))
    sd = obj["model_state_dict"]
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path}: model_state_dict is a {type(sd).__name__}, expected a dict of tensors")
    return PifuhdCheckpoint(opt=obj["opt"], opt_netG=obj["opt_netG"], state_dict=normalise_state_dict(sd), path=path)


def load_pifuhd_model(path: PathLike, device: Any = "cpu", chunk: int | None = None):
    """Checkpoint file -> ready ``PifuhdModel`` on ``device``. Sizes come from the checkpoint's
    options and weight shapes; the state dict must match the built network exactly (strict)."""
    ck = load_pifuhd_checkpoint(path)
    return model_from_checkpoint(ck, device=device, chunk=chunk)


def model_from_checkpoint(ck: PifuhdCheckpoint, device: Any = "cpu", chunk: int | None = None):
    import torch

    from .pifuhd.model import DEFAULT_CHUNK, PifuhdModel, build_network
    from .pifuhd.options import implied_state_values, options_from_checkpoint

    try:  # types and ranges of every option, before anything is built
        options = options_from_checkpoint(ck.opt, ck.opt_netG, ck.state_dict)
    except ValueError as exc:
        raise CheckpointError(f"{ck.path}: bad model options: {exc}; the file is not a PIFuHD checkpoint or its options were edited") from None
    # the size the options imply, against what the file holds: options that describe a network
    # far larger than the file's weights are refused before it is built (a near miss is left to
    # the strict key-by-key comparison below, whose message names the keys)
    need = implied_state_values(options)
    have = sum(v.numel() for k, v in ck.state_dict.items() if not k.startswith(("netG.netF.", "netG.netB.")))
    if need > 2 * have:
        raise CheckpointError(
            f"{ck.path}: its options describe a network of {need:,} weights (without the normal nets) but the file holds "
            f"{have:,}; the file is not a PIFuHD checkpoint or its options were edited")
    try:
        net = build_network(options, device="meta")
    except ValueError as exc:
        raise CheckpointError(f"{ck.path}: unsupported model options: {exc}") from None
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ck.state_dict.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    wrong = [f"{k} {list(got[k])} (expected {list(expected[k])})" for k in expected if k in got and got[k] != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} with wrong shape (e.g. {wrong[0]})")
        raise CheckpointError(
            f"{ck.path}: weights do not match the network its options describe: {'; '.join(parts)}; the file is not a PIFuHD checkpoint or its options were edited"
        )
    net = net.to_empty(device=device)
    with torch.no_grad():
        net.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in ck.state_dict.items()}, strict=True)
    return PifuhdModel(net, options, device=device, chunk=chunk or DEFAULT_CHUNK)
