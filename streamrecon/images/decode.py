"""Image files and arrays to uint8 RGB [H, W, 3], safely: the size is read from the header
(``header``) and refused above the pixel limit before any pixel buffer is allocated; 8/16-bit,
grey, RGB and RGBA are accepted (RGBA is un-premultiplied and composited on grey 0.5 exactly as
the PIFuHD reference does; grey is replicated; 16-bit is scaled with ``round(v / 257)``); a
JPEG's EXIF orientation is applied (phone photos come out upright).
Every failure is a one-line ``UserInputError``."""
from __future__ import annotations

import errno
import os
import stat
from typing import Optional, Union

import numpy as np

from ..errors import UserInputError


def load_image(path: Union[str, "os.PathLike[str]"], max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as uint8 RGB [H, W, 3]. The size is read from the file header first
    (``image_header``): an image above ``max_pixels`` (default ``MAX_IMAGE_PIXELS``) is refused
    before the rest of the file is read or any pixel buffer allocated. Raises ``UserInputError``
    when the file is missing, not a regular file (a dangling or looping symlink, a FIFO, a device:
    said which), empty, too large, or not an image OpenCV can decode."""
    path = os.fspath(path)
    return decode_image(_read(path, max_pixels, whole=True), name=path, max_pixels=max_pixels)


def check_image_file(path: Union[str, "os.PathLike[str]"], max_pixels: Optional[int] = None) -> None:
    """``load_image``'s checks without decoding: the file is a regular file whose header names a
    supported format of at most ``max_pixels``. Reads the header only; raises ``UserInputError``."""
    _read(os.fspath(path), max_pixels, whole=False)


def _read(path: str, max_pixels: Optional[int], whole: bool) -> bytes:
    """The header (checked) and, with ``whole``, the rest of the file."""
    from .header import HEADER_BYTES

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if not os.path.islink(path):
            raise UserInputError(f"image not found: {path} (check the path)") from None
        raise UserInputError(f"cannot read image {path}: {not_a_file_reason(path)}") from None
    except OSError as exc:
        raise UserInputError(f"cannot read image {path}: {not_a_file_reason(path, exc)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise UserInputError(f"cannot read image {path}: {_kind(mode, path)}, not an image file")
        with os.fdopen(fd, "rb") as f:
            head = f.read(HEADER_BYTES)
            _check_header(head, path, max_pixels)
            return head + f.read() if whole else head
    except OSError as exc:
        raise UserInputError(f"cannot read image {path}: {exc.strerror}") from None


def not_a_file_reason(path: str, exc: Optional[OSError] = None) -> str:
    """Why ``path`` could not be opened (``exc``; None: it does not exist), in words, a symlink's
    target named."""
    code = errno.ENOENT if exc is None else exc.errno
    if code == errno.ELOOP:
        return "a symlink loop (it leads back to itself); remove or fix the link"
    if code == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a dangling symlink (its target {target} does not exist); fix or remove the link"
    if code == errno.ENOENT or exc is None:
        return "no such file (check the path)"
    return f"{(exc.strerror or str(exc)).lower()} (check the file and its permissions)"


def _kind(mode: int, path: str) -> str:
    link = f" (a symlink to {os.path.realpath(path)})" if os.path.islink(path) else ""
    if stat.S_ISDIR(mode):
        return f"a folder{link}"
    if stat.S_ISFIFO(mode):
        return f"a FIFO (named pipe){link}"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"a device{link}"
    if stat.S_ISSOCK(mode):
        return f"a socket{link}"
    return f"not a regular file{link}"


def _check_header(data: bytes, name: str, max_pixels: Optional[int]) -> str:
    """The format named by the header; ``UserInputError`` when empty, unknown or too large."""
    from .header import MAX_IMAGE_PIXELS, HeaderError, check_size, image_size

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

    from .header import MAX_IMAGE_PIXELS, HeaderError, check_png_chunks

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
    rgb = to_rgb(img, bgr=True, name=name)
    if fmt == "jpeg":
        from .header import jpeg_orientation

        rgb = apply_orientation(rgb, jpeg_orientation(data))
    return rgb


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """``img`` [H, W, ...] turned upright by its EXIF orientation (1-8, TIFF/EXIF 2.32 tag 0x0112:
    how the stored pixels must be flipped or rotated to be seen as taken; phones store portrait
    photos landscape with orientation 6 or 8). 1 and unknown values: unchanged."""
    ops = {
        2: lambda a: a[:, ::-1],                       # mirrored left-right
        3: lambda a: a[::-1, ::-1],                    # upside down
        4: lambda a: a[::-1],                          # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),                 # transposed
        6: lambda a: np.rot90(a, k=-1),                # turn 90 degrees clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),     # transverse
        8: lambda a: np.rot90(a, k=1),                 # turn 90 degrees counter-clockwise
    }
    op = ops.get(int(orientation))
    return img if op is None else np.ascontiguousarray(op(img))


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
