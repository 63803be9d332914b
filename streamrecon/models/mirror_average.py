"""Mirror averaging: the occupancy of a person and of their mirror image, averaged.

A mirrored person is a person, so a network's answer for the mirrored crop, mirrored back, is a
second opinion on the same body. ``MirrorAveraged(model)`` is an ``ImplicitModel`` whose
``encode`` also encodes the left-right mirrored frame (rect mirrored with it, so its crop is the
original crop flipped) and whose ``query`` averages ``model.query(f, (x, y, z))`` with
``model.query(f_mirrored, (-x, y, z))``: the result is exactly mirror-symmetric (given a person
mask; without one the embedded model's GrabCut fallback segments each view on its own) and, where
the network is unsure, less noisy. A model that adjusts the rect before cropping says so with
``prepare_rect(rect)`` (PIFuHD rounds to integer pixels); the wrapper mirrors the adjusted rect. Twice the network time per frame; measured effect on the embedded
model in docs/embedded_model.md. Any ``ImplicitModel`` works (the embedded model, PIFuHD, the
sphere); other attributes (``iso_level``, ``cfg``, ``name``, ...) are the wrapped model's.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np


def mirror_points(points: Any) -> Any:
    """``points`` [..., 3] (crop frame) seen in the mirrored crop: x -> -x (a new tensor)."""
    q = points.clone()
    q[..., 0] = -q[..., 0]
    return q


def mirror_rect(rect, width: int) -> Tuple[float, float, float, float]:
    """``rect`` (x, y, w, h) in a frame of ``width`` pixels, in the left-right mirrored frame."""
    x, y, w, h = (float(v) for v in rect)
    return (width - x - w, y, w, h)


class MirrorAveraged:
    """``ImplicitModel`` averaging ``base`` over the person and their mirror image."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __getattr__(self, name: str) -> Any:  # name, device, iso_level, cfg, ... of the base
        if name == "base":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)

    def encode(self, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None, body: Any = None) -> Any:
        """Features of the person and of their mirror image (the fitted ``body`` mirrored with the
        frame, for a base that reads one)."""
        from .protocol import encode_person

        prepare = getattr(self.base, "prepare_rect", None)  # PIFuHD crops at integer pixels:
        if prepare is not None:  # mirror the rect it really uses, or the crops drift by a pixel
            rect = prepare(rect)
        width = image.shape[1]
        flipped = np.ascontiguousarray(image[:, ::-1])
        fmask = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
        fbody = None
        if body is not None and getattr(self.base, "reads_body", False):
            from ..body.conditioning import mirrored

            fbody = mirrored(body, width)
        return (encode_person(self.base, image, rect, mask, body),
                encode_person(self.base, flipped, mirror_rect(rect, width), fmask, fbody))

    def encode_crop(self, mask_crop: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        """For models with ``encode_crop`` (the embedded model; evaluation): every crop-shaped
        array argument ([R, R] or [R, R, C]; ``body_maps`` [C, R, R]) is flipped along its columns
        for the second view (the body's depths do not change in a mirror)."""

        def flip(a: Any, channels_first: bool = False) -> Any:
            if not (isinstance(a, np.ndarray) and a.ndim >= 2):
                return a
            return np.ascontiguousarray(a[..., ::-1] if channels_first else a[:, ::-1])

        return (self.base.encode_crop(mask_crop, *args, **kwargs),
                self.base.encode_crop(flip(mask_crop), *(flip(a) for a in args),
                                      **{k: flip(v, k == "body_maps") for k, v in kwargs.items()}))

    def query(self, features: Any, points: Any) -> Any:
        direct, mirrored = features
        return 0.5 * (self.base.query(direct, points) + self.base.query(mirrored, mirror_points(points)))
