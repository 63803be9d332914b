"""One person's mesh from one image: encode once, evaluate occupancy on the N^3 grid of the crop
frame (octree by default, dense as the slow twin), marching cubes at the level, cleanup, normals,
optional colours, then the requested frame. Pure: no threads, queues or clocks beyond timings.

Stages and their outputs (``Mesh.meta``): ``num_queries``, ``resolution``, ``evaluator``,
``mc_method`` and ``timings`` (seconds: ``encode_s``, ``query_s`` (network), ``octree_s``
(evaluator total), ``mc_s``, ``cleanup_s``, ``normals_s``, ``colors_s``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import UserInputError
from .models.protocol import ImplicitModel
from .types import FRAMES, Mesh

log = logging.getLogger(__name__)

EVALUATORS = ("octree", "dense")
RESOLUTION = 256
"""grid points per axis for one image (``reconstruct``, ``reconstruct_image``)"""
STREAM_RESOLUTION = 128
"""grid points per axis for video (``run``, ``live``): the real-time setting on 2 CPU cores"""
OUTPUT_FRAME = "image"
"""vertex frame of every mesh the commands and ``reconstruct_image`` hand out (``types``)"""


def check_resolution(resolution, flag: str = "--resolution", evaluator: str = "octree") -> int:
    """The one check of a user's resolution: an integer in [2, ``occupancy.grid.MAX_RESOLUTION``]
    that fits in memory (``occupancy.memory``). ``UserInputError`` / ``ResourceError`` name
    ``flag``; returns the resolution as an int."""
    from .occupancy.config import check_resolution as check_grid
    from .occupancy.memory import check_recon_memory

    try:
        n = check_grid(resolution)
    except ValueError as exc:
        raise UserInputError(f"{flag}: {str(exc).removeprefix('resolution: ')}") from None
    check_recon_memory(n, evaluator, flag=flag)  # refused up front, with the estimate, not mid-octree
    return n


def _octree_default():
    from .occupancy.config import OctreeConfig

    return OctreeConfig()


def _cleanup_default():
    from .mesh.cleanup import CleanupConfig

    return CleanupConfig()


@dataclass(frozen=True)
class ReconConfig:
    """Options of ``reconstruct_person`` (``reconstruct``/``run`` flags mirror the first ones)."""

    resolution: int = RESOLUTION
    """grid points per axis over the crop box [-1, 1]^3 (the reference uses 512)"""
    evaluator: str = "octree"
    """``octree`` (coarse-to-fine, ~0.5% of the queries) or ``dense`` (every grid point)"""
    marching_cubes: str = "auto"
    """``auto`` (native sparse kernel, PyMCubes if not built), ``sparse`` or ``pymcubes``"""
    frame: str = "crop"
    """vertex frame of the result: ``crop`` (normalised, y up) or ``image`` (frame pixels, y down)"""
    normals: bool = True
    """compute per-vertex normals (outward)"""
    colors: bool = False
    """sample a per-vertex colour from the input image (front view)"""
    octree: object = field(default_factory=_octree_default)
    """``occupancy.OctreeConfig``; its ``batch_points`` (points per network call) serves the dense
    evaluator too"""
    level: Optional[float] = None
    """iso level of the surface (occupancy > level is inside); None: the model's own
    (``models.protocol.surface_level``: 0.5, the embedded weights may ask for another, chosen on held-out
    people). Overrides ``octree.level``."""
    silhouette_fill: bool = True
    """with a person mask: give every grid column under the mask a surface at the network's most
    likely depth when its occupancy never reaches the level (``occupancy.silhouette``: thin
    parts' outlines no longer go missing; off the mask nothing changes)"""
    silhouette_floor: float = 0.05
    """columns whose occupancy peak stays below this are left empty (the network is sure: a
    sloppy mask's background)"""
    cleanup: object = field(default_factory=_cleanup_default)
    """``mesh.CleanupConfig``: small and hidden component removal (default keeps the main body and
    the visible parts of at least 2% of its size), smoothing"""

    def __post_init__(self) -> None:
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"evaluator: expected one of {EVALUATORS}, got {self.evaluator!r}")
        if self.frame not in FRAMES:
            raise ValueError(f"frame: expected one of {FRAMES}, got {self.frame!r}")
        from .occupancy.config import check_resolution as check_grid

        check_grid(self.resolution)


def for_model(cfg: ReconConfig, model) -> ReconConfig:
    """``cfg`` with its level settled: ``cfg.level``, else the model's (``surface_level``)."""
    from dataclasses import replace

    from .models.protocol import surface_level

    return replace(cfg, level=float(cfg.level if cfg.level is not None else surface_level(model)))


def evaluate_grid(query_fn, cfg: ReconConfig, device="cpu"):
    """The ``OccupancyGrid`` of ``query_fn`` (crop-frame points -> occupancy) per ``cfg`` (at
    ``cfg.level`` when set, else ``cfg.octree.level``; see ``for_model``)."""
    from dataclasses import replace

    if cfg.level is not None and cfg.level != cfg.octree.level:
        cfg = replace(cfg, octree=replace(cfg.octree, level=float(cfg.level)))

    from .occupancy import DenseConfig, evaluate_dense, evaluate_octree

    if cfg.evaluator == "dense":
        return evaluate_dense(query_fn, cfg.resolution, DenseConfig(cfg.octree.batch_points, cfg.octree.level), device=device)
    return evaluate_octree(query_fn, cfg.resolution, cfg.octree, device=device)


def fill_grid(grid, query_fn, columns_on: np.ndarray, cfg: ReconConfig):
    """``occupancy.silhouette.fill_silhouette`` per ``cfg`` (in place); its counts land in
    ``grid.stats["silhouette_fill"]``."""
    from dataclasses import asdict

    from .occupancy.silhouette import fill_silhouette

    res = fill_silhouette(grid, query_fn, columns_on, floor=cfg.silhouette_floor)
    if isinstance(getattr(grid, "stats", None), dict):
        grid.stats["silhouette_fill"] = asdict(res)
    return res


def mesh_from_grid(grid, cfg: ReconConfig, image: Optional[np.ndarray] = None, rect=None) -> Mesh:
    """Marching cubes + cleanup + normals (+ colours) of an evaluated grid, in ``cfg.frame``."""
    from .mesh import cleanup_mesh, extract_mesh, mesh_to_frame, vertex_normals

    timings = {}
    mesh = extract_mesh(grid, cfg.marching_cubes)
    timings["mc_s"] = mesh.meta.pop("mc_s")
    t = time.perf_counter()
    mesh = cleanup_mesh(mesh, cfg.cleanup)
    timings["cleanup_s"] = time.perf_counter() - t
    if cfg.normals and mesh.num_faces:
        t = time.perf_counter()
        mesh.normals = vertex_normals(mesh.vertices, mesh.faces)
        timings["normals_s"] = time.perf_counter() - t
    if cfg.colors and image is not None and rect is not None:
        from .mesh.colour import sample_vertex_colours

        t = time.perf_counter()
        mesh.colors = sample_vertex_colours(mesh.vertices, image, rect)
        timings["colors_s"] = time.perf_counter() - t
    if rect is not None:
        mesh.rect = tuple(float(v) for v in rect)
    if cfg.frame == "image":
        if rect is None:
            raise ValueError("rect: the image frame needs the crop rect (x, y, w, h)")
        mesh = mesh_to_frame(mesh, "image", rect)
    mesh.meta.setdefault("timings", {}).update(timings)
    return mesh


@dataclass
class PersonGrid:
    """The occupancy step's result for one person (``evaluate_person``), before meshing: the
    evaluated grid, the image and rect it came from, the config and the step's timings."""

    grid: object
    image: np.ndarray
    rect: tuple
    cfg: ReconConfig
    timings: dict
    model_name: str


def evaluate_person(model: ImplicitModel, image: np.ndarray, rect, mask: Optional[np.ndarray] = None,
                    cfg: ReconConfig = ReconConfig(), body=None) -> PersonGrid:
    """The network half of ``reconstruct_person``: one ``encode`` (with the person's fitted
    ``body``, a ``BodyFit``, for a model that reads it), then ``query`` over the grid."""
    import torch

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image: expected uint8 [H, W, 3] RGB, got {desc}")
    from .models.protocol import encode_person

    cfg = for_model(cfg, model)
    t0 = time.perf_counter()
    with torch.inference_mode():
        features = encode_person(model, image, tuple(rect), mask, body)
    t1 = time.perf_counter()

    def query_fn(points):
        return model.query(features, points)

    grid = evaluate_grid(query_fn, cfg, device=getattr(model, "device", "cpu"))
    t2 = time.perf_counter()
    stats = getattr(grid, "stats", {})
    timings = {"encode_s": t1 - t0, "octree_s": t2 - t1, "query_s": float(stats.get("query_s", 0.0))}
    if cfg.silhouette_fill and mask is not None:
        from .occupancy.silhouette import column_mask_from_frame

        fill_grid(grid, query_fn, column_mask_from_frame(mask, rect, cfg.resolution), cfg)
        timings["fill_s"] = time.perf_counter() - t2
    return PersonGrid(grid, image, tuple(rect), cfg, timings, getattr(model, "name", type(model).__name__))


def mesh_person(pg: PersonGrid) -> Mesh:
    """The meshing half of ``reconstruct_person`` (marching cubes, cleanup, normals, frame)."""
    grid, cfg = pg.grid, pg.cfg
    mesh = mesh_from_grid(grid, cfg, pg.image, pg.rect)
    mesh.meta["timings"].update(pg.timings)
    mesh.meta.update(num_queries=grid.num_queries, resolution=cfg.resolution, evaluator=cfg.evaluator,
                     model=pg.model_name)
    log.debug("reconstruct_person: %d queries, %d vertices, %s", grid.num_queries, mesh.num_vertices,
              {k: round(v, 3) for k, v in mesh.meta["timings"].items()})
    return mesh


def reconstruct_person(model: ImplicitModel, image: np.ndarray, rect, mask: Optional[np.ndarray] = None,
                       cfg: ReconConfig = ReconConfig(), body=None) -> Mesh:
    """Mesh of the person in the square crop ``rect`` (x, y, w, h, frame pixels) of ``image``
    (uint8 [H, W, 3] RGB) with ``model``: one ``encode``, then ``query`` over the grid, then
    marching cubes and cleanup (``evaluate_person`` then ``mesh_person``, which a streaming run
    may put on two threads). Frame per ``cfg.frame`` (``crop`` by default); faces counter-
    clockwise seen from outside."""
    return mesh_person(evaluate_person(model, image, rect, mask, cfg, body))
