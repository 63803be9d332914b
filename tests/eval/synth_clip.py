"""Synthetic held-out clips for the 3D figures of `streamrecon evaluate`: one anny subject of the
held-out seed stream (never a training body), dressed, moving through a short pose sequence (two
random poses of ``synth.poses``, interpolated on the rotations), rendered per frame by
``synth.render`` with a fixed camera. Ground truth is exact: the dressed mesh (its outer surface,
meshed like a network's output) and the body. The fitted body of each frame comes from the true
BlazePose landmarks with the measured detector noise (``synth.landmarks.perturb``), fitted frame
after frame by the product's ``BodyFitter``.

Frames: the frame is the crop itself, rect (0, 0, R, R); meshes in the ``image`` frame.
Needs the ``train`` extra (anny, libigl, trimesh + embreex)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional

import numpy as np


@dataclass
class ClipFrame:
    """``image`` [R, R, 3] uint8 (a shaded grey person on black), ``mask`` [R, R] bool, ``true_mesh``
    (vertices [V, 3], faces [F, 3]) the dressed person's outer surface in the image frame,
    ``body`` the fitted body's ``to_params`` dict, ``fit`` its ``BodyFit``, ``true_body`` [V, 3]
    the true undressed body in the image frame (the body model's vertices)."""

    image: np.ndarray
    mask: np.ndarray
    true_mesh: tuple
    body: dict
    fit: object
    true_body: np.ndarray


@dataclass
class Clip:
    res: int
    rect: tuple
    frames: List[ClipFrame]
    crop_per_metre: float


def _interp(a: dict, b: dict, t: float) -> dict:
    """Pose ``a`` turned a share ``t`` of the way to pose ``b`` (per bone, on the rotation)."""
    from streamrecon.body.model import matrix_to_rotvec, rotvec_to_matrix

    out = {}
    for k in a:
        r0, r1 = a[k][:3, :3], b[k][:3, :3]
        m = np.eye(4)
        m[:3, :3] = r0 @ rotvec_to_matrix(t * matrix_to_rotvec(r0.T @ r1))
        out[k] = m
    return out


def outer_surface(vertices_crop: np.ndarray, faces: np.ndarray, resolution: int):
    """The outer surface (crop frame) of a dressed body (body + garments concatenated) meshed at
    ``resolution`` from its exact winding-number occupancy, as ``eval-model`` makes ground truth."""
    from streamrecon.training.evaluate import marching_cubes, occupancy_volume, winding_query

    vol = occupancy_volume(winding_query(vertices_crop, faces), resolution)
    return marching_cubes(vol, resolution)


def make_clip(index: int = 3, n_frames: int = 4, res: int = 80, mesh_res: int = 64, yaw: float = 0.35,
              amplitude: float = 0.35, noise: float = 1.0, data_seed: int = 0) -> Clip:
    """A clip of held-out subject ``index`` (see the module docstring): ``n_frames`` frames at
    ``res`` pixels, true meshes at ``mesh_res``, the person turned ``yaw`` radians from facing the
    camera, poses drawn at ``amplitude``, detector noise x ``noise``."""
    from streamrecon.body.fit import BodyFitter, FitConfig
    from streamrecon.body.params import to_params
    from streamrecon.mesh.coords import crop_to_image_points
    from streamrecon.training.synth import bodies, camera, clothing, poses, render
    from streamrecon.training.synth.generate import HELDOUT, _concat, subject_seed, to_crop
    from streamrecon.training.synth.landmarks import body_vertices, perturb, true_landmarks, view_landmarks

    model = bodies.load_anny()
    seed = subject_seed(data_seed, index, HELDOUT)
    rng = np.random.default_rng(seed)
    pheno = bodies.sample_phenotype(model, rng)
    p0, p1 = poses.sample_pose(rng, amplitude=amplitude), poses.sample_pose(rng, amplitude=amplitude)
    outfit = clothing.sample_outfit(rng)
    cloth_seed = int(rng.integers(2 ** 31))
    noise_rng = np.random.default_rng(int(rng.integers(2 ** 31)))
    dressed, anny_bodies = [], []
    for k in range(n_frames):
        body = bodies.make_body(model, pheno, _interp(p0, p1, k / max(n_frames - 1, 1)))
        # the same garments every frame: one seed for their wrinkles
        parts = [(body.vertices, body.faces)] + clothing.dress(body, outfit, np.random.default_rng(cloth_seed))
        dressed.append(_concat(parts))
        anny_bodies.append(body.vertices)
    cam = camera.make_camera(np.concatenate([v for v, _ in dressed]), yaw, None)
    rect = (0.0, 0.0, float(res), float(res))
    fitter = BodyFitter(config=FitConfig())
    frames, prev = [], None
    for (v, f), anny_v in zip(dressed, anny_bodies):
        vc, fc = to_crop(cam, v, f)
        r = render.render(vc, fc, res)
        image = np.repeat(render.shade(r)[..., :1], 3, axis=2)
        sv, sf = outer_surface(vc, fc, mesh_res)
        true_mesh = (crop_to_image_points(sv, rect), sf[:, ::-1].copy())  # y flip: faces stay outward
        lm = perturb(view_landmarks(true_landmarks(anny_v), cam, res), noise_rng, noise, swap_share=0.0)
        fit = fitter.fit(lm.keypoints, lm.world, r.mask, previous=prev)
        prev = fit
        true_body = crop_to_image_points(cam.apply(body_vertices(anny_v).astype(np.float64)), rect)
        frames.append(ClipFrame(image, r.mask, true_mesh, to_params(fit), fit, true_body))
    return Clip(res, rect, frames, cam.crop_per_metre)


@functools.lru_cache(maxsize=4)
def cached_clip(**kw) -> Clip:
    """``make_clip`` once per argument set per test session (tests share clips)."""
    return make_clip(**kw)


def flattened(vertices: np.ndarray, share: float = 0.2) -> np.ndarray:
    """``vertices`` [V, 3] squashed to ``share`` of their depth about their centroid."""
    v = np.asarray(vertices, np.float64).copy()
    c = v[:, 2].mean()
    v[:, 2] = c + share * (v[:, 2] - c)
    return v


def reconstruct(model, clip: Clip, resolution: int = 64, with_body: bool = True) -> list:
    """The meshes (vertices, faces; image frame) ``model`` makes of every frame of ``clip`` through
    the product's path (``recon.reconstruct_person``; the fitted body given to models that read it)."""
    from streamrecon.recon import ReconConfig, reconstruct_person

    cfg = ReconConfig(resolution=resolution, frame="image", normals=False)
    out = []
    for fr in clip.frames:
        m = reconstruct_person(model, fr.image, clip.rect, fr.mask, cfg, body=fr.fit if with_body else None)
        out.append((m.vertices.astype(np.float64), m.faces.astype(np.int64)))
    return out


def clip_run_dir(root, clip: Clip, meshes: Optional[list] = None, bodies: bool = True, model: str = "test"):
    """A run directory of ``clip`` with ``meshes`` (default: the true meshes) and its fitted
    bodies (``bodies=False``: a run without them)."""
    from streamrecon.types import Mesh

    from run_dirs import FrameRecord, PersonRecord, write_run_dir

    meshes = meshes if meshes is not None else [fr.true_mesh for fr in clip.frames]
    recs = []
    for k, (fr, (v, f)) in enumerate(zip(clip.frames, meshes)):
        p = PersonRecord(Mesh(v, f, frame="image"), clip.rect, fr.mask, fr.body if bodies else None)
        recs.append(FrameRecord(index=k, image=fr.image, persons=[p], time=k / 25.0))
    return write_run_dir(root, recs, model=model)
