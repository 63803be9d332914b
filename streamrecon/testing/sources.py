"""Synthetic frame sources: a bright disc moving on a dark background (``disc_image``), as a
``Source`` (``SyntheticSource``, the ``synthetic:frames=N,size=WxH,fps=F`` input of ``run`` and
``live``) for tests, benchmarks and demos without a camera or a video file."""
from __future__ import annotations

import math
import time
from typing import Iterator, Optional, Tuple

import numpy as np

from ..errors import UserInputError
from ..stream.source import Source


def disc_image(index: int, width: int = 128, height: int = 128) -> Tuple[np.ndarray, tuple]:
    """The synthetic source's frame ``index``: a bright disc moving on a dark background.
    Returns the image and the disc (cx, cy, r) in pixels."""
    cx = width * (0.5 + 0.2 * math.sin(index * 0.3))
    cy = height * (0.5 + 0.1 * math.cos(index * 0.2))
    r = 0.2 * min(width, height) * (1.0 + 0.25 * math.sin(index * 0.15))
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    img = np.full((height, width, 3), 20, dtype=np.uint8)
    img[inside] = (230, 200, 180)
    return img, (cx, cy, r)


class SyntheticSource(Source):
    """Frames of ``disc_image``: ``frames`` of them (None = endless), paced at ``fps`` (0 = as fast
    as asked). With ``live=True`` it behaves like a camera (policy ``latest``)."""

    kind = "synthetic"

    def __init__(self, frames: Optional[int] = 30, size: Tuple[int, int] = (128, 128), fps: float = 0.0, live: bool = False) -> None:
        if frames is not None and frames < 0:
            raise UserInputError(f"synthetic source: frames must be >= 0, got {frames}")
        self.name = f"synthetic:frames={frames},size={size[0]}x{size[1]},fps={fps}"
        self.num_frames = frames
        self.size = size
        self.fps = fps or None
        self.live = live

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        period = 1.0 / self.fps if self.fps else 0.0
        t0 = time.monotonic()
        i = 0
        while self.num_frames is None or i < self.num_frames:
            if period:
                delay = t0 + i * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield disc_image(i, *self.size)[0], i * period if period else float(i)
            i += 1


def parse_synthetic(spec: str, live: bool = False) -> SyntheticSource:
    """``synthetic:frames=30,size=128x96,fps=0`` (every key optional; frames=0 or inf = endless)."""
    body = spec.split(":", 1)[1]
    opts = dict(kv.split("=", 1) for kv in body.split(",") if "=" in kv)
    unknown = set(opts) - {"frames", "size", "fps", "live"}
    try:
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        frames_s = opts.get("frames", "30")
        frames = None if frames_s in ("inf", "0") else int(frames_s)
        w, h = (int(v) for v in opts.get("size", "128x128").lower().split("x"))
        fps = float(opts.get("fps", "0"))
        live = live or opts.get("live", "0") in ("1", "true", "yes")
    except ValueError as exc:
        raise UserInputError(f"bad synthetic source {spec!r} ({exc}); expected synthetic:frames=N,size=WxH,fps=F") from None
    return SyntheticSource(frames=frames, size=(w, h), fps=fps, live=live)
