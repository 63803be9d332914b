"""Input preprocessing identical to the PIFuHD reference's rect path (``lib/data/EvalDataset.py``).

Steps: load the image (8/16-bit, grey, RGB, RGBA) as uint8 RGB -> crop by the rect ``x y w h``
with zero (black) padding outside the image -> resize to 512 and to 1024 (OpenCV bilinear,
``INTER_LINEAR``) -> float ``(u8 / 255 - 0.5) / 0.5`` -> [1, 3, S, S] tensors.
RGBA is un-premultiplied and composited on grey 0.5, with the reference's float64 arithmetic and
truncation to uint8. Grey is replicated to three channels; 16-bit is scaled to 8-bit
(``round(v / 257)``); the reference itself reads neither.

The calibration is orthographic, ``diag(1, -1, 1, 1)`` (y flipped): crop-frame point (x, y, z)
samples the feature maps at (u, v) = (x, -y) in ``grid_sample`` coordinates.

Rects are integer pixels in the reference; a float rect (from a detector) is rounded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import UserInputError

Rect = Tuple[int, int, int, int]


# ---- loading ---------------------------------------------------------------------------------
def load_image(path: Union[str, "os.PathLike[str]"], max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as uint8 RGB [H, W, 3]. The size is read from the file header first
    (``image_header``): an image above ``max_pixels`` (default ``MAX_IMAGE_PIXELS``) is refused
    before the rest of the file is read or any pixel buffer allocated. Raises ``UserInputError``
    when the file is missing, empty, too large, or not an image OpenCV can decode."""
    from .image_header import HEADER_BYTES

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserInputError(f"image not found: {path} (check the path)")
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            _check_header(head, path, max_pixels)
            data = head + f.read()
    except OSError as exc:
        raise UserInputError(f"cannot read image {path}: {exc.strerror}") from None
    return decode_image(data, name=path, max_pixels=max_pixels)


def _check_header(data: bytes, name: str, max_pixels: Optional[int]) -> str:
    """The format named by the header; ``UserInputError`` when empty, unknown or too large."""
    from .image_header import MAX_IMAGE_PIXELS, HeaderError, check_size, image_size

    if not data:
        raise UserInputError(f"cannot read image {name}: the file is empty (0 bytes)")
    try:
        w, h, fmt = image_size(data)
        check_size(w, h, name=name, max_pixels=max_pixels or MAX_IMAGE_PIXELS)
    except HeaderError as exc:
        raise UserInputError(f"cannot read image {name}: {exc}; use PNG or JPEG") from None
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    return fmt


def decode_image(data: bytes, name: str = "image", max_pixels: Optional[int] = None) -> np.ndarray:
    """Encoded image bytes -> uint8 RGB [H, W, 3], size checked from the header before decoding
    (see ``load_image``). Raises ``UserInputError`` only (the fuzz harness holds it to that)."""
    import cv2

    from .image_header import MAX_IMAGE_PIXELS, HeaderError, check_png_chunks

    fmt = _check_header(data, name, max_pixels)
    if fmt == "png":
        try:
            check_png_chunks(data)
        except HeaderError as exc:
            raise UserInputError(f"cannot read image {name}: {exc}; re-export it") from None
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UserInputError(f"cannot read image {name}: corrupt or truncated {fmt.upper()} data (re-export it as PNG or JPEG)")
    if img.shape[0] * img.shape[1] > (max_pixels or MAX_IMAGE_PIXELS):  # a header that lied (multi-frame files)
        raise UserInputError(f"{name}: decoded to {img.shape[1]}x{img.shape[0]} pixels, above the limit; downscale it first")
    return to_rgb(img, bgr=True, name=name)


def to_rgb(img: np.ndarray, bgr: bool = False, name: str = "image") -> np.ndarray:
    """Convert an array image to uint8 RGB [H, W, 3]. Accepts [H, W] or [H, W, 1] grey,
    [H, W, 3] colour, [H, W, 4] colour + alpha (composited on grey 0.5), uint8 or uint16.
    ``bgr``: channels are in OpenCV order (files); in-memory arrays are RGB(A)."""
    if not isinstance(img, np.ndarray):
        raise UserInputError(f"{name}: expected a numpy array, got {type(img).__name__}")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise UserInputError(f"{name}: expected 8- or 16-bit pixels (uint8/uint16), got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] == 0 or img.shape[1] == 0:
        raise UserInputError(f"{name}: expected [H, W], [H, W, 3] or [H, W, 4] pixels, got shape {list(img.shape)}")
    if img.shape[2] == 4:
        img = composite_on_grey(img)
    if bgr:
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)


def composite_on_grey(img4: np.ndarray) -> np.ndarray:
    """[H, W, 4] uint8 colour + alpha -> [H, W, 3] uint8, exactly as the reference: colour
    divided by (alpha + 1e-8), then alpha * colour + 0.5 * (1 - alpha), times 255, truncated.
    Channel order is kept (works for BGRA and RGBA alike)."""
    im = img4.astype(np.float64) / 255.0
    rgb, a = im[:, :, :3], im[:, :, 3:]
    rgb = rgb / (a + 1e-8)
    out = a * rgb + 0.5 * (1.0 - a)
    return (255.0 * out).astype(np.uint8)


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
