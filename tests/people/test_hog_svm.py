"""The numpy HOG people detector (``people.hog_svm``) against its pixel-by-pixel twin and, where
OpenCV 4 is installed, against OpenCV's own ``HOGDescriptor``; the search geometry
(``people.pyramid``) on its own."""
import numpy as np
import pytest

from streamrecon.people import hog_svm as H
from streamrecon.people.pyramid import (BLAZEPOSE_MIN_FRACTION, HOG_BODY, HOG_MAX_FRACTION, covered_fraction,
                                        full_tile, hog_scales, search_tasks, split_rounds)
from paths import MEDIA  # noqa: E402

cv2 = pytest.importorskip("cv2")


def _photo(h=160, w=96, seed=0):
    img = cv2.cvtColor(cv2.imread(str(MEDIA / "astronaut.png")), cv2.COLOR_BGR2RGB)
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
    return np.ascontiguousarray(img[y:y + h, x:x + w])


@pytest.mark.parametrize("seed", [0, 1])
def test_block_features_match_the_slow_twin(seed):
    img = _photo(seed=seed)
    fast = H.block_features(img)
    assert fast.shape == (160 // 8 - 1, 96 // 8 - 1, 36) and fast.dtype == np.float32
    rows, cols = [0, 5, 18], [0, 4, 10]
    slow = H.block_features_reference(img, rows, cols)
    np.testing.assert_allclose(fast[np.ix_(rows, cols)], slow, atol=1e-5)
    # L2-Hys: no value above the clip before the last scaling, unit-ish norm after it
    norms = np.linalg.norm(fast.reshape(-1, 36), axis=1)
    assert norms.max() <= 1.0 + 1e-5


def test_grey_images_and_tiny_images():
    grey = cv2.cvtColor(_photo(), cv2.COLOR_RGB2GRAY)
    a = H.block_features(grey)
    b = H.block_features(np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_allclose(a, b, atol=1e-6)  # three equal channels: the first one wins
    assert H.block_features(np.zeros((12, 12, 3), np.uint8)).shape == (0, 0, 36)
    assert H.window_scores(np.zeros((10, 5, 36), np.float32)).shape == (0, 0)


def test_window_scores_are_the_svm_on_each_window():
    img = _photo(200, 120, seed=2)
    blocks = H.block_features(img)
    scores = H.window_scores(blocks)
    w, b = H.people_svm()
    assert scores.shape == (blocks.shape[0] - 14, blocks.shape[1] - 6)
    for r, c in ((0, 0), (3, 5), (scores.shape[0] - 1, scores.shape[1] - 1)):
        win = blocks[r:r + 15, c:c + 7]  # [15 y, 7 x, 36]
        direct = float((win.transpose(1, 0, 2) * w).sum() + b)
        assert scores[r, c] == pytest.approx(direct, abs=1e-4)


def test_same_descriptor_as_opencv_4():
    """OpenCV 4's HOGDescriptor (absent from OpenCV 5) gives the same descriptor and score."""
    if not hasattr(cv2, "HOGDescriptor"):
        pytest.skip(f"OpenCV {cv2.__version__} has no HOGDescriptor to compare with (OpenCV 5 dropped it)")
    img = _photo(128, 64, seed=3)
    hog = cv2.HOGDescriptor()
    ref = hog.compute(np.ascontiguousarray(img[:, :, ::-1])).reshape(-1)
    ours = H.block_features(img).transpose(1, 0, 2).reshape(-1)  # OpenCV orders blocks x outer, y inner
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    np.testing.assert_allclose(ref @ cv2.HOGDescriptor_getDefaultPeopleDetector().reshape(-1)[:-1],
                               ours @ H.people_svm()[0].reshape(-1), atol=1e-3)


def test_detect_people_finds_a_walker_at_any_size():
    """A standing man (labelme 2011_000003's left man is crouching; the street clip's walkers
    are upright): the clip's man at x ~ 250 found at his own size and at 0.7x and 1.5x."""
    from pathlib import Path

    path = Path("/usr/share/doc/labelme-examples/examples/video_annotation/data_annotated/00000100.jpg")
    if not path.exists():
        pytest.skip("labelme examples absent: `apt-get install labelme-examples` (Debian) provides them")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)[200:420, 150:400]
    for k in (0.7, 1.0, 1.5):
        im = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        hits = H.detect_people(im, 40 * k, 150 * k)
        cx = [(b[0] + b[2]) / 2 / k + 150 for b, s in hits if s > 0.3]
        assert any(abs(c - 250) < 20 for c in cx), (k, cx)


def test_nms_keeps_the_best_of_overlapping_boxes():
    hits = [(0, 0, 10, 20, 1.0), (1, 0, 11, 20, 2.0), (30, 0, 40, 20, 0.5), (31, 2, 38, 18, 0.9)]
    out = H.nms_boxes(hits)
    assert [s for _, s in out] == [2.0, 0.9]  # the box inside the 0.9 one's neighbour is gone too


def test_search_geometry():
    """The HOG levels reach from min_height to where the letterbox takes over; strips overlap by
    a window; the rounds split the cost evenly and lose nothing."""
    w, h = 1920, 1080
    scales = hog_scales(w, h, 50)
    bodies = [HOG_BODY / s for s in scales]
    assert bodies[0] == pytest.approx(50) and bodies[-1] >= HOG_MAX_FRACTION * w > BLAZEPOSE_MIN_FRACTION * w
    assert all(b2 / b1 == pytest.approx(1.3) for b1, b2 in zip(bodies, bodies[1:]))
    tasks = search_tasks(w, h, 50)
    for s in scales:
        strips = sorted((t for t in tasks if t.scale == s), key=lambda t: t.y0)
        assert strips[0].y0 == 0 and strips[-1].y1 == h
        for a, b in zip(strips, strips[1:]):
            assert a.y1 - b.y0 >= 128 / s - 1  # a whole window fits in one of them
    rounds = split_rounds(tasks, 5)
    assert sorted(map(id, sum(rounds, []))) == sorted(map(id, tasks))
    cost = [sum(t.pixels for t in r) for r in rounds]
    assert max(cost) < 1.5 * sum(cost) / 5
    # a small frame: the letterbox alone finds 50 px people
    assert hog_scales(176, 144, 50) == [] and search_tasks(176, 144, 50) == []
    assert full_tile(640, 480) == (0.0, -80.0, 640.0)
    assert covered_fraction((0, 0, 100, 100), [(0, 0, 50, 100)]) == pytest.approx(0.5)
    assert covered_fraction((0, 0, 100, 100), []) == 0.0
    with pytest.raises(ValueError):
        hog_scales(640, 480, 0)
