"""Image size from the file header, before any pixel is decoded.

``image_size(data) -> (width, height, format)`` reads the first bytes of a PNG, JPEG, BMP, GIF,
WebP, TIFF or PNM file and returns the dimensions the decoder would allocate for, so that
``images.decode.load_image`` can refuse a 20000 x 20000 image (1.2 GB as RGB, 4.8 GB as 16-bit
RGBA) before OpenCV allocates it. Pure functions over ``bytes``; they never allocate more than
the header itself and raise ``HeaderError`` (a ``ValueError``) on anything they cannot read, so
the fuzz harness (``tests/reliability/fuzz/``) can call them on random bytes.
"""
from __future__ import annotations

import struct
from typing import Tuple

# An RGB frame of 40 megapixels is 120 MB; the RGBA path composites in float64 (1.3 GB). 8K UHD
# (7680 x 4320 = 33 MP) fits.
MAX_IMAGE_PIXELS = 40_000_000
HEADER_BYTES = 1 << 16  # what callers read before deciding (JPEG SOF may follow big EXIF blocks)

FORMATS = ("png", "jpeg", "bmp", "gif", "webp", "tiff", "pnm")


class HeaderError(ValueError):
    """The bytes are not a header of a supported image format (or a malformed one)."""


def image_size(data: bytes) -> Tuple[int, int, str]:
    """(width, height, format) from the start of an image file. ``data`` needs only the first
    ``HEADER_BYTES`` (less for most formats). Raises ``HeaderError`` when unrecognised/truncated."""
    b = bytes(data[:HEADER_BYTES])
    if b.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(b) + ("png",)
    if b.startswith(b"\xff\xd8"):
        return _jpeg(b) + ("jpeg",)
    if b.startswith(b"BM"):
        return _bmp(b) + ("bmp",)
    if b[:6] in (b"GIF87a", b"GIF89a"):
        _need(b, 10)
        w, h = struct.unpack_from("<HH", b, 6)
        return w, h, "gif"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return _webp(b) + ("webp",)
    if b[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(b) + ("tiff",)
    if len(b) >= 2 and b[0:1] == b"P" and b[1:2] in b"123456":
        return _pnm(b) + ("pnm",)
    raise HeaderError(f"not a {', '.join(FORMATS)} file (unrecognised header)")


def _need(b: bytes, n: int) -> None:
    if len(b) < n:
        raise HeaderError(f"truncated header ({len(b)} bytes, need {n})")


def _png(b: bytes) -> Tuple[int, int]:
    _need(b, 24)
    if b[12:16] != b"IHDR":
        raise HeaderError("PNG without IHDR chunk first")
    return struct.unpack_from(">II", b, 16)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(b: bytes) -> Tuple[int, int]:
    i = 2
    while True:
        while i < len(b) and b[i] != 0xFF:  # tolerate junk between segments, as libjpeg does
            i += 1
        while i < len(b) and b[i] == 0xFF:  # fill bytes
            i += 1
        _need(b, i + 1)
        marker = b[i]
        i += 1
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            continue  # no length field
        if marker in (0xD9, 0xDA):
            raise HeaderError("JPEG without a frame header before the image data")
        _need(b, i + 2)
        (length,) = struct.unpack_from(">H", b, i)
        if length < 2:
            raise HeaderError(f"JPEG segment length {length}")
        if marker in _SOF:
            _need(b, i + 7)
            h, w = struct.unpack_from(">HH", b, i + 3)
            return w, h
        i += length


def _bmp(b: bytes) -> Tuple[int, int]:
    _need(b, 18)
    (dib,) = struct.unpack_from("<I", b, 14)
    if dib == 12:
        _need(b, 22)
        w, h = struct.unpack_from("<HH", b, 18)
        return w, h
    _need(b, 26)
    w, h = struct.unpack_from("<ii", b, 18)
    if w < 0:
        raise HeaderError(f"BMP with negative width {w}")
    return w, abs(h)  # negative height = top-down rows


def _webp(b: bytes) -> Tuple[int, int]:
    _need(b, 16)
    chunk = b[12:16]
    if chunk == b"VP8 ":
        _need(b, 30)
        w, h = struct.unpack_from("<HH", b, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        _need(b, 25)
        (bits,) = struct.unpack_from("<I", b, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        _need(b, 30)
        w = int.from_bytes(b[24:27], "little") + 1
        h = int.from_bytes(b[27:30], "little") + 1
        return w, h
    raise HeaderError(f"WebP with unknown chunk {chunk!r}")


def _tiff(b: bytes) -> Tuple[int, int]:
    e = "<" if b[:2] == b"II" else ">"
    _need(b, 8)
    (off,) = struct.unpack_from(e + "I", b, 4)
    _need(b, off + 2)
    (n,) = struct.unpack_from(e + "H", b, off)
    w = h = None
    for k in range(n):
        p = off + 2 + 12 * k
        _need(b, p + 12)
        tag, typ, count = struct.unpack_from(e + "HHI", b, p)
        if tag not in (256, 257):
            continue
        if typ == 3:
            (v,) = struct.unpack_from(e + "H", b, p + 8)
        elif typ == 4:
            (v,) = struct.unpack_from(e + "I", b, p + 8)
        else:
            raise HeaderError(f"TIFF size tag of type {typ}")
        if tag == 256:
            w = v
        else:
            h = v
    if w is None or h is None:
        raise HeaderError("TIFF first directory has no ImageWidth/ImageLength")
    return w, h


def _pnm(b: bytes) -> Tuple[int, int]:
    tokens = []
    i = 2
    while len(tokens) < 2:
        while i < len(b) and b[i:i + 1].isspace():
            i += 1
        if i < len(b) and b[i:i + 1] == b"#":
            while i < len(b) and b[i:i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while j < len(b) and b[j:j + 1].isdigit():
            j += 1
        if j == i or j - i > 9:
            raise HeaderError("PNM header without width/height")
        tokens.append(int(b[i:j]))
        i = j
    return tokens[0], tokens[1]


def check_png_chunks(data: bytes) -> None:
    """Walk a whole PNG file's chunk headers: every chunk length must fit in what is left of the
    file. OpenCV's PNG reader allocates a chunk's announced length before reading it, so a 300-byte
    file announcing a 2.6 GB chunk costs gigabytes and seconds per decode (found by
    ``tests/reliability/fuzz/fuzz_image.py``); this refuses it first. O(chunks), no allocation."""
    i, n = 8, len(data)
    while i < n:
        if i + 8 > n:
            raise HeaderError(f"PNG truncated inside a chunk header at byte {i}")
        (length,) = struct.unpack_from(">I", data, i)
        tag = bytes(data[i + 4:i + 8])
        if length > n - i - 12:
            raise HeaderError(f"PNG chunk {tag!r} at byte {i} announces {length} bytes, the file has "
                              f"{max(n - i - 12, 0)} left (corrupt or truncated)")
        i += 12 + length
        if tag == b"IEND":
            return


def check_size(width: int, height: int, name: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Raise ``ValueError`` (message says what and how to fix) for an empty or too large image."""
    if width <= 0 or height <= 0:
        raise ValueError(f"{name}: header says {width}x{height} pixels (an empty image)")
    if width * height > max_pixels:
        gb = width * height * 3 / 1e9
        raise ValueError(
            f"{name}: {width}x{height} pixels ({width * height / 1e6:.0f} MP, {gb:.1f} GB as RGB) exceeds the "
            f"{max_pixels / 1e6:.0f} MP limit; downscale it first (e.g. to 4096 px on the long side)"
        )


EXIF_ORIENTATION_TAG = 0x0112


def jpeg_orientation(b: bytes) -> int:
    """The EXIF orientation (1-8; 1 = as stored) of JPEG bytes, read from the APP1 ``Exif``
    segment before the image data; 1 when there is none or it is malformed (never raises: a
    damaged EXIF block must not make a decodable photo unreadable). Every offset is checked
    against the segment before it is read."""
    try:
        i = 2
        while i + 4 <= len(b):
            if b[i] != 0xFF:
                return 1
            marker = b[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD9, 0xDA):
                return 1
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack_from(">H", b, i + 2)
            if length < 2:
                return 1
            seg = b[i + 4:i + 2 + length]
            if marker == 0xE1 and seg[:6] == b"Exif\0\0":
                return _tiff_orientation(seg[6:])
            i += 2 + length
    except (struct.error, IndexError):
        pass
    return 1


def _tiff_orientation(t: bytes) -> int:
    if len(t) < 8 or t[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if t[:2] == b"II" else ">"
    magic, ifd = struct.unpack_from(e + "HI", t, 2)
    if magic != 42 or ifd + 2 > len(t):
        return 1
    (n,) = struct.unpack_from(e + "H", t, ifd)
    for k in range(n):
        o = ifd + 2 + 12 * k
        if o + 12 > len(t):
            return 1
        tag, typ, count = struct.unpack_from(e + "HHI", t, o)
        if tag == EXIF_ORIENTATION_TAG:
            if typ != 3 or count < 1:
                return 1
            (v,) = struct.unpack_from(e + "H", t, o + 8)
            return v if 1 <= v <= 8 else 1
    return 1
