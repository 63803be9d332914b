"""The per-frame stages: find people, reconstruct each one, mesh, move the mesh to the requested
coordinate frame. Pure with respect to queues and clocks except for their own timings; the
pipeline (``pipeline.py``) runs each on its own thread.

``FrameReconstructor``'s parts are injected (``find_people``, ``reconstruct``, ``finish``) so
tests use doubles; ``build_stage`` wires the real ones: ``streamrecon.people.PeopleFinder``,
``streamrecon.models.load.load_model`` and ``streamrecon.recon``'s ``evaluate_person`` /
``mesh_person``. ``StageConfig`` holds the stage's settings; their defaults come from the
configs that own them (``recon``, ``people.config``, ``backends``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from ..errors import UserInputError
from ..mesh.coords import mesh_to_frame
from ..models.load import NAMED
from ..people.config import PeopleConfig
from ..recon import OUTPUT_FRAME, STREAM_RESOLUTION, ReconConfig
from ..types import FRAMES, EvaluatedPeople, FoundPeople, Frame, FrameResult, Mesh, PersonCrop, PersonResult

log = logging.getLogger(__name__)

MODELS = (*NAMED, "synthetic")
PEOPLE = ("auto", "full-frame")
MAX_THREADS = 256
THREADS_PER_CORE = 4
"""``--threads`` is bounded by this many per usable core (and ``MAX_THREADS``): the network's
threads are compute-bound, so beyond one per core they only take turns and spin (``--threads 1000``
made Ctrl-C take 15 s); four per core still lets a user try oversubscription, or run a config
written for a somewhat larger machine."""


@dataclass(frozen=True)
class StageConfig:
    """What the reconstruction stage builds (mirrored by ``run``/``live`` flags)."""

    model: str = "default"
    """``default`` (the network: ``--checkpoint`` or the embedded model), ``mask-only`` (the
    embedded model that reads the person mask without the fitted body), ``body`` (the embedded
    model that reads the mask and the fitted body) or ``synthetic`` (a
    sphere over the bright pixels: tests and demos without a network)."""
    checkpoint: Optional[str] = None
    """PIFuHD checkpoint file; None = the embedded default model."""
    resolution: int = STREAM_RESOLUTION
    """Marching-cubes grid points per axis."""
    mesh_frame: str = OUTPUT_FRAME
    """Vertex frame of the output meshes: ``image`` (frame pixels, y down) or ``crop`` (PIFuHD's
    normalised crop frame)."""
    people: str = "auto"
    """Person finder: ``auto`` (``streamrecon.people``) or ``full-frame`` (one person, the whole
    frame as a centred square crop)."""
    detect_every: int = PeopleConfig.detect_every
    """Person detector on every this many frames while people are tracked
    (``streamrecon.people.PeopleConfig.detect_every``; 1 = every frame)."""
    backend: str = "auto"
    """Execution backend of the network (``streamrecon.backends.BackendConfig.backend``)."""
    precision: str = "fp32"
    """Arithmetic precision (fp16/bf16 on CUDA only)."""
    engines_dir: Optional[str] = None
    """Compiled-engine cache folder (None: the default, see ``streamrecon.backends.cache``)."""
    silhouette_fill: bool = ReconConfig.silhouette_fill
    """give every grid column under the person mask a surface (``ReconConfig.silhouette_fill``:
    thin parts' outlines no longer go missing)"""
    mirror_average: bool = False
    """average each person's occupancy with that of their mirror image (``streamrecon.models.mirror_average``:
    smoother where the network is unsure, twice the network time)"""
    body: bool = True
    """fit the body to every person found with BlazePose's landmarks (``body.tracker``): the
    body-reading model needs it, and it is written to the manifest (``--no-body``: skip it)"""
    threads: int = 0
    """PyTorch CPU threads of the network; 0 = auto: for the embedded model, whose people,
    network and meshing steps run on three threads, half the cores (1 on 2 cores: measured 6.5 vs
    5.6 fps there, an idle second thread only spins); torch's default otherwise."""

    def __post_init__(self) -> None:
        """Cheap checks of every field (the memory check of ``resolution`` runs in ``build_stage``);
        one-line ``UserInputError`` naming the flag."""
        from ..occupancy.config import check_resolution

        if self.model not in MODELS:
            raise UserInputError(f"--model: expected one of {MODELS}, got {self.model!r}")
        if self.people not in PEOPLE:
            raise UserInputError(f"--people: expected one of {PEOPLE}, got {self.people!r}")
        if self.mesh_frame not in FRAMES:
            raise UserInputError(f"--mesh-frame: expected one of {FRAMES}, got {self.mesh_frame!r}")
        try:
            check_resolution(self.resolution)
        except ValueError as exc:
            raise UserInputError(f"--resolution: {str(exc).removeprefix('resolution: ')}") from None
        if not isinstance(self.detect_every, int) or self.detect_every < 1:
            raise UserInputError(f"--detect-every: expected an integer >= 1 (1 = every frame), got {self.detect_every!r}")
        most = max_threads()
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or not 0 <= self.threads <= most:
            raise UserInputError(f"--threads: expected an integer in [0, {most}] (0 = auto; at most {THREADS_PER_CORE} "
                                 f"per usable core, {usable_cores()} here), got {self.threads!r}")
        if self.model == "synthetic" and self.mirror_average:
            raise UserInputError("--mirror-average averages the network's answers: use it with --model default")


def full_frame_crop(frame: Frame) -> PersonCrop:
    """One person: the square of side max(W, H) centred on the frame (extends beyond the image on
    the short side; PIFuHD pads with zeros)."""
    side = float(max(frame.width, frame.height))
    return PersonCrop(0, ((frame.width - side) / 2.0, (frame.height - side) / 2.0, side, side))


def max_threads() -> int:
    """The largest ``--threads`` accepted here: ``THREADS_PER_CORE`` per usable core, at most ``MAX_THREADS``."""
    return min(MAX_THREADS, THREADS_PER_CORE * usable_cores())


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask: a container's cpuset, ``taskset``)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class FrameReconstructor:
    """Callable stage ``Frame -> FrameResult``. Called directly, every step runs on the caller's
    thread; ``stages()`` splits it for the pipeline into a people stage, a reconstruction stage
    and, when ``finish`` is given, a meshing stage, each owned by its own thread: finding people in
    frame k + 1 and meshing frame k - 1 overlap the network's work on frame k (on 2 cores the
    embedded model's run is no longer one serial chain).

    ``reconstruct(image, crop)`` returns the person's ``Mesh``, or, with ``finish``, something
    ``finish`` turns into the ``Mesh`` (``recon.evaluate_person`` / ``mesh_person``)."""

    def __init__(
        self,
        reconstruct: Callable[[np.ndarray, PersonCrop], Any],
        find_people: Optional[Callable[[Frame], List[PersonCrop]]] = None,
        mesh_frame: str = OUTPUT_FRAME,
        finish: Optional[Callable[[Any], Mesh]] = None,
        fit_bodies: Optional[Callable[[List[PersonCrop], float], Any]] = None,
    ) -> None:
        self.reconstruct = reconstruct
        self.find_people = find_people or (lambda frame: [full_frame_crop(frame)])
        self.mesh_frame = mesh_frame
        self.finish = finish
        self.fit_bodies = fit_bodies

    def find(self, frame: Frame) -> FoundPeople:
        """The people step (people thread when split): find the people, then fit their bodies
        (``fit_bodies(crops, t)``, e.g. ``body.tracker.BodyTracker.update``; ``body_s``)."""
        t0 = time.perf_counter()
        crops = list(self.find_people(frame))
        body_s = None
        if self.fit_bodies is not None and crops:
            t1 = time.perf_counter()
            self.fit_bodies(crops, frame.pts if frame.pts is not None else frame.timestamp)
            body_s = time.perf_counter() - t1
        return FoundPeople(frame, crops, time.perf_counter() - t0, body_s)

    def evaluate(self, found: FoundPeople) -> EvaluatedPeople:
        """The network step of a three-way split (reconstruction thread)."""
        t0 = time.perf_counter()
        pending = [self.reconstruct(found.frame.image, crop) for crop in found.crops]
        return EvaluatedPeople(found, pending, time.perf_counter() - t0)

    def mesh(self, ev: EvaluatedPeople) -> FrameResult:
        """The meshing step of a three-way split (meshing thread)."""
        t0 = time.perf_counter()
        meshes = [self.finish(p) for p in ev.pending]
        return self._result(ev.found, meshes, ev.seconds + time.perf_counter() - t0)

    def reconstruct_found(self, found: FoundPeople) -> FrameResult:
        """Network and meshing for every person of a frame (reconstruction thread when split)."""
        if self.finish is not None:
            return self.mesh(self.evaluate(found))
        t1 = time.perf_counter()
        meshes = [self.reconstruct(found.frame.image, crop) for crop in found.crops]
        return self._result(found, meshes, time.perf_counter() - t1)

    def _result(self, found: FoundPeople, meshes: List[Mesh], recon_s: float) -> FrameResult:
        frame = found.frame
        timings = {"people_s": found.people_s}
        if found.body_s is not None:
            timings["body_s"] = found.body_s
        persons = []
        for crop, mesh in zip(found.crops, meshes):
            if mesh.rect is None:
                mesh.rect = tuple(crop.rect)
            for k, v in (mesh.meta.get("timings") or {}).items():
                if k.endswith("_s"):
                    timings[k] = timings.get(k, 0.0) + float(v)
            if self.mesh_frame == "image":
                mesh = mesh_to_frame(mesh, "image", crop.rect)
            persons.append(PersonResult(crop, mesh))
        timings["recon_s"] = recon_s
        return FrameResult(frame, persons, timings, time.monotonic())

    def __call__(self, frame: Frame) -> FrameResult:
        return self.reconstruct_found(self.find(frame))

    def stages(self) -> List[Tuple[str, Callable]]:
        """The pipeline stages: ``people`` (Frame -> FoundPeople), then ``recon`` (-> FrameResult),
        or ``recon`` (-> EvaluatedPeople) and ``mesh`` (-> FrameResult) when split in three."""
        if self.finish is None:
            return [("people", self.find), ("recon", self.reconstruct_found)]
        return [("people", self.find), ("recon", self.evaluate), ("mesh", self.mesh)]


def _people_finder(cfg: StageConfig) -> Optional[Callable[[Frame], List[PersonCrop]]]:
    if cfg.people == "full-frame":
        return None
    from ..people import PeopleFinder

    return PeopleFinder(PeopleConfig(detect_every=cfg.detect_every)).find


def build_stage(cfg: StageConfig) -> FrameReconstructor:
    """The real stage for ``cfg`` (imports the network lazily). Refuses a resolution that would
    not fit in memory (``recon.check_resolution``) before the model loads or a frame is read."""
    from ..recon import check_resolution

    check_resolution(cfg.resolution)
    if cfg.model == "synthetic":
        from ..testing.sphere_model import SphereModel, sphere_reconstruct

        model = SphereModel()

        def reconstruct(image: np.ndarray, crop: PersonCrop) -> Mesh:
            return sphere_reconstruct(model, image, crop.rect, crop.mask, cfg)

        # the disc is not a person a detector would find: always the whole frame
        return FrameReconstructor(reconstruct, None, cfg.mesh_frame)

    from ..backends import BackendConfig
    from ..backends.flags import apply_backend
    from ..models.load import load_model
    from ..recon import evaluate_person, mesh_person, reconstruct_person

    if cfg.model in NAMED and cfg.model != "default":
        if cfg.checkpoint is not None:
            raise UserInputError(f"--model {cfg.model} is a model shipped in the package: drop --checkpoint")
        from ..models.load import load_named

        model = load_named(cfg.model)
    else:
        model = load_model(cfg.checkpoint)
    threads = cfg.threads
    if threads == 0 and getattr(model, "name", "") == "embedded":
        threads = max(1, usable_cores() // 2)
    if threads:  # before compiling: ONNX Runtime sessions take torch's thread count
        import torch

        torch.set_num_threads(threads)
        log.info("network: %d torch CPU thread(s)", threads)
    try:
        bcfg = BackendConfig(backend=cfg.backend, precision=cfg.precision, cache_dir=cfg.engines_dir)
    except ValueError as exc:
        raise UserInputError(f"backend: {exc}") from None
    apply_backend(model, bcfg, cfg.checkpoint)
    if cfg.mirror_average:
        from ..models.mirror_average import MirrorAveraged

        model = MirrorAveraged(model)
    rcfg = ReconConfig(resolution=cfg.resolution, silhouette_fill=cfg.silhouette_fill)
    finder = _people_finder(cfg)
    bodies = None
    if cfg.body and finder is not None:
        from ..body.tracker import BodyTracker

        bodies = BodyTracker().update
    elif getattr(model, "reads_body", False) and finder is not None:
        log.warning("--no-body: the model reads the fitted body and will see none")

    if getattr(model, "name", "") == "embedded":
        # a small model: meshing (~30% of its frame) gets its own thread. Not for PIFuHD, whose
        # meshing is ~1% of a frame and whose 512^3 grid would then overlap the next encode in memory
        def evaluate(image: np.ndarray, crop: PersonCrop):
            return evaluate_person(model, image, crop.rect, crop.mask, rcfg, crop.body)

        return FrameReconstructor(evaluate, finder, cfg.mesh_frame, finish=mesh_person, fit_bodies=bodies)

    def reconstruct(image: np.ndarray, crop: PersonCrop) -> Mesh:
        return reconstruct_person(model, image, crop.rect, crop.mask, rcfg, crop.body)

    return FrameReconstructor(reconstruct, finder, cfg.mesh_frame, fit_bodies=bodies)


def model_label(cfg: StageConfig) -> str:
    """The manifest's ``model`` field."""
    if cfg.model == "synthetic":
        return "synthetic"
    if cfg.model in NAMED and cfg.model != "default":
        return f"embedded:{cfg.model}"
    if cfg.checkpoint is None:
        return "embedded"
    import hashlib

    h = hashlib.sha256()
    with open(cfg.checkpoint, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"pifuhd:{h.hexdigest()[:12]}"
