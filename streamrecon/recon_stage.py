"""The per-frame reconstruction stage: find people, reconstruct each one, move the mesh to the
requested coordinate frame. Pure with respect to queues and clocks except for its own timings;
the pipeline runs it on the reconstruction thread.

Its parts are injected (``find_people``, ``reconstruct``) so tests use doubles; ``build_stage``
wires the real ones lazily: ``streamrecon.people.PeopleFinder`` (falls back to one whole-frame
crop, logged once), ``streamrecon.api.load_model`` and
``streamrecon.reconstruction.reconstruct_person``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, List, Optional

import numpy as np

from .errors import BackendUnavailableError, UserInputError
from .frames import Frame, PersonCrop
from .mesh_types import Mesh

log = logging.getLogger(__name__)

MODELS = ("default", "synthetic")


@dataclass(frozen=True)
class StageConfig:
    """What the reconstruction stage builds (mirrored by ``run``/``live`` flags)."""

    model: str = "default"
    """``default`` (the network: ``--checkpoint`` or the embedded model) or ``synthetic`` (a
    sphere over the bright pixels: tests and demos without a network)."""
    checkpoint: Optional[str] = None
    """PIFuHD checkpoint file; None = the embedded default model."""
    resolution: int = 128
    """Marching-cubes grid points per axis."""
    mesh_frame: str = "image"
    """Vertex frame of the output meshes: ``image`` (frame pixels, y down) or ``crop`` (PIFuHD's
    normalised crop frame)."""
    people: str = "auto"
    """Person finder: ``auto`` (streamrecon.people when available) or ``full-frame`` (one person,
    the whole frame as a centred square crop)."""
    backend: str = "auto"
    """Execution backend of the network (``streamrecon.backends.BackendConfig.backend``)."""
    precision: str = "fp32"
    """Arithmetic precision (fp16/bf16 on CUDA only)."""
    engines_dir: Optional[str] = None
    """Compiled-engine cache folder (None: the default, see ``streamrecon.backends.cache``)."""


@dataclass
class PersonResult:
    crop: PersonCrop
    mesh: Mesh


@dataclass
class FrameResult:
    """One frame's output. ``timings``: seconds per step (``people_s``, ``recon_s`` and any
    ``*_s`` the reconstructor reports in ``mesh.meta['timings']``), ``done_time``:
    ``time.monotonic()`` when the stage finished."""

    frame: Frame
    persons: List[PersonResult]
    timings: dict = field(default_factory=dict)
    done_time: float = 0.0


def full_frame_crop(frame: Frame) -> PersonCrop:
    """One person: the square of side max(W, H) centred on the frame (extends beyond the image on
    the short side; PIFuHD pads with zeros)."""
    side = float(max(frame.width, frame.height))
    return PersonCrop(0, ((frame.width - side) / 2.0, (frame.height - side) / 2.0, side, side))


def crop_to_image(mesh: Mesh, rect: tuple) -> Mesh:
    """Crop-frame mesh -> image-frame mesh (``mesh_types`` formulas; winding reversed to stay
    outward CCW under the y flip). Thin wrapper over ``streamrecon.mesh.frames.mesh_to_frame``."""
    from .mesh.frames import mesh_to_frame

    return mesh_to_frame(mesh, "image", rect)


class FrameReconstructor:
    """Callable stage ``Frame -> FrameResult``; runs on the reconstruction thread only."""

    def __init__(
        self,
        reconstruct: Callable[[np.ndarray, PersonCrop], Mesh],
        find_people: Optional[Callable[[Frame], List[PersonCrop]]] = None,
        mesh_frame: str = "image",
    ) -> None:
        if mesh_frame not in ("image", "crop"):
            raise UserInputError(f"--mesh-frame: expected image or crop, got {mesh_frame!r}")
        self.reconstruct = reconstruct
        self.find_people = find_people or (lambda frame: [full_frame_crop(frame)])
        self.mesh_frame = mesh_frame

    def __call__(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        crops = self.find_people(frame)
        t1 = time.perf_counter()
        timings = {"people_s": t1 - t0}
        persons = []
        for crop in crops:
            mesh = self.reconstruct(frame.image, crop)
            if mesh.rect is None:
                mesh.rect = tuple(crop.rect)
            for k, v in (mesh.meta.get("timings") or {}).items():
                if k.endswith("_s"):
                    timings[k] = timings.get(k, 0.0) + float(v)
            if self.mesh_frame == "image":
                mesh = crop_to_image(mesh, crop.rect)
            persons.append(PersonResult(crop, mesh))
        timings["recon_s"] = time.perf_counter() - t1
        return FrameResult(frame, persons, timings, time.monotonic())


def _people_finder(kind: str) -> Optional[Callable[[Frame], List[PersonCrop]]]:
    if kind == "full-frame":
        return None
    try:
        from .people import PeopleFinder  # issue 5; may not exist in this build
    except ImportError as exc:
        log.warning("person finder unavailable (%s); using the whole frame as one person", exc)
        return None
    try:
        from .people.config import PeopleConfig

        finder = PeopleFinder(PeopleConfig())
    except ImportError:
        finder = PeopleFinder()
    return finder.find


def build_stage(cfg: StageConfig) -> FrameReconstructor:
    """The real stage for ``cfg`` (imports the network lazily). Raises ``UserInputError`` for a
    bad choice and ``BackendUnavailableError`` when a required module is missing."""
    if cfg.model not in MODELS:
        raise UserInputError(f"--model: expected one of {MODELS}, got {cfg.model!r}")
    if not isinstance(cfg.resolution, int) or cfg.resolution < 2:
        raise UserInputError(f"--resolution: expected an integer >= 2, got {cfg.resolution!r}")
    from .resources import check_recon_memory

    check_recon_memory(cfg.resolution)  # before the model loads or a frame is read
    if cfg.model == "synthetic":
        from .synthetic import SphereModel, sphere_reconstruct

        model = SphereModel()

        def reconstruct(image: np.ndarray, crop: PersonCrop) -> Mesh:
            return sphere_reconstruct(model, image, crop.rect, crop.mask, cfg)

        # the disc is not a person a detector would find: always the whole frame
        return FrameReconstructor(reconstruct, None, cfg.mesh_frame)

    try:
        from .api import load_model
        from .reconstruction import ReconConfig, reconstruct_person
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the reconstruction modules are not available in this build ({exc}); "
            "use --model synthetic to check the streaming path"
        ) from None
    model = load_model(cfg.checkpoint)
    from .backends import BackendConfig
    from .backends.flags import apply_backend

    try:
        bcfg = BackendConfig(backend=cfg.backend, precision=cfg.precision, cache_dir=cfg.engines_dir)
    except ValueError as exc:
        raise UserInputError(f"backend: {exc}") from None
    apply_backend(model, bcfg, cfg.checkpoint)
    names = {f.name for f in fields(ReconConfig)}
    rcfg = ReconConfig(**({"resolution": cfg.resolution} if "resolution" in names else {}))

    def reconstruct(image: np.ndarray, crop: PersonCrop) -> Mesh:
        return reconstruct_person(model, image, crop.rect, crop.mask, rcfg)

    return FrameReconstructor(reconstruct, _people_finder(cfg.people), cfg.mesh_frame)


def model_label(cfg: StageConfig) -> str:
    """The manifest's ``model`` field."""
    if cfg.model == "synthetic":
        return "synthetic"
    if cfg.checkpoint is None:
        return "embedded"
    import hashlib

    h = hashlib.sha256()
    with open(cfg.checkpoint, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"pifuhd:{h.hexdigest()[:12]}"
