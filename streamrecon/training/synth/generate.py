"""One synthetic subject from one seed, and dataset shards on disk.

A subject = anny shape + pose (rejecting self-intersections) + outfit, with labelled points in
world metres and ``views`` cameras (random yaw each, stratified around the circle) with their
silhouettes. Points are shared by the views: each view's camera maps them into its crop frame.

Seeds: training subject ``i`` of data seed ``s`` uses ``SeedSequence(s, spawn_key=(0, i))``; the
held-out evaluation subjects use ``spawn_key=(1, i)``: never the same bodies.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from . import bodies, camera, clothing, labels, poses, render

log = logging.getLogger(__name__)

TRAIN, HELDOUT = 0, 1


@dataclass(frozen=True)
class SynthConfig:
    """How subjects are generated."""

    res: int = 256
    """silhouette resolution (pixels across the crop)"""
    points: int = 12000
    """labelled points per subject"""
    views: int = 4
    """views (random yaws) per subject"""
    sigmas: Sequence[float] = (0.01, 0.05)
    """Gaussian offsets (metres) of the near-surface points, split evenly"""
    uniform_share: float = 0.125
    """share of points uniform in the body's grown bounding box"""
    clothing: bool = True
    """dress the bodies (shells, skirts, hair)"""
    max_pose_tries: int = 20
    """poses drawn before falling back to a calmer pose when all self-intersect"""
    max_yaw_deg: float = 180.0
    """yaw range of the views: uniform in [-max, max] degrees (0 = the person faces the camera);
    180 = all around, with the views stratified around the circle"""
    normals: bool = False
    """also render normal maps (stored as int8 in shards)"""
    depths: bool = True
    """also render each view's front and back depth maps (crop z of the first hit from the
    camera and from behind; float16 in shards): training labels along the pixel rays"""
    body: bool = False
    """fit the body prior to each view within ``body_max_yaw_deg`` from its true landmarks with
    the measured detector noise (``synth.landmarks``) and store the fitted body's front and back
    depth maps (the network's body channels; float16 in shards, +inf off the body)"""
    body_noise: float = 1.0
    """scale of that detector noise (1 = as measured on renders; 0 = exact landmarks)"""
    body_max_yaw_deg: float = 90.0
    """views farther from facing the camera get no fit (training does not use them)"""
    cache: Optional[str] = None
    """cache root (anny's cache goes under it); default $STREAMRECON_CACHE or ~/.cache/streamrecon"""


@dataclass
class Subject:
    """``vertices``/``faces``: the dressed body (world metres, outward faces; garments concatenated);
    ``points`` [P, 3] world metres with ``occupancy`` [P] bool; ``cameras`` one per view with
    ``masks`` [V, R, R] bool (and ``normals`` [V, R, R, 3] float32 or None); ``height`` metres;
    ``depths`` [V, 2, R, R] float32 crop z of the front and back surface per pixel (+inf off the
    person) or None; ``body_depths`` [V, 2, R, R] float32 the fitted body's front and back crop z
    (+inf off the body and in views without a fit) or None; ``landmarks`` [33, 3] the body's true
    BlazePose landmarks in world metres, or None; ``body_vertices`` [V, 3] float32 the undressed
    body in world metres on the body model's vertices (``body.model``; its faces), or None.
    ``meta["part_faces"]``: faces of the body, then of each garment, in ``faces``' order."""

    vertices: np.ndarray
    faces: np.ndarray
    points: np.ndarray
    occupancy: np.ndarray
    cameras: List[camera.CropCamera]
    masks: np.ndarray
    normals: Optional[np.ndarray]
    height: float
    meta: dict = field(default_factory=dict)
    depths: Optional[np.ndarray] = None
    body_depths: Optional[np.ndarray] = None
    landmarks: Optional[np.ndarray] = None
    body_vertices: Optional[np.ndarray] = None


def subject_seed(data_seed: int, index: int, split: int = TRAIN) -> np.random.SeedSequence:
    return np.random.SeedSequence(int(data_seed), spawn_key=(int(split), int(index)))


@functools.lru_cache(maxsize=2)
def _collision(model):
    from anny.utils.collision import SelfInterpenetrationModule

    return SelfInterpenetrationModule(model)


def self_intersections(model, vertices: np.ndarray) -> int:
    """Number of body triangles that cross another (anny's test; 0 for a clean pose)."""
    import torch

    hit = _collision(model).detect_self_intersections(torch.as_tensor(vertices))
    return int((hit >= 0).sum())


def to_crop(cam: camera.CropCamera, vertices: np.ndarray, faces: np.ndarray):
    """World mesh -> crop frame; faces reversed because the camera map is a reflection."""
    return cam.apply(vertices), faces[:, ::-1].copy()


def make_subject(seed: np.random.SeedSequence, cfg: SynthConfig = SynthConfig()) -> Subject:
    """The whole recipe for one subject; deterministic for a given seed and config."""
    rng = np.random.default_rng(seed)
    model = bodies.load_anny(cfg.cache)
    pheno = bodies.sample_phenotype(model, rng)
    body = None
    for attempt in range(cfg.max_pose_tries):
        amp = None if attempt < cfg.max_pose_tries - 1 else 0.1
        pose = poses.sample_pose(rng, amplitude=amp)
        body = bodies.make_body(model, pheno, pose)
        if self_intersections(model, body.vertices) == 0:
            break
    assert body is not None
    outfit = clothing.sample_outfit(rng) if cfg.clothing else None
    parts = [(body.vertices, body.faces)] + (clothing.dress(body, outfit, rng) if outfit else [])
    verts, faces = _concat(parts)
    pts = labels.sample_points(verts, faces, cfg.points, rng, sigmas=cfg.sigmas, uniform_share=cfg.uniform_share)
    occ = labels.inside(verts, faces, pts)
    yaw0 = rng.uniform(0, 2 * np.pi)
    cams, masks, normals, depths = [], [], [], []
    for k in range(cfg.views):
        if cfg.max_yaw_deg >= 180:
            yaw = yaw0 + 2 * np.pi * (k + rng.uniform(-0.3, 0.3)) / cfg.views
        else:
            yaw = np.deg2rad(rng.uniform(-cfg.max_yaw_deg, cfg.max_yaw_deg))
        cam = camera.make_camera(verts, yaw, rng)
        v, f = to_crop(cam, verts, faces)
        r = render.render(v, f, cfg.res, back=cfg.depths)
        cams.append(cam)
        masks.append(r.mask)
        if cfg.normals:
            normals.append(r.normals)
        if cfg.depths:
            depths.append(np.stack([r.depth, r.back_depth]))
    subject = Subject(verts, faces, pts, occ, cams, np.stack(masks), np.stack(normals) if cfg.normals else None,
                      body.height, {"phenotype": pheno, "outfit": outfit.__dict__ if outfit else None,
                                    "part_faces": [len(f) for _, f in parts]},
                      np.stack(depths) if cfg.depths else None)
    if cfg.body:
        add_body_prior(subject, body.vertices, seed, cfg)
    return subject


def add_body_prior(subject: Subject, anny_vertices: np.ndarray, seed: np.random.SeedSequence, cfg: SynthConfig) -> None:
    """Fill ``subject.landmarks`` and ``subject.body_depths`` (see ``SynthConfig.body``). Its noise
    comes from a stream of its own (the subject's seed + one more key), so the rest of a subject is
    the same with and without the body prior."""
    from .landmarks import fitted_body_maps, perturb, true_landmarks, view_landmarks

    from .landmarks import body_vertices

    rng = np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (7,)))
    subject.landmarks = true_landmarks(anny_vertices)
    subject.body_vertices = body_vertices(anny_vertices)
    out = np.full((len(subject.cameras), 2, cfg.res, cfg.res), np.inf, np.float32)
    for k, cam in enumerate(subject.cameras):
        if abs(np.rad2deg(np.arctan2(np.sin(cam.yaw), np.cos(cam.yaw)))) > cfg.body_max_yaw_deg + 1e-6:
            continue
        lm = perturb(view_landmarks(subject.landmarks, cam, cfg.res), rng, cfg.body_noise)
        maps, _ = fitted_body_maps(lm, cfg.res)
        on = maps[2] > 0
        out[k, 0][on], out[k, 1][on] = maps[0][on], maps[1][on]
    subject.body_depths = out


def _concat(parts):
    vs, fs, off = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + off)
        off += len(v)
    return np.concatenate(vs, 0), np.concatenate(fs, 0)


# ---------------------------------------------------------------------------------------------
# Shards: K subjects per .npz file, the format read by streamrecon.training.dataset.

def shard_path(root: Path, data_seed: int, index: int) -> Path:
    return Path(root) / f"seed{data_seed}" / f"shard_{index:05d}.npz"


def write_shard(path: Path, subjects: List[Subject], seeds: List[int], cfg: SynthConfig) -> None:
    """Atomic write of a shard: ``points`` float16 [S, P, 3] world metres, ``occupancy`` uint8
    [S, P/8] packed bits, ``cameras`` float32 [S, V, 4, 4], ``crop_per_metre`` float32 [S, V],
    ``masks`` uint8 [S, V, R*R/8] packed bits, ``height`` float32 [S], ``index`` int64 [S];
    ``normals`` int8 [S, V, R, R, 3] (x127) when rendered; ``depths`` float16 [S, V, 2, R, R]
    (front, back crop z; +inf off the person) when rendered; ``body_depths`` float16
    [S, V, 2, R, R] (the fitted body's front and back crop z; +inf off it) and ``landmarks`` float32
    [S, 33, 3] (true, world metres) with ``SynthConfig.body``; ``uniform_points``: how many of each
    subject's points (the last ones, as ``labels.sample_points`` orders them) are uniform in its
    bounding box rather than near the surface."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = dict(
        points=np.stack([s.points for s in subjects]).astype(np.float16),
        occupancy=np.stack([np.packbits(s.occupancy) for s in subjects]),
        cameras=np.stack([np.stack([c.matrix for c in s.cameras]) for s in subjects]).astype(np.float32),
        crop_per_metre=np.array([[c.crop_per_metre for c in s.cameras] for s in subjects], np.float32),
        masks=np.stack([np.packbits(s.masks.reshape(len(s.masks), -1), axis=1) for s in subjects]),
        height=np.array([s.height for s in subjects], np.float32),
        index=np.array(seeds, np.int64),
        res=np.array(cfg.res),
        uniform_points=np.array(int(round(cfg.points * cfg.uniform_share)) if subjects and len(subjects[0].points) == cfg.points else 0),
    )
    if cfg.normals:
        arr["normals"] = np.stack([np.round(s.normals * 127).astype(np.int8) for s in subjects])
    if cfg.depths and all(s.depths is not None for s in subjects):
        arr["depths"] = np.stack([s.depths for s in subjects]).astype(np.float16)
    if cfg.body and all(s.body_depths is not None for s in subjects):
        arr["body_depths"] = np.stack([s.body_depths for s in subjects]).astype(np.float16)
        arr["landmarks"] = np.stack([s.landmarks for s in subjects]).astype(np.float32)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arr)
    os.replace(tmp, path)


def _make_shard(root: Path, data_seed: int, s: int, per_shard: int, cfg: SynthConfig) -> Path:
    path = shard_path(root, data_seed, s)
    if not path.exists():
        idx = [s * per_shard + k for k in range(per_shard)]
        subs = [make_subject(subject_seed(data_seed, i), cfg) for i in idx]
        write_shard(path, subs, idx, cfg)
        log.info("wrote %s", path)
    return path


def _one_thread() -> None:
    """A generation worker computes on one thread (the workers are the parallelism)."""
    import torch

    torch.set_num_threads(1)


def generate_shards(root: Path, data_seed: int, first: int, count: int, per_shard: int = 16,
                    cfg: SynthConfig = SynthConfig(), progress=None, workers: int = 1) -> List[Path]:
    """Write shards ``first .. first+count-1`` (subjects ``shard * per_shard + k``), skipping the
    ones already on disk (so an interrupted run resumes), in ``workers`` processes. Returns the
    shard paths. A shard's content depends only on its subjects' seeds, never on the worker."""
    shards = range(first, first + count)
    if workers <= 1:
        out = []
        for s in shards:
            out.append(_make_shard(root, data_seed, s, per_shard, cfg))
            if progress is not None:
                progress(1)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: the workers must not inherit the parent's torch/OpenMP thread pools
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        futures = [pool.submit(_make_shard, root, data_seed, s, per_shard, cfg) for s in shards]
        out = []
        for fut in futures:
            out.append(fut.result())
            if progress is not None:
                progress(1)
    return out


def heldout_subject(data_seed: int, index: int, cfg: SynthConfig = SynthConfig()) -> Subject:
    """Held-out subject ``index`` (never a training body); one view, no jitter matters."""
    return make_subject(subject_seed(data_seed, index, HELDOUT), cfg)
