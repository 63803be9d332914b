"""Random poses within hand-set joint limits, in anny's 'local-ref' parameterisation.

anny ships no joint limits, so ``JOINT_LIMITS`` gives plausible ranges (radians) per bone as
rotations about world-aligned axes (x = the person's left, y = back, z = up; see ``bodies``),
applied in x, y, z order. Ranges are for the left side; the right side mirrors them (y and z
negated). Signs were checked on the rest pose: a negative x rotation swings a limb forward
(-y), a positive x rotation bends the knee (foot backwards) and the spine forwards.

A pose draws one global amplitude ``a`` = 0.1 + 0.9 u^1.5 (u ~ U(0, 1)) and each angle uniformly in ``a`` times its
range, so most people stand or walk and some move widely. Self-intersecting poses are rejected by
the caller (``generate``) with anny's triangle intersection test.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

Range = Tuple[float, float]

# bone: ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) for the left side (or a central bone).
JOINT_LIMITS: Dict[str, Tuple[Range, Range, Range]] = {
    "spine03": ((-0.15, 0.35), (-0.15, 0.15), (-0.35, 0.35)),
    "spine01": ((-0.10, 0.25), (-0.10, 0.10), (-0.25, 0.25)),
    "neck01": ((-0.25, 0.35), (-0.20, 0.20), (-0.40, 0.40)),
    "head": ((-0.30, 0.35), (-0.25, 0.25), (-0.60, 0.60)),
    "clavicle.L": ((-0.15, 0.15), (-0.25, 0.10), (-0.20, 0.20)),
    "upperarm01.L": ((-1.60, 0.60), (-1.50, 0.45), (-0.60, 0.60)),
    "lowerarm01.L": ((-2.20, 0.00), (-0.20, 0.20), (-0.40, 0.40)),
    "wrist.L": ((-0.60, 0.60), (-0.40, 0.40), (-0.30, 0.30)),
    "upperleg01.L": ((-1.10, 0.40), (-0.50, 0.10), (-0.40, 0.40)),
    "lowerleg01.L": ((0.00, 1.40), (-0.05, 0.05), (-0.20, 0.20)),
    "foot.L": ((-0.40, 0.50), (-0.20, 0.20), (-0.30, 0.30)),
}


def _bones():
    out = []
    for name, lim in JOINT_LIMITS.items():
        if name.endswith(".L"):
            out.append((name, lim, False))
            out.append((name[:-2] + ".R", lim, True))
        else:
            out.append((name, lim, False))
    return out


def euler_xyz(angles: np.ndarray) -> np.ndarray:
    """[3] angles (rad) -> [3, 3] rotation R = Rz @ Ry @ Rx (x applied first)."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def sample_pose(rng: np.random.Generator, amplitude: float | None = None) -> Dict[str, np.ndarray]:
    """A random pose: bone label -> [4, 4] float64 delta transform (rotation only)."""
    a = 0.1 + 0.9 * float(rng.random()) ** 1.5 if amplitude is None else float(amplitude)
    pose = {}
    for name, lim, mirror in _bones():
        lo = np.array([r[0] for r in lim])
        hi = np.array([r[1] for r in lim])
        ang = rng.uniform(lo, hi) * a
        if mirror:
            ang = ang * np.array([1.0, -1.0, -1.0])
        t = np.eye(4)
        t[:3, :3] = euler_xyz(ang)
        pose[name] = t
    return pose
