"""Public Python API: load a model, reconstruct one image into a mesh.

    import streamrecon
    model = streamrecon.load_model("pifuhd.pt")            # or None: the embedded default model
    mesh = streamrecon.reconstruct_image("photo.jpg", rect=(x, y, w, h), model=model)
    # mesh.vertices [V, 3] float32 in image pixels (frame="image"), mesh.faces [F, 3] int32

Frames (``streamrecon.mesh_types``): ``"image"`` = pixels of the input image (x right, y down,
z = depth in pixels); ``"crop"`` = PIFuHD's normalised crop frame (what the reference writes).
Without a rect the whole image is used as a square crop centred on it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import CheckpointError, UserInputError
from .mesh_types import FRAMES, Mesh

log = logging.getLogger(__name__)

METHODS = ("auto", "reference")
MAX_RESOLUTION = 1024


def load_model(checkpoint: Optional[Union[str, "os.PathLike[str]"]] = None, device: Any = "cpu"):
    """Return an ``ImplicitModel`` on ``device``.

    - ``None``: the embedded default model (``streamrecon.embedded.load_default``).
    - a PIFuHD container (``pifuhd.pt``: ``opt``, ``opt_netG``, ``model_state_dict``): our PIFuHD,
      sizes from the file, loaded safely and strictly (``streamrecon.checkpoint``).
    - any other checkpoint: handed to ``streamrecon.embedded.load_embedded`` when that exists.

    Raises ``CheckpointError`` (one line) for anything that cannot be loaded.
    """
    device = check_device(device)
    if checkpoint is None:
        try:
            from .embedded import load_default
        except ImportError:
            raise CheckpointError(
                "no embedded default model is available in this build; pass --checkpoint PATH (e.g. the official pifuhd.pt)"
            ) from None
        return load_default(device)

    from .checkpoint import is_pifuhd_container, load_checkpoint, model_from_checkpoint, pifuhd_from_object

    path = os.fspath(checkpoint)
    load_embedded = _embedded_loader()
    obj = load_checkpoint(path)  # safe for any kind; its one-line errors cover broken files
    if is_pifuhd_container(obj):
        return model_from_checkpoint(pifuhd_from_object(obj, path), device=device)
    if load_embedded is not None:
        del obj
        return load_embedded(path, device)
    keys = ", ".join(sorted(map(str, obj))[:5]) if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(
        f"{path} is not a PIFuHD checkpoint (found {keys}; expected opt, opt_netG, model_state_dict) and no other model kind is supported in this build"
    )


def check_device(device: Any):
    """``device`` as a ``torch.device``; one-line errors for a malformed name or a CUDA device
    that this torch build / machine does not have."""
    import torch

    from .errors import BackendUnavailableError

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserInputError(f"device {device!r}: not a torch device name ({exc}); use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r}: no CUDA GPU is available to torch here; use --device cpu")
    return dev


def _embedded_loader():
    import importlib

    try:
        embedded = importlib.import_module(f"{__package__}.embedded")
    except ImportError:
        return None
    return getattr(embedded, "load_embedded", None)


def resolve_image(image_or_path: Any) -> np.ndarray:
    """A path (file) or an array (RGB/RGBA/grey, uint8/uint16) -> uint8 RGB [H, W, 3]."""
    from .preprocess import load_image, to_rgb

    if isinstance(image_or_path, (str, os.PathLike)):
        return load_image(image_or_path)
    if isinstance(image_or_path, np.ndarray):
        return to_rgb(image_or_path, name="image")
    raise UserInputError(f"image: expected a file path or a numpy array, got {type(image_or_path).__name__}")


def resolve_rect(rect: Any, height: int, width: int, person: int = 0) -> tuple:
    """None -> the whole image as a centred square; a path -> line ``person`` of that rect file;
    4 numbers -> rounded to integers."""
    from .preprocess import check_rect, default_rect, read_rect_file

    if rect is None:
        return default_rect(height, width)
    if isinstance(rect, (str, os.PathLike)):
        rects = read_rect_file(rect)
        if not 0 <= person < len(rects):
            raise UserInputError(f"person {person}: the rect file {os.fspath(rect)} has {len(rects)} rect(s) (use 0..{len(rects) - 1})")
        return rects[person]
    return check_rect(list(rect))


def reconstruct_image(image_or_path: Any, rect: Optional[Union[Sequence[float], str, "os.PathLike[str]"]] = None,
                      model: Any = None, resolution: int = 256, frame: str = "image",
                      method: str = "auto") -> Mesh:
    """Reconstruct the person in one image.

    - ``image_or_path``: image file, or array [H, W, 3] RGB / [H, W, 4] RGBA / [H, W] grey.
    - ``rect``: (x, y, w, h) crop in image pixels (square for PIFuHD; may extend beyond the
      image), a rect file (``x y w h`` per line, first line used), or None for the whole image
      as a centred square crop.
    - ``model``: an ``ImplicitModel`` (``load_model``), a checkpoint path, or None (embedded).
    - ``resolution``: marching-cubes grid points per axis.
    - ``frame``: ``"image"`` (pixels of the input) or ``"crop"`` (reference's normalised frame).
    - ``method``: ``"auto"`` = the fast reconstruction (``streamrecon.reconstruction``) when
      present, else the reference path; ``"reference"`` = the reference's grid, octree and
      marching cubes step for step (``streamrecon.pifuhd.reference_recon``).
    """
    if frame not in FRAMES:
        raise UserInputError(f"frame: expected one of {FRAMES}, got {frame!r}")
    if method not in METHODS:
        raise UserInputError(f"method: expected one of {METHODS}, got {method!r}")
    if not isinstance(resolution, (int, np.integer)) or not 2 <= int(resolution) <= MAX_RESOLUTION:
        raise UserInputError(f"resolution: expected an integer in [2, {MAX_RESOLUTION}], got {resolution!r}")
    from .resources import check_recon_memory

    # refused up front (ResourceError with the estimate) rather than dying mid-octree
    check_recon_memory(int(resolution), "dense" if method == "reference" else "octree")
    image = resolve_image(image_or_path)
    r = resolve_rect(rect, image.shape[0], image.shape[1])
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    mesh = _reconstruct(model, image, r, int(resolution), method)
    if mesh.rect is None:
        mesh.rect = tuple(r)
    if frame == "image":
        from .recon_stage import crop_to_image

        mesh = crop_to_image(mesh, r)
    return mesh


def _reconstruct(model: Any, image: np.ndarray, rect: tuple, resolution: int, method: str) -> Mesh:
    if method == "auto":
        try:
            from .reconstruction import ReconConfig, reconstruct_person
        except ImportError as exc:
            log.info("fast reconstruction unavailable (%s); using the reference path", exc)
        else:
            try:
                return reconstruct_person(model, image, rect, None, _recon_config(ReconConfig, resolution))
            except ImportError as exc:  # a part of the fast path missing from this build
                log.warning("fast reconstruction unavailable (%s); using the reference path", exc)
    from .pifuhd.reference_recon import ReferenceReconConfig, reconstruct_reference

    init = 64
    if resolution < init:
        raise UserInputError(f"resolution: the reference octree starts at {init} points per axis; use --resolution >= {init}")
    features = model.encode(image, rect, None)
    return reconstruct_reference(model, features, ReferenceReconConfig(resolution=resolution, init_resolution=init))


def _recon_config(cls: Any, resolution: int) -> Any:
    from dataclasses import fields

    names = {f.name for f in fields(cls)}
    kw = {"resolution": resolution, "frame": "crop"}  # the frame is converted by the caller
    return cls(**{k: v for k, v in kw.items() if k in names})


def write_mesh_file(mesh: Mesh, out: Union[str, "os.PathLike[str]"]) -> Path:
    """Write ``mesh`` (OBJ or PLY by suffix) atomically, creating the folder."""
    from .meshio import write_mesh

    out = Path(out)
    if out.suffix.lower() not in (".obj", ".ply"):
        raise UserInputError(f"--out {out}: use a .obj or .ply file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_mesh(mesh, out)
