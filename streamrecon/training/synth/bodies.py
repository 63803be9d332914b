"""The anny body model (MakeHuman-based, code Apache-2.0, assets CC0), default topology only.

World frame of anny (and of everything in ``streamrecon.training.synth`` before the camera): metres,
x = the person's left, y = the person's back (the person faces -y), z = up, origin near the pelvis.
anny builds a ~790 MB cache on its first start (about a minute); it goes under
``<cache_dir>/anny`` (default ``~/.cache/streamrecon/anny``), never into the repository.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import BackendUnavailableError

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.path.expanduser("~/.cache/streamrecon"))


def cache_dir(path: Optional[str] = None) -> Path:
    """The cache root: ``path``, else ``$STREAMRECON_CACHE``, else ``~/.cache/streamrecon``."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("STREAMRECON_CACHE")
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR


def _import_anny():
    try:
        import anny  # noqa: F401
        import anny.paths
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError(
            f"the synthetic data generator needs anny ({exc}); install it with "
            "pip install 'streamrecon[train]'"
        ) from exc
    return anny


@functools.lru_cache(maxsize=2)
def load_anny(cache: Optional[str] = None, skinning_method: Optional[str] = None):
    """The anny model (torch, float64, CPU) with its cache under ``<cache>/anny``. Cached per cache
    dir: building it the first time takes about a minute. ``skinning_method``: anny's (None: its
    default)."""
    anny = _import_anny()
    root = cache_dir(cache) / "anny"
    root.mkdir(parents=True, exist_ok=True)
    anny.paths.set_anny_cache_path(root)
    log.info("loading anny (cache %s)", root)
    # topology="anny" is the default topology; the smpl/smplx ones download non-commercial data.
    kw = {} if skinning_method is None else {"skinning_method": skinning_method}
    return anny.Anny(topology="anny", **kw)


@dataclass(frozen=True)
class Body:
    """A posed body. ``vertices`` [V, 3] float64 world metres, ``faces`` [F, 3] int64 (outward,
    counter-clockwise), ``bone_weights`` [V, G] float32 soft membership of each vertex in the
    body-part groups of ``PART_GROUPS`` (rows sum to <= 1), ``height`` metres (rest pose)."""

    vertices: np.ndarray
    faces: np.ndarray
    bone_weights: np.ndarray
    height: float
    phenotype: dict


# Body-part groups used by clothing (bone-name prefixes of anny's default rig).
PART_GROUPS = {
    "torso": ("root", "spine", "pelvis", "clavicle", "shoulder", "breast"),
    "upperarm": ("upperarm",),
    "lowerarm": ("lowerarm",),
    "hand": ("wrist", "finger", "metacarpal"),
    "upperleg": ("upperleg",),
    "lowerleg": ("lowerleg",),
    "foot": ("foot", "toe"),
    "neck": ("neck",),
    "head": ("head", "jaw", "eye", "oris", "levator", "risorius", "oculi", "orbicularis", "special", "tongue", "temporal"),
}
PART_NAMES = tuple(PART_GROUPS)


def sample_phenotype(model, rng: np.random.Generator, adults_only: bool = True) -> dict:
    """Draw a body shape from anny's shape distribution (age, gender, height, weight, muscle,
    proportions) with a generator seeded by ``rng``. ``adults_only`` restricts the morphological
    age to 16..80 years, the people a camera is pointed at in practice."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    dist = _shape_distribution(model)
    seed = int(rng.integers(0, 2**62))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if adults_only:
            lo, hi = 16.0, 80.0
            dist.morphological_age_distribution = torch.distributions.Uniform(
                torch.tensor(lo, dtype=model.dtype), torch.tensor(hi, dtype=model.dtype))
        _, pheno = dist.sample(1)
    del SimpleShapeDistribution
    return {k: float(v.reshape(-1)[0]) for k, v in pheno.items()}


@functools.lru_cache(maxsize=2)
def _shape_distribution(model):
    from anny.shape_distribution import SimpleShapeDistribution

    return SimpleShapeDistribution(model)


@functools.lru_cache(maxsize=2)
def _part_weights(model) -> np.ndarray:
    """[V, G] soft membership of each vertex in the groups of PART_GROUPS (from skinning weights)."""
    labels = list(model.bone_labels)
    group_of_bone = np.full(len(labels), -1)
    for b, name in enumerate(labels):
        for g, prefixes in enumerate(PART_GROUPS.values()):
            if name.startswith(prefixes):
                group_of_bone[b] = g
                break
    idx = model.vertex_bone_indices.detach().cpu().numpy()
    w = model.vertex_bone_weights.detach().cpu().numpy()
    out = np.zeros((idx.shape[0], len(PART_GROUPS)), np.float32)
    for k in range(idx.shape[1]):
        g = group_of_bone[idx[:, k]]
        ok = g >= 0
        np.add.at(out, (np.nonzero(ok)[0], g[ok]), w[ok, k])
    return out


def make_body(model, phenotype: dict, pose: Optional[dict] = None) -> Body:
    """Run anny for one phenotype and pose (``pose``: bone label -> [4, 4] delta in anny's
    'local-ref' parameterisation, world-aligned axes; None = rest pose)."""
    import torch

    pheno = {k: torch.tensor([v], dtype=model.dtype) for k, v in phenotype.items()}
    params = None
    if pose:
        params = {k: torch.as_tensor(v, dtype=model.dtype)[None] for k, v in pose.items()}
    with torch.no_grad():
        out = model(pose_parameters=params, phenotype_kwargs=pheno)
        rest = out["rest_vertices"][0].cpu().numpy()
        verts = out["vertices"][0].cpu().numpy()
    faces = _faces(model)
    height = float(rest[:, 2].max() - rest[:, 2].min())
    return Body(verts.astype(np.float64), faces, _part_weights(model), height, dict(phenotype))


@functools.lru_cache(maxsize=2)
def _faces(model) -> np.ndarray:
    return model.get_triangular_faces().detach().cpu().numpy().astype(np.int64)
