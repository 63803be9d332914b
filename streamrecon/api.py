"""Public Python API: load a model, reconstruct one image into a mesh.

    import streamrecon
    model = streamrecon.load_model("pifuhd.pt")            # or None: the embedded default model
    mesh = streamrecon.reconstruct_image("photo.jpg", rect=(x, y, w, h), model=model)
    # mesh.vertices [V, 3] float32 in image pixels (frame="image"), mesh.faces [F, 3] int32

Frames (``streamrecon.types``): ``"image"`` = pixels of the input image (x right, y down,
z = depth in pixels); ``"crop"`` = PIFuHD's normalised crop frame (what the reference writes).
Without a rect the whole image is used as a square crop centred on it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import UserInputError
from .mesh.coords import mesh_to_frame
from .models.load import load_model
from .recon import OUTPUT_FRAME, RESOLUTION, ReconConfig, check_resolution, reconstruct_person
from .types import FRAMES, Mesh

__all__ = ["load_model", "reconstruct_image", "resolve_image", "resolve_rect", "write_mesh_file"]

log = logging.getLogger(__name__)

METHODS = ("auto", "reference")


def resolve_image(image_or_path: Any) -> np.ndarray:
    """A path (file) or an array (RGB/RGBA/grey, uint8/uint16) -> uint8 RGB [H, W, 3]."""
    from .images.decode import load_image, to_rgb

    if isinstance(image_or_path, (str, os.PathLike)):
        return load_image(image_or_path)
    if isinstance(image_or_path, np.ndarray):
        return to_rgb(image_or_path, name="image")
    raise UserInputError(f"image: expected a file path or a numpy array, got {type(image_or_path).__name__}")


def resolve_rect(rect: Any, height: int, width: int, person: int = 0) -> tuple:
    """None -> the whole image as a centred square; a path -> line ``person`` of that rect file;
    4 numbers -> rounded to integers."""
    from .models.preprocess import check_rect, default_rect, read_rect_file

    if rect is None:
        return default_rect(height, width)
    if isinstance(rect, (str, os.PathLike)):
        rects = read_rect_file(rect)
        if not 0 <= person < len(rects):
            raise UserInputError(f"person {person}: the rect file {os.fspath(rect)} has {len(rects)} rect(s) (use 0..{len(rects) - 1})")
        return rects[person]
    return check_rect(list(rect))


def reconstruct_image(image_or_path: Any, rect: Optional[Union[Sequence[float], str, "os.PathLike[str]"]] = None,
                      model: Any = None, resolution: int = RESOLUTION, frame: str = OUTPUT_FRAME,
                      method: str = "auto") -> Mesh:
    """Reconstruct the person in one image.

    - ``image_or_path``: image file, or array [H, W, 3] RGB / [H, W, 4] RGBA / [H, W] grey.
    - ``rect``: (x, y, w, h) crop in image pixels (square for PIFuHD; may extend beyond the
      image), a rect file (``x y w h`` per line, first line used), or None for the whole image
      as a centred square crop.
    - ``model``: an ``ImplicitModel`` (``load_model``), a checkpoint path, or None (embedded).
    - ``resolution``: marching-cubes grid points per axis.
    - ``frame``: ``"image"`` (pixels of the input) or ``"crop"`` (reference's normalised frame).
    - ``method``: ``"auto"`` = the fast reconstruction (``streamrecon.recon``); ``"reference"`` =
      the reference's grid, octree and marching cubes step for step
      (``streamrecon.models.pifuhd.reference_recon``).
    """
    if frame not in FRAMES:
        raise UserInputError(f"frame: expected one of {FRAMES}, got {frame!r}")
    if method not in METHODS:
        raise UserInputError(f"method: expected one of {METHODS}, got {method!r}")
    resolution = check_resolution(resolution, "resolution", "dense" if method == "reference" else "octree")
    image = resolve_image(image_or_path)
    r = resolve_rect(rect, image.shape[0], image.shape[1])
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    mesh = _reconstruct(model, image, r, resolution, method)
    if mesh.rect is None:
        mesh.rect = tuple(r)
    return mesh_to_frame(mesh, frame, r)


def _reconstruct(model: Any, image: np.ndarray, rect: tuple, resolution: int, method: str) -> Mesh:
    if method == "auto":
        return reconstruct_person(model, image, rect, None, ReconConfig(resolution=resolution, frame="crop"))
    from .models.pifuhd.reference_recon import ReferenceReconConfig, reconstruct_reference

    init = 64
    if resolution < init:
        raise UserInputError(f"resolution: the reference octree starts at {init} points per axis; use --resolution >= {init}")
    features = model.encode(image, rect, None)
    return reconstruct_reference(model, features, ReferenceReconConfig(resolution=resolution, init_resolution=init))


def write_mesh_file(mesh: Mesh, out: Union[str, "os.PathLike[str]"]) -> Path:
    """Write ``mesh`` (OBJ or PLY by suffix) atomically, creating the folder."""
    from .mesh.io import write_mesh

    out = Path(out)
    if out.suffix.lower() not in (".obj", ".ply"):
        raise UserInputError(f"--out {out}: use a .obj or .ply file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_mesh(mesh, out)
