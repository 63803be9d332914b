"""Property tests (hypothesis) for the parsers that see user or network input: rect text and
rects, BlazePose keypoints, image headers and image loading. Each either returns a well-formed
value or raises the documented error — never anything else."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamrecon.errors import UserInputError
from streamrecon.images.header import HeaderError, image_size
from streamrecon.people.crop_rule import crop_rect_from_keypoints
from streamrecon.images.decode import load_image
from streamrecon.models.preprocess import check_rect, parse_rects

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(st.text(max_size=200))
def test_parse_rects_any_text(text):
    try:
        rects = parse_rects(text)
    except UserInputError as exc:
        assert "\n" not in str(exc)
        return
    assert rects and all(len(r) == 4 and all(isinstance(v, int) for v in r) and r[2] > 0 and r[3] > 0 for r in rects)


@FAST
@given(st.lists(st.tuples(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6), st.integers(1, 10**6), st.integers(1, 10**6)),
                min_size=1, max_size=5), st.sampled_from([" ", ",", "\t", ", "]))
def test_parse_rects_round_trip(rects, sep):
    text = "\n".join(sep.join(str(v) for v in r) + "  # person" for r in rects)
    assert parse_rects(text) == rects


@FAST
@given(st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4),
                 st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6)))
def test_check_rect_any_floats(vals):
    try:
        r = check_rect(vals)
    except UserInputError as exc:
        assert "\n" not in str(exc)
        return
    assert len(vals) == 4 and all(math.isfinite(v) for v in vals)
    assert r[2] > 0 and r[3] > 0


keypoints = arrays(np.float64, (33, 3), elements=st.floats(-1e4, 1e4, allow_nan=False))


@FAST
@given(keypoints, st.one_of(st.none(), st.tuples(st.integers(1, 4000), st.integers(1, 4000))))
def test_crop_rect_from_any_finite_keypoints_is_a_square(kps, image_size_):
    kps = kps.copy()
    kps[:, 2] = np.abs(kps[:, 2]) % 1.0
    try:
        rect, rule = crop_rect_from_keypoints(kps, image_size=image_size_, visible_box=(0, 0, 10, 10))
    except ValueError:
        return
    x, y, w, h = rect
    assert all(math.isfinite(v) for v in rect) and w == pytest.approx(h) and w >= 2.0 - 1e-9


@FAST
@given(st.one_of(arrays(np.float64, (33, 3), elements=st.floats(allow_nan=True, allow_infinity=True)),
                 arrays(np.float64, st.tuples(st.integers(0, 40), st.integers(0, 4)), elements=st.floats(allow_nan=True, allow_infinity=True))))
def test_keypoints_of_any_shape_or_value_give_a_finite_rect_or_value_error(kps):
    try:
        rect, _ = crop_rect_from_keypoints(kps, visible_box=(0, 0, 10, 10))
    except ValueError:
        return
    assert all(math.isfinite(v) for v in rect)


@FAST
@given(st.binary(max_size=300))
def test_image_header_random_bytes(data):
    try:
        w, h, fmt = image_size(data)
    except HeaderError:
        return
    assert w >= 0 and h >= 0 and isinstance(fmt, str)


@FAST
@given(st.sampled_from(["b\x89PNG\r\n\x1a\n", "\xff\xd8", "BM", "GIF89a", "II*\x00", "MM\x00*", "P6", "RIFF"]),
       st.binary(max_size=200))
def test_image_header_random_bytes_after_a_real_signature(sig, rest):
    data = sig.encode("latin-1") + rest
    try:
        image_size(data)
    except HeaderError:
        pass


formats = st.sampled_from([(".png", "u1", 3), (".png", "u2", 1), (".png", "u2", 4), (".png", "u1", 4), (".jpg", "u1", 3),
                           (".jpg", "u1", 1), (".bmp", "u1", 3), (".tif", "u2", 3), (".tif", "u1", 1), (".webp", "u1", 3),
                           (".ppm", "u1", 3), (".pgm", "u2", 1)])


@FAST
@given(formats, st.integers(1, 70), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_header_size_equals_decoded_size_and_load_gives_rgb(tmp_path_factory, fmt, w, h, seed):
    import cv2

    ext, dtype, ch = fmt
    assume(not (ext == ".webp" and (w > 16383 or h > 16383)))
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == "u1" else 65535
    img = rng.integers(0, hi + 1, (h, w, ch) if ch > 1 else (h, w), dtype=np.uint16 if dtype == "u2" else np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    data = buf.tobytes()
    assert image_size(data)[:2] == (w, h)
    path = tmp_path_factory.mktemp("img") / f"x{ext}"
    path.write_bytes(data)
    out = load_image(path)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    if ext in (".png", ".bmp", ".ppm", ".pgm", ".tif") and ch != 4:  # lossless: exact pixels
        ref = img if dtype == "u1" else ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        ref = np.repeat(ref[:, :, None], 3, axis=2) if ch == 1 else ref[:, :, ::-1]
        assert np.array_equal(out, ref)
