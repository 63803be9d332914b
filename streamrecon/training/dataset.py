"""Batches from synthetic shards (format: ``streamrecon.synth.generate.write_shard``).

All shards of a directory are unpacked once into tensors on the training device (masks as bool,
points as float16), and a batch is assembled there by indexing with a ``torch.Generator``: the
same code feeds a CPU run and a GPU run, without a loader process. An item is one
(subject, view): the view's silhouette as the network input, the subject's labelled points mapped
into that view's crop frame, and silhouette rays (pixels with their mask value) for the
image-space loss. Held-out bodies never enter here (they come from another seed stream).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """``image`` [B, 1, R, R] mask in {0, 1}; ``points`` [B, P, 3] crop frame; ``labels`` [B, P]
    float {0, 1}; ``rays`` [B, Q, 2] crop (x, y) of silhouette pixels; ``ray_mask`` [B, Q] float."""

    image: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    rays: torch.Tensor
    ray_mask: torch.Tensor

    def to(self, device) -> "Batch":
        return Batch(*(getattr(self, k).to(device) for k in ("image", "points", "labels", "rays", "ray_mask")))


def read_shard(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class ShardDataset:
    """The shards ``files`` (or all ``shard_*.npz`` of ``root`` but ``exclude``) as device tensors:
    ``masks`` [S, V, R, R] bool, ``points`` [S, P, 3] float16 world metres, ``occ`` [S, P] bool,
    ``cams`` [S, V, 4, 4] float32 world -> crop."""

    def __init__(self, root: Optional[Path] = None, files: Optional[List[Path]] = None, exclude: tuple = (), device="cpu"):
        self.root = Path(root) if root is not None else None
        self.fixed = [Path(f) for f in files] if files is not None else None
        self.exclude = set(Path(p).name for p in exclude)
        self.device = torch.device(device)
        self.loaded: List[str] = []
        self._parts: List[Dict[str, torch.Tensor]] = []
        self.refresh()

    def _candidates(self) -> List[Path]:
        if self.fixed is not None:
            return self.fixed
        return sorted(p for p in self.root.glob("shard_*.npz") if p.name not in self.exclude)

    def refresh(self) -> int:
        """Load shards that appeared since the last call; returns the number of subjects."""
        new = False
        for p in self._candidates():
            if str(p) in self.loaded:
                continue
            try:
                d = read_shard(p)
            except Exception as exc:  # a shard being written by another process
                log.warning("skipping %s: %s", p, exc)
                continue
            s, v = d["cameras"].shape[:2]
            res = int(d["res"])
            masks = np.unpackbits(d["masks"], axis=-1)[..., : res * res].reshape(s, v, res, res).astype(bool)
            n = d["points"].shape[1]
            occ = np.unpackbits(d["occupancy"], axis=-1)[..., :n].astype(bool)
            self._parts.append({
                "masks": torch.from_numpy(masks).to(self.device),
                "points": torch.from_numpy(d["points"]).to(self.device),
                "occ": torch.from_numpy(occ).to(self.device),
                "cams": torch.from_numpy(d["cameras"]).to(self.device),
            })
            self.loaded.append(str(p))
            new = True
        if new:
            self.masks, self.points, self.occ, self.cams = (torch.cat([p[k] for p in self._parts]) for k in ("masks", "points", "occ", "cams"))
        elif not self._parts:
            self.masks = None
        return self.num_subjects

    @property
    def num_subjects(self) -> int:
        return 0 if not self._parts else int(self.points.shape[0])

    def __len__(self) -> int:
        return 0 if not self._parts else int(self.masks.shape[0] * self.masks.shape[1])

    def batch(self, gen: torch.Generator, batch: int, n_points: int, n_rays: int, in_res: int,
              mask_noise: float = 0.3, items: Optional[torch.Tensor] = None) -> Batch:
        """A random batch (``items``: flat (subject * V + view) indices to use instead of random)."""
        dev = self.device
        s, v, res, _ = self.masks.shape
        if items is None:
            items = torch.randint(0, s * v, (batch,), generator=gen, device=dev)
        si, vi = items // v, items % v
        mask = self.masks[si, vi].float()  # [B, R, R]
        p_all = self.points.shape[1]
        sel = torch.randint(0, p_all, (len(items), n_points), generator=gen, device=dev)
        pts = torch.gather(self.points[si].float(), 1, sel[..., None].expand(-1, -1, 3))
        lab = torch.gather(self.occ[si], 1, sel).float()
        cam = self.cams[si, vi]
        pts = pts @ cam[:, :3, :3].transpose(1, 2) + cam[:, None, :3, 3]
        # Silhouette rays: half on the person (the k-th on-pixel, k uniform), half anywhere.
        flat = mask.reshape(len(items), -1)
        half = n_rays // 2
        csum = flat.cumsum(1)
        n_on = csum[:, -1:].clamp(min=1)
        k = (torch.rand(len(items), half, generator=gen, device=dev) * n_on).floor() + 1
        on_pix = torch.searchsorted(csum.contiguous(), k.contiguous()).clamp(max=res * res - 1)
        any_pix = torch.randint(0, res * res, (len(items), n_rays - half), generator=gen, device=dev)
        pix = torch.cat([on_pix, any_pix], 1)
        rows, cols = pix // res, pix % res
        rays = torch.stack([-1 + 2 * cols.float() / (res - 1), 1 - 2 * rows.float() / (res - 1)], -1)
        ray_mask = torch.gather(flat, 1, pix)
        img = mask[:, None]
        if in_res != res:
            img = (F.interpolate(img, size=(in_res, in_res), mode="bilinear", align_corners=True) > 0.5).float()
        if mask_noise > 0:
            img = perturb_masks(img, gen, mask_noise)
        return Batch(img, pts, lab, rays, ray_mask)


def perturb_masks(img: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """Dilate or erode a share ``p`` of the masks by one pixel: real segmentations are never exact."""
    u = torch.rand(len(img), generator=gen, device=img.device)[:, None, None, None]
    dil = F.max_pool2d(img, 3, 1, 1)
    ero = -F.max_pool2d(-img, 3, 1, 1)
    return torch.where(u < p / 2, dil, torch.where(u < p, ero, img))
