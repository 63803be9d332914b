"""The data that crosses stage boundaries, each validating itself (errors name the expected vs
actual shape/dtype): a captured ``Frame``, a ``PersonCrop`` found in it, the ``Mesh`` made of it.

Images: ``np.ndarray`` [H, W, 3] uint8, **RGB** order, pixel (0, 0) = top-left corner. Rects are
``(x, y, w, h)`` in frame pixels (the reference's rect-file format); PIFuHD crops are square
(w == h) and may extend beyond the image (zero padding).

Coordinate frames (``Mesh.frame``; ``streamrecon.mesh.coords`` holds the one transform):
- ``"crop"``: PIFuHD's normalised crop frame. The square crop maps to x in [-1, 1] (left to right),
  y in [-1, 1] (bottom to top), z in [-1, 1] (same scale as x; +z away from the camera as in the
  reference's query frame). This is what the network is queried in.
- ``"image"``: pixels of the original frame: x to the right, y down, z = depth in pixels (same
  scale as x, +z away from the camera), origin at the top-left corner of the frame, so pixel
  (row i, column j) covers [j, j+1) x [i, i+1). Derived from ``crop`` with the crop rect:
  x_img = rx + (x + 1) / 2 * rw, y_img = ry + (1 - y) / 2 * rh, z_img = z * rw / 2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

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
    (x, y, confidence) in frame pixels, or None; ``person_id``: stable across frames;
    ``world_landmarks``: [33, 3] float32 BlazePose world landmarks, or None: metres, origin midway
    between the hips, x = image right, y = image down, z = away from the camera (the person's own
    frame, not placed in the scene; ``streamrecon.body.landmarks``); ``body``: the person's fitted
    body (``streamrecon.body.fit.BodyFit``: its vertices in frame pixels, z depth pixels), or None."""

    person_id: int
    rect: tuple
    mask: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None
    score: float = 1.0
    meta: dict = field(default_factory=dict)
    world_landmarks: Optional[np.ndarray] = None
    body: Optional[Any] = None

    def __post_init__(self) -> None:
        if len(self.rect) != 4:
            raise ValueError(f"PersonCrop.rect: expected (x, y, w, h), got {self.rect!r}")
        x, y, w, h = (float(v) for v in self.rect)
        if not (w > 0 and h > 0):
            raise ValueError(f"PersonCrop.rect: width and height must be > 0, got {self.rect!r}")
        self.rect = (x, y, w, h)
        if self.mask is not None and (self.mask.ndim != 2 or self.mask.dtype != np.bool_):
            raise ValueError(f"PersonCrop.mask: expected bool [H, W], got {self.mask.dtype} {list(self.mask.shape)}")
        if self.world_landmarks is not None:
            w = self.world_landmarks
            if not isinstance(w, np.ndarray) or w.shape != (33, 3) or w.dtype.kind != "f":
                desc = f"{w.dtype} {list(w.shape)}" if isinstance(w, np.ndarray) else type(w).__name__
                raise ValueError(f"PersonCrop.world_landmarks: expected float [33, 3] (metres), got {desc}")
            if not np.all(np.isfinite(w)):
                raise ValueError("PersonCrop.world_landmarks: contains non-finite values")
            self.world_landmarks = np.ascontiguousarray(w, dtype=np.float32)


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


def triangle_arrays(vertices, faces) -> Tuple[np.ndarray, np.ndarray]:
    """A triangle mesh as checked arrays for geometry (rendering, distances, winding numbers):
    (vertices float64 [V, 3], faces int64 [F, 3] indexing them). ``ValueError`` (one line) for
    other shapes or out-of-range indices."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected shape [V, 3], got {list(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces: expected shape [F, 3], got {list(f.shape)}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces: indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    return v, f.astype(np.int64)


def _check_shape(name: str, a: np.ndarray, cols: int, rows: Optional[int] = None) -> None:
    if a.ndim != 2 or a.shape[1] != cols or (rows is not None and a.shape[0] != rows):
        want = f"[{rows if rows is not None else 'N'}, {cols}]"
        raise ValueError(f"{name}: expected shape {want}, got {list(a.shape)}")


# ---- what the stages hand on (stream/stages.py) -----------------------------------------------
@dataclass
class PersonResult:
    """One person of a frame: where they were found and their mesh."""

    crop: PersonCrop
    mesh: Mesh


@dataclass
class FrameResult:
    """One frame's output. ``timings``: seconds per step (``people_s``, ``recon_s`` and any
    ``*_s`` the reconstructor reports in ``mesh.meta['timings']``), ``done_time``:
    ``time.monotonic()`` when the stage finished."""

    frame: Frame
    persons: List[PersonResult]
    timings: dict = field(default_factory=dict)
    done_time: float = 0.0


@dataclass
class FoundPeople:
    """What the people step hands to the reconstruction step: the frame, its crops (with their
    fitted bodies), the seconds the step took (``people_s``) and of it the body fits' (``body_s``,
    None when no body was fitted)."""

    frame: Frame
    crops: List[PersonCrop]
    people_s: float
    body_s: Optional[float] = None


@dataclass
class EvaluatedPeople:
    """What the network step hands to the meshing step when the stage is split in three."""

    found: FoundPeople
    pending: List[Any]
    seconds: float

    @property
    def frame(self) -> Frame:  # the pipeline names the frame of a failing item by it
        return self.found.frame
