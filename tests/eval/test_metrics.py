"""Metric functions against hand-computed values, their slow twins and scikit-image."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from streamrecon.eval.metrics import (boundary, boundary_fscore, boundary_fscore_reference, default_tolerance,
                                 depth_change, iou, psnr, silhouette_change, ssim, stability_summary, to_gray)


def square(h, w, y0, x0, size):
    m = np.zeros((h, w), bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_iou_hand_computed():
    a, b = square(20, 20, 2, 2, 10), square(20, 20, 2, 7, 10)  # overlap 10 x 5
    assert iou(a, b) == pytest.approx(50 / 150)
    assert iou(a, a) == 1.0
    assert iou(a, np.zeros_like(a)) == 0.0
    assert iou(np.zeros_like(a), np.zeros_like(a)) == 1.0
    with pytest.raises(ValueError, match="pred, gt"):
        iou(a, a[:5])


def test_boundary_of_a_square_is_its_ring():
    b = boundary(square(12, 12, 1, 1, 10))
    assert b.sum() == 36 and not b[2:10, 2:10].any()
    # A mask touching the frame edge has its boundary on that edge.
    assert boundary(np.ones((4, 5), bool)).sum() == 4 * 5 - 2 * 3


def test_boundary_fscore_shifted_square_hand_computed():
    a, b = square(30, 30, 5, 5, 10), square(30, 30, 5, 8, 10)  # shifted 3 px right
    assert boundary_fscore(a, b, tolerance=3)["f"] == 1.0
    # With 2 px, A's left column (10 px) is 3 px from B's left column, and the 4 middle pixels of
    # A's right column are 3 px from B's right column and 3-4 px from B's top/bottom rows; by
    # symmetry the same 14 of B's 36 boundary pixels are unmatched.
    r = boundary_fscore(a, b, tolerance=2)
    assert r["precision"] == pytest.approx(22 / 36) and r["recall"] == pytest.approx(22 / 36)
    assert r["f"] == pytest.approx(22 / 36)
    assert boundary_fscore(a, a, tolerance=0)["f"] == 1.0
    assert boundary_fscore(a, np.zeros_like(a))["f"] == 0.0
    assert boundary_fscore(np.zeros_like(a), np.zeros_like(a))["f"] == 1.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tol=st.sampled_from([0, 1, 1.5, 2, 3.2]))
def test_boundary_fscore_matches_slow_twin(seed, tol):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:24, :28]

    def blob():
        cy, cx, r = rng.uniform(4, 20), rng.uniform(4, 24), rng.uniform(2, 9)
        return (yy - cy) ** 2 + (xx - cx) ** 2 * rng.uniform(0.5, 2) < r * r

    a, b = blob() | blob(), blob()
    fast, slow = boundary_fscore(a, b, tol), boundary_fscore_reference(a, b, tol)
    assert fast == pytest.approx(slow)


def test_default_tolerance_is_davis():
    assert default_tolerance(480, 640) == math.ceil(0.008 * 800)
    assert default_tolerance(10, 10) == 1.0


def test_psnr_hand_computed():
    a = np.full((8, 9), 100, np.uint8)
    assert psnr(a, a + 10) == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert psnr(a, a) == math.inf
    assert psnr(a / 255.0, (a + 10) / 255.0, data_range=1.0) == pytest.approx(10 * math.log10(255 ** 2 / 100))


def test_ssim_and_psnr_match_scikit_image():
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is the reference twin (test extra)")
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (61, 47)).astype(np.uint8)
    for noise in (5.0, 40.0):
        other = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
        assert ssim(base, other) == pytest.approx(metrics.structural_similarity(base, other, data_range=255), abs=1e-9)
        assert psnr(base, other) == pytest.approx(metrics.peak_signal_noise_ratio(base, other, data_range=255))
    smooth = np.clip(np.add.outer(np.arange(40) * 3.0, np.arange(40) * 2.0), 0, 255)
    assert ssim(smooth, smooth * 0.8, win_size=9) == pytest.approx(
        metrics.structural_similarity(smooth, smooth * 0.8, data_range=255, win_size=9), abs=1e-9)
    assert ssim(base, base) == pytest.approx(1.0)


def test_to_gray_matches_opencv():
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the reference for BT.601 luma")
    rgb = np.random.default_rng(1).integers(0, 256, (9, 11, 3)).astype(np.uint8)
    assert np.abs(to_gray(rgb) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).max() <= 0.5 + 1e-9
    with pytest.raises(ValueError, match="image"):
        to_gray(np.zeros((3, 3, 4)))


def test_temporal_measures():
    a, b = square(20, 20, 2, 2, 10), square(20, 20, 2, 7, 10)
    assert silhouette_change(a, a) == 0.0
    assert silhouette_change(a, b) == pytest.approx(1 - 50 / 150)
    d0 = np.where(a, 1.0, np.nan)
    d1 = np.where(b, 1.0, np.nan)
    d1[5, 8] = 4.0
    assert depth_change(d0, d1) == 0.0  # median over the 50 shared pixels; one changed
    assert math.isnan(depth_change(d0, np.full_like(d0, np.nan)))
    s = stability_summary([0.1, 0.3, float("nan"), 0.5], [0.0, 0.4, 0.2, float("nan")])
    assert s == {"steps": 3, "render_change": pytest.approx(0.3), "mask_change": pytest.approx(0.2),
                 "jitter": pytest.approx(0.05),  # over the 2 steps with both: (0.1 + 0) / 2
                 "jitter_median": pytest.approx(0.05)}
    assert stability_summary([], [])["render_change"] is None
    assert stability_summary([0.2], [float("nan")])["jitter"] is None
