"""Public Python API: load a model, reconstruct one image into a mesh.

    import streamrecon
    model = streamrecon.load_model("pifuhd.pt")            # or None: the embedded default model
    mesh = streamrecon.reconstruct_image("photo.jpg", rect=(x, y, w, h), model=model)
    # mesh.vertices [V, 3] float32 in image pixels (frame="image"), mesh.faces [F, 3] int32

Frames (``streamrecon.types``): ``"image"`` = pixels of the input image (x right, y down,
z = depth in pixels); ``"crop"`` = PIFuHD's normalised crop frame (what the reference writes).
Without a rect the whole image is used as a square crop centred on it; ``find_people`` gives each
person's crop and mask as ``streamrecon run`` finds them (what ``streamrecon reconstruct`` uses).
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

__all__ = ["load_model", "reconstruct_image", "find_people", "resolve_image", "resolve_rect", "write_mesh_file"]

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


def find_people(image_or_path: Any, person: Optional[int] = None, body: bool = True) -> list:
    """The people in one image as ``streamrecon run`` finds them in a frame (the same finder,
    settings and masks): ``PersonCrop`` list sorted by id (ids count from 0, left to right), each
    with ``rect`` (square crop, image pixels), ``mask``, ``keypoints``, ``world_landmarks`` and,
    with ``body``, the fitted ``body`` (``body.fit.BodyFit``, the offline fitter settings
    ``FitConfig.for_reconstruct``; None when BlazePose gave no landmarks).
    ``person``: keep only that id (``UserInputError`` naming the range when absent)."""
    from .people import PeopleConfig, PeopleFinder
    from .types import Frame

    image = resolve_image(image_or_path)
    people = PeopleFinder(PeopleConfig()).find(Frame(0, image, 0.0))
    if body and people:
        from .body.fit import FitConfig
        from .body.tracker import BodyTracker

        BodyTracker(FitConfig.for_reconstruct(), smooth=False).update(people, 0.0)
    if person is not None:
        chosen = [p for p in people if p.person_id == person]
        if not chosen:
            have = f"0..{len(people) - 1}" if people else "none"
            raise UserInputError(f"person {person}: {len(people)} person(s) found in the image (ids {have})")
        return chosen
    return people


def reconstruct_image(image_or_path: Any, rect: Optional[Union[Sequence[float], str, "os.PathLike[str]"]] = None,
                      model: Any = None, resolution: int = RESOLUTION, frame: str = OUTPUT_FRAME,
                      method: str = "auto", mask: Optional[np.ndarray] = None, body: Any = None) -> Mesh:
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
    - ``mask``: [H, W] bool person mask in image pixels (``find_people`` gives one per person), or
      None (the embedded model then segments the crop itself with GrabCut).
    - ``body``: the person's fitted body (``find_people`` gives one per person), read by models
      that read one (``reads_body``); ignored by the others.
    """
    if frame not in FRAMES:
        raise UserInputError(f"frame: expected one of {FRAMES}, got {frame!r}")
    if method not in METHODS:
        raise UserInputError(f"method: expected one of {METHODS}, got {method!r}")
    resolution = check_resolution(resolution, "resolution", "dense" if method == "reference" else "octree")
    image = resolve_image(image_or_path)
    r = resolve_rect(rect, image.shape[0], image.shape[1])
    if mask is not None and (not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != image.shape[:2]):
        desc = f"{mask.dtype} {list(mask.shape)}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise UserInputError(f"mask: expected bool {list(image.shape[:2])} (the image's size), got {desc}")
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    mesh = _reconstruct(model, image, r, resolution, method, mask, body)
    if mesh.rect is None:
        mesh.rect = tuple(r)
    return mesh_to_frame(mesh, frame, r)


def _reconstruct(model: Any, image: np.ndarray, rect: tuple, resolution: int, method: str,
                 mask: Optional[np.ndarray] = None, body: Any = None) -> Mesh:
    if method == "auto":
        return reconstruct_person(model, image, rect, mask, ReconConfig(resolution=resolution, frame="crop"), body)
    from .models.pifuhd.reference_recon import ReferenceReconConfig, reconstruct_reference

    init = 64
    if resolution < init:
        raise UserInputError(f"resolution: the reference octree starts at {init} points per axis; use --resolution >= {init}")
    features = model.encode(image, rect, mask)
    return reconstruct_reference(model, features, ReferenceReconConfig(resolution=resolution, init_resolution=init))


def write_mesh_file(mesh: Mesh, out: Union[str, "os.PathLike[str]"]) -> Path:
    """Write ``mesh`` (OBJ or PLY by suffix) atomically, creating the folder."""
    from .mesh.io import write_mesh

    out = Path(out)
    if out.suffix.lower() not in (".obj", ".ply"):
        raise UserInputError(f"--out {out}: use a .obj or .ply file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_mesh(mesh, out)
