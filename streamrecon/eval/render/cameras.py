"""The crop camera: PIFuHD's orthographic view of the square crop rect, and the transforms between
the ``crop`` and ``image`` frames of ``streamrecon/types.py`` (``mesh.coords`` holds the transforms).

Frames (all float, shapes [N, 3]):
- ``crop``: x in [-1, 1] left to right across the crop rect, y in [-1, 1] bottom to top, z same
  scale as x, +z away from the camera.
- ``image``: frame pixels, x right, y down, z depth in pixels (+z away from the camera), origin at
  the top-left *corner* of the frame, so pixel (row i, column j) covers [j, j+1) x [i, i+1) and its
  centre is (j + 0.5, i + 0.5).
- ``raster`` (what the rasteriser eats): an image frame of the target picture. Rendering the crop
  view at S x S pixels is rendering the image frame of the rect (0, 0, S, S).

The camera is orthographic along +z in both frames, so projecting is dropping z.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...mesh.coords import as_points, crop_to_image_points, image_to_crop_points, rect_tuple


@dataclass(frozen=True)
class CropCamera:
    """The orthographic camera of one square crop.

    ``rect`` = (x, y, w, h) of the crop in original-frame pixels (may extend beyond the frame);
    ``frame_size`` = (height, width) of the original frame in pixels."""

    rect: tuple
    frame_size: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "rect", rect_tuple(self.rect))
        if len(self.frame_size) != 2 or min(int(s) for s in self.frame_size) <= 0:
            raise ValueError(f"frame_size: expected (height, width) > 0, got {self.frame_size!r}")
        object.__setattr__(self, "frame_size", (int(self.frame_size[0]), int(self.frame_size[1])))

    def to_raster(self, vertices, mesh_frame: str, view: str, crop_size: int = 512) -> np.ndarray:
        """[N, 3] vertices given in ``mesh_frame`` ('crop' or 'image') to raster coordinates of
        ``view``: 'image' (the whole frame, z in pixels) or 'crop' (the rect resampled to
        ``crop_size`` x ``crop_size`` pixels, z in those pixels)."""
        if mesh_frame not in ("crop", "image"):
            raise ValueError(f"mesh_frame: expected 'crop' or 'image', got {mesh_frame!r}")
        if view == "image":
            return crop_to_image_points(vertices, self.rect) if mesh_frame == "crop" else as_points(vertices).copy()
        if view == "crop":
            crop = as_points(vertices) if mesh_frame == "crop" else image_to_crop_points(vertices, self.rect)
            return crop_to_image_points(crop, (0.0, 0.0, float(crop_size), float(crop_size)))
        raise ValueError(f"view: expected 'image' or 'crop', got {view!r}")

    def view_shape(self, view: str, crop_size: int = 512) -> tuple:
        """(height, width) of the picture rendered for ``view``."""
        if view == "image":
            return self.frame_size
        if view == "crop":
            return (int(crop_size), int(crop_size))
        raise ValueError(f"view: expected 'image' or 'crop', got {view!r}")

    def crop_image(self, image: np.ndarray, crop_size: int = 512) -> np.ndarray:
        """Resample the rect of a frame-sized array ([H, W] or [H, W, C]) to ``crop_size`` pixels
        with nearest-neighbour lookup at pixel centres (zero outside the frame): the crop-view twin
        of a frame-view picture, e.g. a person mask."""
        h, w = image.shape[:2]
        if (h, w) != self.frame_size:
            raise ValueError(f"image: expected frame size {self.frame_size}, got {(h, w)}")
        rx, ry, rw, rh = self.rect
        centres = (np.arange(crop_size) + 0.5) / crop_size
        cols = np.floor(rx + centres * rw).astype(np.int64)
        rows = np.floor(ry + centres * rh).astype(np.int64)
        valid = (rows[:, None] >= 0) & (rows[:, None] < h) & (cols[None, :] >= 0) & (cols[None, :] < w)
        out = image[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]
        out = out.copy()
        out[~valid] = 0
        return out
