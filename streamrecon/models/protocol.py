"""The interface every reconstruction network implements (PIFuHD, the embedded default model).

An ``ImplicitModel`` turns one person's crop into image features once (``encode``), then answers
occupancy queries at 3D points in the **crop frame** (see ``streamrecon.types``: x, y in
[-1, 1] across the square crop, y up, z in [-1, 1] with the same scale as x). The occupancy
evaluators (dense grid, octree) and marching cubes only ever see ``query``; they know nothing of
the network. Instances are used from one thread (the reconstruction stage's).
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ImplicitModel(Protocol):
    """A pixel-aligned implicit function.

    - ``encode(image, rect, mask)``: ``image`` [H, W, 3] uint8 RGB frame, ``rect`` (x, y, w, h)
      square crop in frame pixels (may extend beyond the image), ``mask`` [H, W] bool person mask
      or None. Returns opaque per-person features (tensors on ``self.device``).
    - ``query(features, points)``: ``points`` torch float32 [N, 3] in the crop frame on
      ``self.device``; returns torch float32 [N] occupancy in [0, 1] (0.5 = surface). Points are
      independent: the result does not depend on how a caller chunks them.
    - optional ``iso_level`` (float): the occupancy level of the model's surface when the caller
      does not set one (``ReconConfig.level``); 0.5 when absent (``surface_level``).
    - optional ``reads_body`` (bool): the model also reads the person's fitted body; its ``encode``
      then takes ``body=`` (a ``streamrecon.body.fit.BodyFit`` in frame pixels, or None when the
      person has none). ``encode_person`` passes it to such models only.
    """

    name: str
    device: Any

    def encode(self, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None) -> Any: ...

    def query(self, features: Any, points: Any) -> Any: ...


def encode_person(model: Any, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None, body: Any = None) -> Any:
    """``model.encode`` of one person, with their fitted ``body`` when the model reads one."""
    if getattr(model, "reads_body", False):
        return model.encode(image, rect, mask, body=body)
    return model.encode(image, rect, mask)


def surface_level(model: Any) -> float:
    """The iso level ``model`` asks for (its ``iso_level``), else ``occupancy.config.LEVEL``."""
    from ..occupancy.config import LEVEL

    level = getattr(model, "iso_level", None)
    return LEVEL if level is None else float(level)
