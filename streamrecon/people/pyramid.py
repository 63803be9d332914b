"""Where the person finder looks for people, and when: pure geometry (no images, no models).

Two searches cover all sizes (docs/people.md has the measurements behind them):

* the BlazePose detector on the whole frame letterboxed to its 224x224 input (``full_tile``):
  people taller than about ``BLAZEPOSE_MIN_FRACTION`` of the frame's longer side (measured on
  three walkers of the opencv-doc street clip and the two crouching men of labelme's 2011_000003,
  each scaled to a share of the input: below 0.17 none found, 0.24 four of five, the walkers
  from 0.27 up, all five from 0.38 up);
* the HOG pedestrian detector (``hog_svm``) for the smaller ones, from ``min_height`` up to
  ``HOG_MAX_FRACTION`` of the longer side: an image pyramid, one level per ``HOG_SCALE_STEP``,
  each level cut into horizontal strips (``SearchTask``) that overlap by a detection window, so
  the work can be spread evenly over several frames (``split_rounds``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

BLAZEPOSE_MIN_FRACTION = 0.25
"""Smallest person the letterboxed BlazePose detector finds, as a fraction of max(W, H)."""
HOG_MAX_FRACTION = 0.35
"""Tallest person the HOG search looks for, as a fraction of max(W, H) (overlaps the letterbox)."""
HOG_SCALE_STEP = 1.3
"""Size ratio between neighbouring HOG pyramid levels."""
HOG_WINDOW = (64, 128)
HOG_BODY = 0.88 * 128  # a body's height inside a positive 64x128 window
STRIP_WINDOWS = 3  # a strip is at most this many window heights tall (scaled pixels), before overlap

Tile = Tuple[float, float, float]


def full_tile(width: int, height: int) -> Tile:
    """The letterbox as a square (x0, y0, side) in frame pixels: side max(W, H), centred."""
    side = float(max(width, height))
    return ((width - side) / 2.0, (height - side) / 2.0, side)


@dataclass(frozen=True)
class SearchTask:
    """One HOG search job: the frame rows [y0, y1) (frame pixels) resized by ``scale`` (bodies of
    ``HOG_BODY / scale`` pixels fill the window). ``box`` is its (x0, y0, x1, y1) in the frame."""

    scale: float
    y0: int
    y1: int
    width: int

    @property
    def box(self) -> tuple:
        return (0.0, float(self.y0), float(self.width), float(self.y1))

    @property
    def pixels(self) -> float:
        """Pixels the HOG features are computed on (the job's cost is about proportional)."""
        return self.width * (self.y1 - self.y0) * self.scale * self.scale


def hog_scales(width: int, height: int, min_height: float) -> List[float]:
    """Resize factors of the HOG levels: bodies from ``min_height`` up to ``HOG_MAX_FRACTION x
    max(W, H)`` pixels fill the window, ``HOG_SCALE_STEP`` apart. Empty when the letterbox alone
    finds people of ``min_height`` (small frames)."""
    if not (width > 0 and height > 0 and min_height > 0):
        raise ValueError(f"hog_scales: expected a positive size and min_height, got {width}x{height}, {min_height}")
    top = HOG_MAX_FRACTION * max(width, height)
    if min_height >= top or min_height >= BLAZEPOSE_MIN_FRACTION * max(width, height):
        return []
    scales, h = [], float(min_height)
    while True:
        s = HOG_BODY / h
        if width * s < HOG_WINDOW[0] or height * s < HOG_WINDOW[1]:
            break
        scales.append(s)
        if h >= top:
            break
        h *= HOG_SCALE_STEP
    return scales


def search_tasks(width: int, height: int, min_height: float) -> List[SearchTask]:
    """Every HOG level of ``hog_scales`` cut into strips of at most ``STRIP_WINDOWS`` window
    heights, neighbours overlapping by one window height (a person fits whole in one strip)."""
    tasks = []
    for s in hog_scales(width, height, min_height):
        win = HOG_WINDOW[1] / s  # window height in frame pixels
        step = STRIP_WINDOWS * win
        if height <= step + win:
            tasks.append(SearchTask(s, 0, height, width))
            continue
        y = 0.0
        while True:
            y1 = min(height, y + step + win)
            tasks.append(SearchTask(s, int(np.floor(y)), int(np.ceil(y1)), width))
            if y1 >= height:
                break
            y += step
    return tasks


def split_rounds(tasks: Sequence[SearchTask], rounds: int) -> List[List[SearchTask]]:
    """``tasks`` dealt into ``rounds`` groups of about equal cost (largest first, each to the
    cheapest group so far), so a search spread over ``rounds`` frames costs about the same on
    every frame."""
    if rounds < 1:
        raise ValueError(f"split_rounds: expected rounds >= 1, got {rounds}")
    groups: List[List[SearchTask]] = [[] for _ in range(rounds)]
    cost = [0.0] * rounds
    for t in sorted(tasks, key=lambda t: -t.pixels):
        i = int(np.argmin(cost))
        groups[i].append(t)
        cost[i] += t.pixels
    return groups


def covered_fraction(box: tuple, covers: Sequence[tuple], grid: int = 16) -> float:
    """Fraction of ``box`` (x0, y0, x1, y1, frame pixels) inside the union of ``covers`` (boxes of
    the same form), sampled on a ``grid`` x ``grid`` lattice of cell centres."""
    if not len(covers):
        return 0.0
    x0, y0, x1, y1 = box
    c = (np.arange(grid) + 0.5) / grid
    xs, ys = x0 + c * (x1 - x0), y0 + c * (y1 - y0)
    inside = np.zeros((grid, grid), bool)
    for b in covers:
        inside |= ((ys >= b[1]) & (ys < b[3]))[:, None] & ((xs >= b[0]) & (xs < b[2]))[None, :]
    return float(inside.mean())


def tile_matrix(tile: Tile, size: int) -> np.ndarray:
    """[2, 3] affine map from frame pixels to the ``size`` x ``size`` detector input of ``tile``."""
    x0, y0, side = tile
    k = size / side
    return np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]])
