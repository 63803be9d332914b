"""EXIF orientation: phone photos are decoded upright, as Pillow's ``ImageOps.exif_transpose``
shows them; a damaged EXIF block leaves the photo readable."""
import io

import numpy as np
import pytest

from streamrecon.images.decode import decode_image
from streamrecon.images.header import jpeg_orientation

Image = pytest.importorskip("PIL.Image", reason="Pillow (the test extra) writes the EXIF test photos")
ImageOps = pytest.importorskip("PIL.ImageOps")


def _photo():
    """A 48x32 picture with no symmetry: a gradient, a block in one corner."""
    y, x = np.mgrid[0:32, 0:48]
    img = np.stack([x * 5, y * 7, (x + y) * 2], axis=-1).astype(np.uint8)
    img[2:10, 3:15] = (250, 20, 20)
    return img


def _jpeg(img, orientation=None):
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(img).save(buf, "JPEG", quality=98, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_orientation_matches_pillow(orientation):
    data = _jpeg(_photo(), orientation)
    assert jpeg_orientation(data) == orientation
    ours = decode_image(data)
    ref = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert ours.shape == ref.shape
    # two JPEG decoders (OpenCV's and Pillow's libjpeg) round slightly differently
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 2.0
    if orientation in (5, 6, 7, 8):
        assert ours.shape[:2] == (48, 32)


def test_no_or_damaged_exif_is_as_stored():
    img = _photo()
    plain = _jpeg(img)
    assert jpeg_orientation(plain) == 1
    data = bytearray(_jpeg(img, 6))
    k = data.find(b"Exif\0\0")
    assert k > 0
    data[k + 6:k + 8] = b"XX"  # not a TIFF byte order: the tag cannot be read
    assert jpeg_orientation(bytes(data)) == 1
    assert decode_image(bytes(data)).shape == (32, 48, 3)
    for cut in range(0, k + 40, 3):  # truncated anywhere in the header: never raises
        jpeg_orientation(bytes(data[:cut]))
