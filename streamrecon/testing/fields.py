"""Analytic occupancy fields in the crop frame, used as ``query_fn`` stand-ins for a network.

A ``query_fn`` maps torch float32 points [N, 3] in the **crop frame** (``streamrecon.types``:
x right, y up, z away from the camera, the crop box is [-1, 1]^3) to float32 occupancy [N] in
[0, 1], 0.5 on the surface, > 0.5 inside. Each field here is a signed distance function pushed
through a sigmoid, ``occ = sigmoid(-sdf / width)``, so the 0.5 level set is exactly the analytic
surface and the field is smooth across it (marching cubes interpolates it well).

The fields are pure and pointwise: a point's value does not depend on the batch it comes in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

import torch

QueryFn = Callable[[torch.Tensor], torch.Tensor]

FIELDS = ("sphere", "torus", "body")


def _check_points(points: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 3:
        desc = list(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points: expected a torch tensor [N, 3], got {desc}")


def sdf_to_occupancy(sdf: torch.Tensor, width: float) -> torch.Tensor:
    """Occupancy from a signed distance (negative inside): ``sigmoid(-sdf / width)``."""
    return torch.sigmoid(-sdf / width)


@dataclass(frozen=True)
class SphereField:
    """A ball. Exact volume ``4/3 pi r^3`` and area ``4 pi r^2`` (for mesh accuracy tests)."""

    radius: float = 0.5
    """radius in crop units"""
    center: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """centre in the crop frame"""
    width: float = 0.01
    """sigmoid width in crop units: how sharply occupancy goes from 1 to 0 across the surface"""

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        _check_points(points)
        c = torch.tensor(self.center, dtype=points.dtype, device=points.device)
        return sdf_to_occupancy(torch.linalg.vector_norm(points - c, dim=1) - self.radius, self.width)

    @property
    def volume(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radius**3

    @property
    def area(self) -> float:
        return 4.0 * math.pi * self.radius**2


@dataclass(frozen=True)
class TorusField:
    """A torus around the y axis (a ring lying in the x-z plane). Volume ``2 pi^2 R r^2``."""

    major: float = 0.55
    """distance from the centre to the tube's axis, crop units"""
    minor: float = 0.15
    """tube radius, crop units"""
    center: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """centre in the crop frame"""
    width: float = 0.01
    """sigmoid width in crop units"""

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        _check_points(points)
        p = points - torch.tensor(self.center, dtype=points.dtype, device=points.device)
        ring = torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2) - self.major
        sdf = torch.sqrt(ring**2 + p[:, 1] ** 2) - self.minor
        return sdf_to_occupancy(sdf, self.width)

    @property
    def volume(self) -> float:
        return 2.0 * math.pi**2 * self.major * self.minor**2


class CapsuleUnionField:
    """Union of capsules (segments a->b with radius r); a sphere is a capsule with a == b.

    The SDF is the minimum over capsules (exact outside, a lower bound inside), evaluated in
    chunks so a large batch never builds an [N, K, 3] temporary of more than ~32 MB."""

    def __init__(self, a: Sequence, b: Sequence, r: Sequence, width: float = 0.01):
        self.a = torch.as_tensor(a, dtype=torch.float32).reshape(-1, 3)
        self.b = torch.as_tensor(b, dtype=torch.float32).reshape(-1, 3)
        self.r = torch.as_tensor(r, dtype=torch.float32).reshape(-1)
        if not (len(self.a) == len(self.b) == len(self.r)) or len(self.r) == 0:
            raise ValueError(
                f"capsules: a, b, r must have the same non-zero length, got {len(self.a)}, {len(self.b)}, {len(self.r)}"
            )
        self.width = float(width)
        self._cache: dict = {}

    @property
    def num_capsules(self) -> int:
        return int(len(self.r))

    def _on(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._cache:
            a = self.a.to(device=device, dtype=dtype)
            ba = self.b.to(device=device, dtype=dtype) - a
            dd = (ba * ba).sum(1).clamp_min(1e-12)
            self._cache[key] = (a, ba, dd, self.r.to(device=device, dtype=dtype))
        return self._cache[key]

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        _check_points(points)
        a, ba, dd, r = self._on(points.device, points.dtype)
        out = torch.empty(len(points), dtype=points.dtype, device=points.device)
        step = max(1, (1 << 21) // self.num_capsules)
        for s in range(0, len(points), step):
            p = points[s : s + step]
            pa = p[:, None, :] - a[None]  # [n, K, 3]
            h = ((pa * ba[None]).sum(-1) / dd).clamp_(0.0, 1.0)
            d = torch.linalg.vector_norm(pa - h[..., None] * ba[None], dim=-1) - r
            out[s : s + step] = d.amin(dim=1)
        return out

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        return sdf_to_occupancy(self.sdf(points), self.width)


def body_field(width: float = 0.01, finger_radius: float = 0.012, limb_scale: float = 1.0) -> CapsuleUnionField:
    """A thin-limbed human standing in A-pose, facing the camera, built from capsules.

    Crop frame: the figure spans y in about [-0.9, 0.84] (feet to head top), arms reach
    x = +-0.6; depth |z| <= 0.2. Limbs: upper arms r = 0.045, forearms r = 0.035 (times
    ``limb_scale``); each hand has a palm and five fingers of radius ``finger_radius`` (default
    0.012 crop units = 1.5 voxels at resolution 256, 3 at 512), fanned so their tips separate."""
    caps = []  # (a, b, r)

    def cap(a, b, r):
        caps.append((tuple(a), tuple(b), float(r)))

    ls = float(limb_scale)
    cap((0, 0.72, 0.0), (0, 0.72, 0.0), 0.11)  # head
    cap((0, 0.54, 0.0), (0, 0.64, 0.0), 0.05)  # neck
    cap((-0.06, 0.08, 0.0), (-0.07, 0.40, 0.0), 0.13)  # torso, two columns: flatter in z than x
    cap((0.06, 0.08, 0.0), (0.07, 0.40, 0.0), 0.13)
    cap((-0.08, 0.0, 0.0), (0.08, 0.0, 0.0), 0.13)  # pelvis
    for sx in (-1.0, 1.0):
        cap((sx * 0.09, -0.05, 0), (sx * 0.10, -0.44, 0), 0.07 * ls)  # thigh
        cap((sx * 0.10, -0.44, 0), (sx * 0.11, -0.83, 0), 0.05 * ls)  # shin
        cap((sx * 0.11, -0.86, 0.02), (sx * 0.12, -0.87, -0.12), 0.035 * ls)  # foot, toes to camera
        shoulder, elbow, wrist = (sx * 0.19, 0.45, 0), (sx * 0.38, 0.22, 0.0), (sx * 0.50, 0.0, -0.02)
        cap(shoulder, elbow, 0.045 * ls)
        cap(elbow, wrist, 0.035 * ls)
        d = torch.tensor(wrist) - torch.tensor(elbow)
        d = d / torch.linalg.vector_norm(d)
        palm_end = torch.tensor(wrist) + 0.06 * d
        cap(wrist, palm_end.tolist(), 0.028)
        # fingers fan out from the end of the palm within the image plane
        perp = torch.tensor([-d[1].item(), d[0].item(), 0.0])
        for t in (-1.5, -0.5, 0.5, 1.5):
            ang = 0.22 * t
            fd = math.cos(ang) * d + math.sin(ang) * perp
            base = palm_end + 0.018 * t * perp
            cap(base.tolist(), (base + 0.075 * fd).tolist(), finger_radius)
        out = sx * perp  # away from the body on both sides
        thumb_base = torch.tensor(wrist) + 0.03 * d + 0.02 * out
        td = 0.6 * d + 0.8 * out
        cap(thumb_base.tolist(), (thumb_base + 0.06 * td).tolist(), finger_radius * 1.15)
    a, b, r = zip(*caps)
    return CapsuleUnionField(a, b, r, width=width)


def make_field(name: str, width: float = 0.01) -> QueryFn:
    """A named analytic field: one of ``FIELDS``."""
    if name == "sphere":
        return SphereField(width=width)
    if name == "torus":
        return TorusField(width=width)
    if name == "body":
        return body_field(width=width)
    raise ValueError(f"field: expected one of {FIELDS}, got {name!r}")
