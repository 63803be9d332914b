"""Preprocessing: image loading (RGBA, grey, 16-bit), rects, crop with zero padding (against a
twin written the reference's way), resize/normalise, calibration."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from streamrecon.errors import UserInputError  # noqa: E402
from streamrecon.images.decode import composite_on_grey, load_image, to_rgb  # noqa: E402
from streamrecon.models.preprocess import (  # noqa: E402
    calibration,
    crop,
    default_rect,
    normalise,
    parse_rects,
    preprocess,
    read_rect_file,
)


def _reference_crop(img, rect):
    """The reference's crop_image: pad with copyMakeBorder, then slice (slow twin)."""
    x, y, w, h = rect
    left = abs(x) if x < 0 else 0
    top = abs(y) if y < 0 else 0
    right = abs(img.shape[1] - (x + w)) if x + w >= img.shape[1] else 0
    bottom = abs(img.shape[0] - (y + h)) if y + h >= img.shape[0] else 0
    padded = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=[0, 0, 0])
    return padded[y + top:y + top + h, x + left:x + left + w, :]


@settings(max_examples=60, deadline=None)
@given(x=st.integers(-40, 40), y=st.integers(-40, 40), w=st.integers(1, 70), h=st.integers(1, 70))
def test_crop_equals_reference_crop(x, y, w, h):
    rng = np.random.default_rng(abs(x * 1000 + y))
    img = rng.integers(1, 256, size=(23, 31, 3), dtype=np.uint8)  # no zeros: padding is visible
    ours = crop(img, (x, y, w, h))
    assert ours.shape == (h, w, 3)
    np.testing.assert_array_equal(ours, _reference_crop(img, (x, y, w, h)))


def test_crop_padding_is_zero_and_inside_is_copied():
    img = np.full((10, 10, 3), 200, np.uint8)
    c = crop(img, (-5, -5, 20, 20))
    assert (c[:5] == 0).all() and (c[:, :5] == 0).all() and (c[15:] == 0).all() and (c[:, 15:] == 0).all()
    assert (c[5:15, 5:15] == 200).all()
    assert (crop(img, (50, 50, 4, 4)) == 0).all()  # fully outside: all padding


def test_rgba_composite_matches_reference_formula():
    px = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [100, 50, 0, 128], [10, 20, 30, 1]]], np.uint8)
    out = composite_on_grey(px)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    # opaque: the colour, but the reference's divide-by-(alpha + 1e-8) and truncation make every
    # non-zero value lose one level (kept on purpose: the network saw these values)
    np.testing.assert_array_equal(out[0, 0], [254, 0, 0])
    np.testing.assert_array_equal(composite_on_grey(np.array([[[250, 10, 0, 255]]], np.uint8))[0, 0], [249, 9, 0])
    np.testing.assert_array_equal(out[0, 1], [127, 127, 127])  # transparent: grey 0.5 (truncated)
    for i in (2, 3):
        im = px[0, i].astype(np.float64) / 255.0
        rgb = im[:3] / (im[3] + 1e-8)
        want = (255.0 * (im[3] * rgb + 0.5 * (1.0 - im[3]))).astype(np.uint8)
        np.testing.assert_array_equal(out[0, i], want)


def test_load_image_rgba_grey_16bit_and_channel_order(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 250  # red in RGB
    rgb[..., 2] = 10
    bgr = rgb[..., ::-1]
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    np.testing.assert_array_equal(load_image(tmp_path / "c.png"), rgb)
    bgra = np.concatenate([bgr, np.full((6, 8, 1), 255, np.uint8)], 2)
    bgra[0, 0, 3] = 0
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    a = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(a[1:, 1:], composite_on_grey(np.concatenate([rgb, bgra[..., 3:]], 2))[1:, 1:])
    assert np.abs(a[1:, 1:].astype(int) - rgb[1:, 1:]).max() <= 1
    np.testing.assert_array_equal(a[0, 0], [127, 127, 127])
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    g = load_image(tmp_path / "g.png")
    assert g.shape == (6, 8, 3) and all((g[..., i] == grey).all() for i in range(3))
    cv2.imwrite(str(tmp_path / "w.png"), bgr.astype(np.uint16) * 257)
    np.testing.assert_array_equal(load_image(tmp_path / "w.png"), rgb)
    np.testing.assert_array_equal(to_rgb(grey[..., None]), g)


def test_load_image_errors_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="image not found"):
        load_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserInputError, match="cannot read image"):
        load_image(bad)
    with pytest.raises(UserInputError, match="pixels"):
        to_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(UserInputError, match="uint8/uint16"):
        to_rgb(np.zeros((4, 4, 3), np.float32))


def test_rect_parsing(tmp_path):
    assert parse_rects("-32 -26 1088 1088\n") == [(-32, -26, 1088, 1088)]
    assert parse_rects("# people\n1 2 3 3\n\n4,5,6,6  # second\n") == [(1, 2, 3, 3), (4, 5, 6, 6)]
    assert parse_rects("1.4 2.6 10 10") == [(1, 3, 10, 10)]
    for bad, msg in (("1 2 3", "4 numbers"), ("a b c d", "4 numbers"), ("0 0 0 5", "> 0"), ("", "no rect")):
        with pytest.raises(UserInputError, match=msg):
            parse_rects(bad)
    p = tmp_path / "r.txt"
    p.write_text("0 0 5 5\n")
    assert read_rect_file(p) == [(0, 0, 5, 5)]
    with pytest.raises(UserInputError, match="rect file not found"):
        read_rect_file(tmp_path / "none.txt")


def test_default_rect_is_centred_square():
    assert default_rect(144, 176) == (0, -16, 176, 176)
    assert default_rect(300, 100) == (-100, 0, 300, 300)
    x, y, w, h = default_rect(51, 50)
    assert w == h == 51 and x + w / 2 == pytest.approx(25, abs=0.5)


def test_normalise_and_preprocess_shapes():
    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0] = 255
    t = normalise(img)
    assert tuple(t.shape) == (1, 3, 4, 4) and t[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0] and t[0, 0, 1, 1] == -1.0
    pre = preprocess(np.full((30, 20, 3), 7, np.uint8), None, load_size=16, load_size_big=32)
    assert tuple(pre.img_512.shape) == (1, 3, 16, 16) and tuple(pre.img.shape) == (1, 3, 32, 32)
    assert pre.rect == (-5, 0, 30, 30)
    assert pre.img_512[0, :, 8, 0].max() < pre.img_512[0, :, 8, 8].min()  # left padding is black
    np.testing.assert_array_equal(calibration(), np.diag([1, -1, 1, 1]).astype(np.float32))
