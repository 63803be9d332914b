"""The ``Mesh`` that crosses stage boundaries (reconstruction -> cleanup -> files/wire/viewer).

Coordinate frames (``Mesh.frame``):
- ``"crop"``: PIFuHD's normalised crop frame. The square crop maps to x in [-1, 1] (left to right),
  y in [-1, 1] (bottom to top), z in [-1, 1] (same scale as x; +z away from the camera as in the
  reference's query frame). This is what the network is queried in.
- ``"image"``: pixels of the original frame: x to the right, y down, z = depth in pixels (same
  scale as x, +z away from the camera), origin at the top-left corner of the frame. Derived from
  ``crop`` with the crop rect: x_img = rx + (x + 1) / 2 * rw, y_img = ry + (1 - y) / 2 * rh,
  z_img = z * rw / 2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

FRAMES = ("crop", "image")


@dataclass
class Mesh:
    """A triangle mesh. Shapes: vertices [V, 3] float32, faces [F, 3] int32 (0-based, counter-
    clockwise seen from outside), normals [V, 3] float32 or None, colors [V, 3] uint8 or None.
    ``rect`` = (x, y, w, h) of the crop in original-frame pixels, when known."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: Optional[np.ndarray] = None
    colors: Optional[np.ndarray] = None
    frame: str = "crop"
    rect: Optional[tuple] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32)
        _check_shape("vertices", self.vertices, 3)
        _check_shape("faces", self.faces, 3)
        nv = len(self.vertices)
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= nv):
            raise ValueError(
                f"faces: indices must lie in [0, {nv}) for {nv} vertices, "
                f"got range [{self.faces.min()}, {self.faces.max()}]"
            )
        if self.normals is not None:
            self.normals = np.ascontiguousarray(self.normals, dtype=np.float32)
            _check_shape("normals", self.normals, 3, rows=nv)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.uint8)
            _check_shape("colors", self.colors, 3, rows=nv)
        if self.frame not in FRAMES:
            raise ValueError(f"frame: expected one of {FRAMES}, got {self.frame!r}")

    @property
    def num_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def num_faces(self) -> int:
        return int(len(self.faces))


def _check_shape(name: str, a: np.ndarray, cols: int, rows: Optional[int] = None) -> None:
    if a.ndim != 2 or a.shape[1] != cols or (rows is not None and a.shape[0] != rows):
        want = f"[{rows if rows is not None else 'N'}, {cols}]"
        raise ValueError(f"{name}: expected shape {want}, got {list(a.shape)}")
