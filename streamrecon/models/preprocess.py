"""Input preprocessing identical to the PIFuHD reference's rect path (``lib/data/EvalDataset.py``).

Steps: the image as uint8 RGB (``streamrecon.images.decode``) -> crop by the rect ``x y w h``
with zero (black) padding outside the image -> resize to 512 and to 1024 (OpenCV bilinear,
``INTER_LINEAR``) -> float ``(u8 / 255 - 0.5) / 0.5`` -> [1, 3, S, S] tensors.

The calibration is orthographic, ``diag(1, -1, 1, 1)`` (y flipped): crop-frame point (x, y, z)
samples the feature maps at (u, v) = (x, -y) in ``grid_sample`` coordinates.

Rects are integer pixels in the reference; a float rect (from a detector) is rounded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserInputError
from ..images.decode import to_rgb

Rect = Tuple[int, int, int, int]


# ---- rects -----------------------------------------------------------------------------------
def parse_rects(text: str, source: str = "rect") -> List[Rect]:
    """Parse the reference's rect file: one ``x y w h`` line (integers) per person. Blank lines
    and ``#`` comments are skipped."""
    rects: List[Rect] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != 4 or not all(np.isfinite(vals)):
            raise UserInputError(f"{source} line {lineno}: expected 4 numbers 'x y w h', got {line!r}")
        rects.append(check_rect(vals, source))
    if not rects:
        raise UserInputError(f"{source}: no rect found (expected a line 'x y w h')")
    return rects


def read_rect_file(path: Union[str, "os.PathLike[str]"]) -> List[Rect]:
    """Read a rect file (see ``parse_rects``); ``UserInputError`` when missing or malformed."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read(1 << 20)
    except FileNotFoundError:
        raise UserInputError(f"rect file not found: {path} (expected a text file with a line 'x y w h')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read rect file {path}: {exc}") from None
    return parse_rects(text, source=path)


def check_rect(rect: Sequence[float], source: str = "rect") -> Rect:
    """Round a rect to integers and check width/height > 0."""
    if len(rect) != 4:
        raise UserInputError(f"{source}: expected (x, y, w, h), got {tuple(rect)!r}")
    try:
        vals = [float(v) for v in rect]
    except (TypeError, ValueError):
        raise UserInputError(f"{source}: expected 4 numbers (x, y, w, h), got {tuple(rect)!r}") from None
    if not all(np.isfinite(vals)) or max(abs(v) for v in vals) > 1e9:
        raise UserInputError(f"{source}: expected finite pixel values (|v| <= 1e9), got {tuple(rect)!r}")
    x, y, w, h = (int(round(v)) for v in vals)
    if w <= 0 or h <= 0:
        raise UserInputError(f"{source}: width and height must be > 0, got {(x, y, w, h)}")
    return (x, y, w, h)


def default_rect(height: int, width: int) -> Rect:
    """The whole image as a square crop centred on it: side = max(H, W), so the shorter axis is
    padded with black on both sides."""
    side = max(height, width)
    return ((width - side) // 2, (height - side) // 2, side, side)


# ---- crop, resize, normalise -----------------------------------------------------------------
def crop(image: np.ndarray, rect: Rect) -> np.ndarray:
    """[H, W, C] image -> [h, w, C] crop at (x, y); pixels outside the image are 0."""
    x, y, w, h = rect
    H, W = image.shape[:2]
    out = np.zeros((h, w) + image.shape[2:], dtype=image.dtype)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = image[y0:y1, x0:x1]
    return out


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to [size, size] (OpenCV ``INTER_LINEAR``, as the reference)."""
    import cv2

    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)


def normalise(img: np.ndarray):
    """uint8 RGB [S, S, 3] -> float32 tensor [1, 3, S, S] = (u8 / 255 - 0.5) / 0.5."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)
    return ((t - 0.5) / 0.5).unsqueeze(0).contiguous()


def calibration() -> np.ndarray:
    """The orthographic calibration [4, 4] float32: diag(1, -1, 1, 1)."""
    return np.diag([1.0, -1.0, 1.0, 1.0]).astype(np.float32)


def calibration_world(rect: Rect, height: int, width: int) -> np.ndarray:
    """The reference's ``calib_world`` [4, 4] float32 (crop to full-image NDC; unused by the
    mesh path, kept for parity)."""
    x, y, w, h = rect
    m = np.identity(4)
    scale = width / w
    to_ndc = 1.0 / float(max(width // 2, 1))  # a 1-pixel-wide image: the reference divides by 0
    m *= scale
    m[3, 3] = 1.0
    m[0, 3] = -scale * (x + w // 2 - width // 2) * to_ndc
    m[1, 3] = scale * (y + h // 2 - height // 2) * to_ndc
    return m.astype(np.float32)


@dataclass
class Preprocessed:
    """Network inputs for one crop: ``img_512`` [1, 3, S, S] and ``img`` [1, 3, B, B] float32
    in [-1, 1] (S = coarse load size, B = fine load size), ``calib`` [4, 4], ``calib_world``
    [4, 4], ``rect`` (x, y, w, h) integer frame pixels."""

    img_512: object
    img: object
    calib: np.ndarray
    calib_world: np.ndarray
    rect: Rect


def preprocess(image: np.ndarray, rect: Optional[Sequence[float]] = None,
               load_size: int = 512, load_size_big: int = 1024) -> Preprocessed:
    """uint8 RGB [H, W, 3] frame (other layouts go through ``to_rgb``) and a rect (None: the
    whole image, ``default_rect``) -> ``Preprocessed``."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        image = to_rgb(image)
    H, W = image.shape[:2]
    r = default_rect(H, W) if rect is None else check_rect(rect)
    cropped = crop(image, r)
    return Preprocessed(
        img_512=normalise(resize_square(cropped, load_size)),
        img=normalise(resize_square(cropped, load_size_big)),
        calib=calibration(),
        calib_world=calibration_world(r, H, W),
        rect=r,
    )
