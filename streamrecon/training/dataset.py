"""Batches from synthetic shards (format: ``streamrecon.training.synth.generate.write_shard``).

All shards of a directory are unpacked once into tensors on the training device (masks as bool,
points as float16), and a batch is assembled there by indexing with a ``torch.Generator``: the
same code feeds a CPU run and a GPU run, without a loader process. An item is one
(subject, view): the view's silhouette as the network input, the subject's labelled points mapped
into that view's crop frame, and silhouette rays (pixels with their mask value) for the
image-space loss. Held-out bodies never enter here (they come from another seed stream).

Only views whose yaw is within ``max_yaw_deg`` (default 90: the person faces the camera, possibly
turned sideways) are used: from a silhouette alone a person facing the camera and one facing away
are nearly the same picture, and a model shown both learns their blurred average.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

DEFAULT_UNIFORM_SHARE = 0.125  # synth.generate.SynthConfig.uniform_share when the shards were first made


def stored_uniform_points(shard: Dict[str, np.ndarray]) -> int:
    """How many of each subject's points (the last ones) are uniform in its box: the shard's
    ``uniform_points``, or for shards written before that field, the layout of that time."""
    if "uniform_points" in shard:
        return int(shard["uniform_points"])
    return int(round(shard["points"].shape[1] * DEFAULT_UNIFORM_SHARE))


@dataclass
class Batch:
    """``image`` [B, 1, R, R] mask in {0, 1} (then the shading channel, if asked for); ``points`` [B, P, 3] crop frame; ``labels`` [B, P]
    float {0, 1}; ``rays`` [B, Q, 2] crop (x, y) of silhouette pixels; ``ray_mask`` [B, Q] float;
    ``zrange`` [B, 2] crop-frame depth range of the body (its labelled inside points, widened by
    a 5 cm margin): the free points lie outside it, the silhouette rays may be sampled inside it."""

    image: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    rays: torch.Tensor
    ray_mask: torch.Tensor
    zrange: torch.Tensor
    depth_xy: Optional[torch.Tensor] = None
    """[B, Q, 2] crop (x, y) of on-person pixels with depth targets (``depth_pixels`` > 0)"""
    depth_z: Optional[torch.Tensor] = None
    """[B, Q, 2] the crop z of the front and back surface there"""
    depth_ok: Optional[torch.Tensor] = None
    """[B, Q] float: 1 where the depth maps hold both surfaces"""
    cm: Optional[torch.Tensor] = None
    """[B] one centimetre in crop units (the camera's scale)"""

    def to(self, device) -> "Batch":
        return Batch(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device))
                        for f in fields(self)})


def read_shard(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class ShardDataset:
    """The shards ``files`` (or all ``shard_*.npz`` of ``root`` but ``exclude``) as device tensors.
    Per subject: ``points`` [S, P, 3] float16 world metres, ``occ`` [S, P] bool. Per item (one
    view within the yaw limit; views outside it are dropped as the shard is read, they are never
    drawn): ``masks`` [I, R, R] bool, ``cams`` [I, 4, 4] float32 world -> crop, ``subject`` [I]
    (its row of ``points``), ``depths`` [I, 2, R, R] float16 front/back crop z (shards with depth
    maps). Half the stored views face away (the generator's yaws go round the circle), so keeping
    the items only halves the memory of masks and depth maps (10240 subjects: ~7.5 GB, not ~14)."""

    def __init__(self, root: Optional[Path] = None, files: Optional[List[Path]] = None, exclude: tuple = (), device="cpu",
                 max_yaw_deg: float = 90.0):
        self.max_yaw_deg = float(max_yaw_deg)
        self.root = Path(root) if root is not None else None
        self.fixed = [Path(f) for f in files] if files is not None else None
        self.exclude = set(Path(p).name for p in exclude)
        self.device = torch.device(device)
        self.loaded: List[str] = []
        self._parts: List[Dict[str, torch.Tensor]] = []
        self.uniform_points = 0
        self.has_depths = False
        self.has_body = False
        self.views_read = 0  # views in the shards read (kept or not)
        self.masks = self.points = self.occ = self.cams = self.subject = self.depths = self.body = None
        self.refresh()

    def _candidates(self) -> List[Path]:
        if self.fixed is not None:
            return self.fixed
        return sorted(p for p in self.root.glob("shard_*.npz") if p.name not in self.exclude)

    def _read(self, p: Path, first_subject: int):
        """One shard as (this dataset's keys, its uniform points per subject, views read), its
        views outside the yaw limit dropped."""
        d = read_shard(p)
        s, v = d["cameras"].shape[:2]
        res = int(d["res"])
        yaw = view_yaw(torch.from_numpy(np.ascontiguousarray(d["cameras"]))).numpy()
        keep = np.abs(yaw) <= self.max_yaw_deg * np.pi / 180 + 1e-6  # [S, V]
        si, vi = np.nonzero(keep)
        masks = np.unpackbits(d["masks"][si, vi], axis=-1)[..., : res * res].reshape(len(si), res, res).astype(bool)
        n = d["points"].shape[1]
        part = {"masks": masks, "points": d["points"], "occ": np.unpackbits(d["occupancy"], axis=-1)[..., :n].astype(bool),
                "cams": d["cameras"][si, vi], "subject": (first_subject + si).astype(np.int64)}
        if "depths" in d:
            part["depths"] = d["depths"][si, vi]
        if "body_depths" in d:
            part["body"] = d["body_depths"][si, vi]
        return part, stored_uniform_points(d), s * v

    def refresh(self) -> int:
        """Load shards that appeared since the last call; returns the number of subjects."""
        new = False
        for p in self._candidates():
            if str(p) in self.loaded:
                continue
            try:
                part, n_uni, views = self._read(p, sum(len(q["points"]) for q in self._parts))
            except Exception as exc:  # a shard being written by another process
                log.warning("skipping %s: %s", p, exc)
                continue
            if self._parts and n_uni != self.uniform_points:
                raise ValueError(f"{p}: {n_uni} uniform points per subject, other shards have {self.uniform_points}")
            has_depths, has_body = "depths" in part, "body" in part
            if self._parts and has_depths != self.has_depths:
                raise ValueError(f"{p}: {'has' if has_depths else 'lacks'} depth maps, unlike the shards loaded before it")
            if self._parts and has_body != self.has_body:
                raise ValueError(f"{p}: {'has' if has_body else 'lacks'} fitted bodies, unlike the shards loaded before it")
            if self._parts:  # the join below must not fail half way (it consumes the parts)
                for k, a in part.items():
                    if a.shape[1:] != tuple(self._parts[0][k].shape[1:]):
                        what = "per subject" if k in ("points", "occ") else "per view"
                        raise ValueError(f"{p}: {k} {what} is {list(a.shape[1:])}, other shards have "
                                         f"{list(self._parts[0][k].shape[1:])} (shards of one run must share their settings)")
            self.uniform_points, self.has_depths, self.has_body = n_uni, has_depths, has_body
            self._parts.append({k: torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for k, a in part.items()})
            self.views_read += views
            self.loaded.append(str(p))
            new = True
        if new:
            # One key at a time, dropping the parts' copy as it goes, and the result kept as the
            # only part: memory holds the data once (plus one key's worth while joining), not twice.
            keys = (("masks", "points", "occ", "cams", "subject") + (("depths",) if self.has_depths else ())
                    + (("body",) if self.has_body else ()))
            joined = {}
            self.masks = self.points = self.occ = self.cams = self.subject = self.depths = self.body = None  # or the old join stays alive
            for k in keys:
                joined[k] = torch.cat([p.pop(k) for p in self._parts]) if len(self._parts) > 1 else self._parts[0][k]
            self._parts = [joined]
            for k in keys:
                setattr(self, k, joined[k])
            from ..cli.process import release_free_heap

            release_free_heap()  # the shards' own copies are free now, but resident until trimmed
        return self.num_subjects

    @property
    def num_subjects(self) -> int:
        return 0 if not self._parts else int(self.points.shape[0])

    def __len__(self) -> int:
        """Usable items: (subject, view) pairs within the yaw limit."""
        return 0 if not self._parts else int(self.cams.shape[0])

    def batch(self, gen: torch.Generator, batch: int, n_points: int, n_rays: int, in_res: int,
              mask_noise: float = 0.3, items: Optional[torch.Tensor] = None, flip: bool = True,
              free: float = 0.125, uniform: float = 0.0, ray_points: int = 0, shading: bool = False,
              depth_pixels: int = 0, body: bool = False, outside: float = 0.0) -> Batch:
        """A random batch (``items``: indices of items, i.e. kept views, to use instead of random).
        ``flip``: mirror half the items left-right (mask columns and point x): a mirrored person
        is a person, which doubles the bodies seen. ``free``: share of extra points drawn in the
        whole crop cube in front of or behind the body's depth range (from its inside points, with
        a 5 cm margin), labelled empty: the stored samples only cover the body's bounding box,
        while reconstruction queries the whole cube. ``uniform``: share of the labelled points drawn
        from the subject's uniform-in-bounding-box samples (0: draw from all stored points alike,
        i.e. in their stored proportion). ``ray_points``: extra labelled points along the rays of
        on-person pixels, from the view's depth maps (shards with ``depths``): per ray one empty
        point in front of the front surface and one behind the back surface (up to 8 cm out,
        denser near it: exact labels) and one point just inside each of the two (within
        min(2 cm, half the ray's span): inside but for a rim thinner than that). ``shading``: a
        second image channel, the view's front depth map shaded under a random light
        (``embedded.shading.random_shading``; shards with ``depths``). ``depth_pixels``: that many
        random on-person pixels per view with the crop z of the front and back surface there
        (``depth_xy``, ``depth_z``, ``depth_ok``: targets of a ``depth_prior`` net; shards with
        ``depths``). ``body``: three more image channels, the fitted body's front and back crop z
        (0 off it) and its coverage (``body.conditioning.BodyMaps``; shards with ``body_depths``).
        ``outside``: share of extra points (of ``n_points``) at pixels off the person's silhouette
        (by more than 2 pixels: the input mask may be dilated), at any depth of the crop cube,
        labelled empty: exact, since the silhouette is the whole dressed body's projection. The
        stored samples and the free points never reach the crop's borders at the body's depth,
        where a network is otherwise free to grow sheets."""
        dev = self.device
        res = self.masks.shape[-1]
        if items is None:
            items = torch.randint(0, len(self), (batch,), generator=gen, device=dev)
        si = self.subject[items]
        mask = self.masks[items].float()  # [B, R, R]
        p_all = self.points.shape[1]
        n_uni = int(round(uniform * n_points)) if (uniform > 0 and self.uniform_points > 0) else 0
        sel = torch.randint(0, p_all - (self.uniform_points if n_uni else 0), (len(items), n_points - n_uni), generator=gen, device=dev)
        if n_uni:
            sel = torch.cat([sel, torch.randint(p_all - self.uniform_points, p_all, (len(items), n_uni), generator=gen, device=dev)], 1)
        pts = torch.gather(self.points[si].float(), 1, sel[..., None].expand(-1, -1, 3))
        lab = torch.gather(self.occ[si], 1, sel).float()
        cam = self.cams[items]
        pts = pts @ cam[:, :3, :3].transpose(1, 2) + cam[:, None, :3, 3]
        inside = lab > 0.5
        inf = torch.tensor(float("inf"), device=dev)
        zlo = torch.where(inside, pts[..., 2], inf).amin(1, keepdim=True)
        zhi = torch.where(inside, pts[..., 2], -inf).amax(1, keepdim=True)
        scale = cam[:, 0, :3].norm(dim=-1)  # [B]: crop units per metre (the camera's scale)
        margin = 0.05 * scale[:, None]  # 5 cm in crop units
        empty = ~torch.isfinite(zlo)  # no inside point drawn: the whole cube
        zrange = torch.cat([torch.where(empty, -1.0, (zlo - margin).clamp(min=-1)),
                            torch.where(empty, 1.0, (zhi + margin).clamp(max=1))], 1)
        n_free = int(round(free * n_points))
        if n_free > 0:
            lo_len = (zlo - margin + 1).clamp(min=0)
            hi_len = (1 - zhi - margin).clamp(min=0)
            u = torch.rand(len(items), n_free, generator=gen, device=dev) * (lo_len + hi_len).clamp(min=1e-6)
            z = torch.where(u < lo_len, -1 + u, zhi + margin + (u - lo_len))
            xy = torch.rand(len(items), n_free, 2, generator=gen, device=dev) * 2 - 1
            pts = torch.cat([pts, torch.cat([xy, z[..., None]], -1)], 1)
            lab = torch.cat([lab, torch.zeros(len(items), n_free, device=dev)], 1)
        flat = mask.reshape(len(items), -1)
        n_out = int(round(outside * n_points))
        if n_out > 0:
            near = F.max_pool2d(mask[:, None], 5, 1, 2)[:, 0].reshape(len(items), -1)  # the silhouette grown by 2 px
            off = (near < 0.5).float()
            ocsum = off.cumsum(1).contiguous()
            k = (torch.rand(len(items), n_out, generator=gen, device=dev) * ocsum[:, -1:].clamp(min=1)).floor() + 1
            opix = torch.searchsorted(ocsum, k.contiguous()).clamp(max=res * res - 1)
            oxy = torch.stack([-1 + 2 * (opix % res).float() / (res - 1), 1 - 2 * (opix // res).float() / (res - 1)], -1)
            oz = torch.rand(len(items), n_out, 1, generator=gen, device=dev) * 2 - 1
            pts = torch.cat([pts, torch.cat([oxy, oz], -1)], 1)
            lab = torch.cat([lab, torch.zeros(len(items), n_out, device=dev)], 1)
        csum = flat.cumsum(1).contiguous()
        n_on = csum[:, -1:].clamp(min=1)

        def on_pixels(count):  # the k-th on-pixel, k uniform
            k = (torch.rand(len(items), count, generator=gen, device=dev) * n_on).floor() + 1
            return torch.searchsorted(csum, k.contiguous()).clamp(max=res * res - 1)

        def pixel_xy(pix):
            rows, cols = pix // res, pix % res
            return torch.stack([-1 + 2 * cols.float() / (res - 1), 1 - 2 * rows.float() / (res - 1)], -1)

        def surface_z(pix, what):  # the views' front and back crop z at pixels [B, Q], and where both hold
            if self.depths is None:
                raise ValueError(f"{what} needs shards with depth maps (regenerate them: synth depths=True)")
            dm = self.depths[items].reshape(len(items), 2, -1).float()
            zf, zb = torch.gather(dm[:, 0], 1, pix), torch.gather(dm[:, 1], 1, pix)
            return zf, zb, torch.isfinite(zf) & torch.isfinite(zb) & (zb > zf)  # (masks and depth maps agree)

        if ray_points > 0:
            q = max(1, ray_points // 4)
            pix = on_pixels(q)
            zf, zb, ok = surface_z(pix, "ray_points")
            zf, zb = torch.where(ok, zf, 2.0), torch.where(ok, zb, 2.0)  # a failed pixel: both far behind
            cm = 0.01 * scale[:, None]  # [B, 1]: 1 cm in crop units
            r = torch.rand(len(items), q, 4, generator=gen, device=dev)
            out_d = 8 * cm[..., None] * r[..., :2] ** 2
            in_d = torch.minimum(2 * cm, 0.5 * (zb - zf).clamp(min=0))[..., None] * (0.1 + 0.9 * r[..., 2:])
            z = torch.stack([zf - out_d[..., 0], zf + in_d[..., 0], zb - in_d[..., 1], zb + out_d[..., 1]], -1)
            lab_r = torch.tensor([0.0, 1.0, 1.0, 0.0], device=dev).expand(len(items), q, 4)
            lab_r = torch.where(ok[..., None], lab_r, torch.zeros_like(lab_r))
            xy = pixel_xy(pix)[:, :, None, :].expand(-1, -1, 4, -1)
            pts = torch.cat([pts, torch.cat([xy, z[..., None]], -1).reshape(len(items), -1, 3)], 1)
            lab = torch.cat([lab, lab_r.reshape(len(items), -1)], 1)
        depth_xy = depth_z = depth_ok = None
        if depth_pixels > 0:
            pix = on_pixels(depth_pixels)
            zf, zb, ok = surface_z(pix, "depth_pixels")
            depth_z = torch.where(ok[..., None], torch.stack([zf, zb], -1), 0.0)
            depth_ok, depth_xy = ok.float(), pixel_xy(pix)
        # Silhouette rays: half on the person, half anywhere.
        half = n_rays // 2
        on_pix = on_pixels(half)
        any_pix = torch.randint(0, res * res, (len(items), n_rays - half), generator=gen, device=dev)
        pix = torch.cat([on_pix, any_pix], 1)
        rays = pixel_xy(pix)
        ray_mask = torch.gather(flat, 1, pix)
        img = mask[:, None]
        if in_res != res:
            img = (F.interpolate(img, size=(in_res, in_res), mode="bilinear", align_corners=True) > 0.5).float()
        if mask_noise > 0:
            img = perturb_masks(img, gen, mask_noise)
        if shading:
            from ..models.embedded.shading import normalise, random_grey

            if self.depths is None:
                raise ValueError("shading needs shards with depth maps (regenerate them: synth depths=True)")
            grey = random_grey(self.depths[items, 0], gen)[:, None]  # 0 (black) off the person
            if in_res != res:
                grey = F.interpolate(grey, size=(in_res, in_res), mode="bilinear", align_corners=True)
            # normalised within the input mask as the product does: a dilated mask shows a ring of
            # background, an eroded one loses the rim; the channel never reveals the exact outline
            img = torch.cat([img, normalise(grey[:, 0], img[:, 0] > 0.5)[:, None]], 1)
        if body:
            if self.body is None:
                raise ValueError("body: needs shards with fitted bodies (generate them: synth body=True)")
            bd = self.body[items].float()  # [B, 2, R, R], +inf off the body
            cover = torch.isfinite(bd[:, :1])
            chans = torch.cat([torch.where(cover, bd, torch.zeros_like(bd)), cover.float()], 1)
            if in_res != res:
                chans = F.interpolate(chans, size=(in_res, in_res), mode="nearest")
            img = torch.cat([img, chans], 1)
        if flip:
            f = torch.rand(len(items), generator=gen, device=dev) < 0.5
            img = torch.where(f[:, None, None, None], img.flip(-1), img)
            sx = (1.0 - 2.0 * f.float())[:, None, None]  # -1 where flipped

            def mirror_x(t):
                return torch.cat([t[..., :1] * sx, t[..., 1:]], -1)

            pts, rays = mirror_x(pts), mirror_x(rays)
            depth_xy = None if depth_xy is None else mirror_x(depth_xy)
        return Batch(img, pts, lab, rays, ray_mask, zrange, depth_xy, depth_z, depth_ok, 0.01 * scale)


def view_yaw(cams: torch.Tensor) -> torch.Tensor:
    """[..., 4, 4] world -> crop cameras (``streamrecon.training.synth.camera``) -> [...] yaw in (-pi, pi]
    (0: the person faces the camera)."""
    return torch.atan2(-cams[..., 0, 1], cams[..., 0, 0])


def perturb_masks(img: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """Dilate or erode a share ``p`` of the masks by one pixel: real segmentations are never exact."""
    u = torch.rand(len(img), generator=gen, device=img.device)[:, None, None, None]
    dil = F.max_pool2d(img, 3, 1, 1)
    ero = -F.max_pool2d(-img, 3, 1, 1)
    return torch.where(u < p / 2, dil, torch.where(u < p, ero, img))
