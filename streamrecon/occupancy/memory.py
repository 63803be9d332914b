"""Up-front memory checks: refuse a reconstruction that would not fit before anything is allocated.

The model of the query engine's memory is the one measured in ``docs/octree.md`` ("Memory"):

- the levels above the finest are dense float32 lattices of at most (N/2 + 1)^3 values; with the
  upsampled copy and the side masks built from them, up to 3 of those live at once;
- the finest level, marching cubes and the mesh grow with the surface, ~N^2: fitted to the worst
  case measured there (a sphere of radius 0.7 at N = 512: 1.0M queries, 605k vertices, ~660 MB
  for octree + marching cubes) that is ~1,800 bytes per N^2;
- the dense evaluator (the slow twin, ``--evaluator dense``) holds the float32 N^3 volume.

The network's own weights and activations do not depend on N and are not counted here.
Pure functions; ``available_bytes`` reads ``/proc/meminfo`` (Linux) or ``sysconf``.
"""
from __future__ import annotations

import os
from typing import Optional

from ..errors import ResourceError

SURFACE_BYTES_PER_N2 = 1800
LATTICE_COPIES = 3
# What is left to the rest of the process (model, frames, Python) when checking a budget.
HEADROOM = 0.8


def recon_memory_bytes(resolution: int, evaluator: str = "octree") -> int:
    """Estimated peak bytes of one reconstruction at ``resolution`` points per axis (see the
    module docstring). Exact integer arithmetic: no overflow for absurd resolutions."""
    n = int(resolution)
    if n < 1:
        raise ValueError(f"resolution: expected >= 1, got {resolution!r}")
    half = n // 2 + 1
    est = LATTICE_COPIES * 4 * half ** 3 + SURFACE_BYTES_PER_N2 * n * n
    if evaluator == "dense":
        est += 4 * n ** 3
    return est


def available_bytes() -> Optional[int]:
    """Memory the OS says is available now (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", "r", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def largest_fitting_resolution(budget: int, evaluator: str = "octree") -> int:
    """The largest multiple of 32 whose estimate fits ``budget`` bytes (at least 32)."""
    n = 32
    while recon_memory_bytes(n + 32, evaluator) <= budget and n < 1 << 16:
        n += 32
    return n


def check_recon_memory(resolution: int, evaluator: str = "octree", available: Optional[int] = None,
                       flag: str = "--resolution") -> int:
    """Raise ``ResourceError`` (estimate and a resolution that fits, in the message) when one
    reconstruction at ``resolution`` would need more than ``HEADROOM`` of the available memory.
    ``available`` defaults to ``available_bytes()``; unknown = no check. Returns the estimate."""
    est = recon_memory_bytes(resolution, evaluator)
    avail = available_bytes() if available is None else available
    if avail is not None and est > HEADROOM * avail:
        fit = largest_fitting_resolution(int(HEADROOM * avail), evaluator)
        raise ResourceError(
            f"{flag} {resolution}: the reconstruction would need about {est / 1e9:.1f} GB "
            f"({evaluator} evaluator, docs/octree.md memory model) but {avail / 1e9:.1f} GB is available; "
            f"use {flag} {fit} or less"
        )
    return est
