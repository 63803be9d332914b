"""Data that crosses stage boundaries before the network: a captured ``Frame`` and a ``PersonCrop``
found in it. Both validate themselves; errors name the expected vs actual shape/dtype.

Image convention everywhere in streamrecon: ``np.ndarray`` [H, W, 3] uint8, **RGB** order, pixel
(0, 0) = top-left corner. Rects are ``(x, y, w, h)`` in frame pixels (the reference's rect-file
format); PIFuHD crops are square (w == h) and may extend beyond the image (zero padding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Frame:
    """One captured frame. ``timestamp``: capture time in ``time.monotonic()`` seconds (latency is
    measured from it); ``pts``: presentation time in the source in seconds, when known."""

    index: int
    image: np.ndarray
    timestamp: float
    pts: Optional[float] = None

    def __post_init__(self) -> None:
        a = self.image
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            desc = f"{a.dtype} {list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"Frame.image: expected uint8 [H, W, 3] RGB, got {desc}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class PersonCrop:
    """A person found in a frame. ``rect`` (x, y, w, h) in frame pixels, square for PIFuHD;
    ``mask``: [H, W] bool person mask in *frame* pixels, or None; ``keypoints``: [K, 3]
    (x, y, confidence) in frame pixels, or None; ``person_id``: stable across frames."""

    person_id: int
    rect: tuple
    mask: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None
    score: float = 1.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.rect) != 4:
            raise ValueError(f"PersonCrop.rect: expected (x, y, w, h), got {self.rect!r}")
        x, y, w, h = (float(v) for v in self.rect)
        if not (w > 0 and h > 0):
            raise ValueError(f"PersonCrop.rect: width and height must be > 0, got {self.rect!r}")
        self.rect = (x, y, w, h)
        if self.mask is not None and (self.mask.ndim != 2 or self.mask.dtype != np.bool_):
            raise ValueError(f"PersonCrop.mask: expected bool [H, W], got {self.mask.dtype} {list(self.mask.shape)}")
