"""The fitted body as the network sees it: the body placed in the person's crop frame and rendered
into front and back depth maps on the network's input grid. One function serves training (the
synthetic views, ``training.synth``) and inference (``models.embedded``), so both see exactly the
same maps for the same fit.

Depth origin: a fit knows depth only up to an offset (weak perspective), and the crop frame's z
origin of the synthetic data is the dressed body's vertex centroid. The rule both sides follow:
the fitted body's own vertex centroid sits at crop z = 0 (the dressed centroid is a few mm to a few
cm off it; the network learns that offset).

Maps (``BodyMaps``), each [R, R] float32 on the network's input grid (pixel (i, j) at crop
x = -1 + 2 j / (R - 1), y = 1 - 2 i / (R - 1)): ``front`` and ``back`` crop z of the body's
nearest and farthest surface (0 where the body does not cover the pixel), ``cover`` 1 where it
does, else 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .fit import BodyFit
from .maps import body_depth_maps

BODY_CHANNELS = 3
"""input channels the body adds to the network: front, back, cover"""


@dataclass(frozen=True)
class BodyMaps:
    """The body's depth maps on the network's input grid (see the module docstring)."""

    front: np.ndarray
    back: np.ndarray
    cover: np.ndarray

    def stack(self) -> np.ndarray:
        """[3, R, R] float32: front, back, cover (the network's body channels, in this order)."""
        return np.stack([self.front, self.back, self.cover]).astype(np.float32, copy=False)


def body_in_crop(vertices_image: np.ndarray, rect) -> np.ndarray:
    """Fitted body vertices [V, 3] in the image frame (``BodyFit.vertices``: pixels, z depth
    pixels) -> [V, 3] float64 in the crop frame of ``rect`` (x, y, w, h), z shifted so that the
    vertex centroid is at 0."""
    from ..mesh.coords import image_to_crop_points

    v = image_to_crop_points(vertices_image, rect)
    v[:, 2] -= v[:, 2].mean()
    return v


def maps_from_crop_vertices(vertices_crop: np.ndarray, faces: np.ndarray, size: int) -> BodyMaps:
    """``BodyMaps`` at ``size`` x ``size`` of a body already in the crop frame (centroid at z = 0)."""
    front, back, cover = body_depth_maps(vertices_crop, faces, size)
    return BodyMaps(np.where(cover, front, 0.0).astype(np.float32), np.where(cover, back, 0.0).astype(np.float32),
                    cover.astype(np.float32))


def body_maps(fit: BodyFit, faces: np.ndarray, rect, size: int) -> BodyMaps:
    """``BodyMaps`` of ``fit`` (its mesh: ``faces`` [F, 3], the body model's) for the crop ``rect``
    (x, y, w, h frame pixels) at ``size`` pixels across."""
    return maps_from_crop_vertices(body_in_crop(fit.vertices, rect), faces, size)


def mirrored(fit: BodyFit, width: float) -> BodyFit:
    """``fit`` in the left-right mirrored frame of ``width`` pixels (x -> width - x of its
    vertices, landmarks and joints; enough for its maps, which do not read the pose parameters)."""
    import dataclasses

    def flip(p: np.ndarray) -> np.ndarray:
        q = p.copy()
        q[:, 0] = width - q[:, 0]
        return q

    return dataclasses.replace(fit, vertices=flip(fit.vertices), landmarks=flip(fit.landmarks), joints=flip(fit.joints),
                               tx=float(width - fit.tx))


def empty_maps(size: int) -> BodyMaps:
    """No body (a person the fitter could not fit): all three maps zero."""
    z = np.zeros((size, size), np.float32)
    return BodyMaps(z, z, z)


def maybe_maps(fit: Optional[BodyFit], faces: np.ndarray, rect, size: int) -> BodyMaps:
    """``body_maps`` of ``fit``, or ``empty_maps`` when there is none."""
    return empty_maps(size) if fit is None else body_maps(fit, faces, rect, size)
