"""Picture similarity: grayscale conversion, PSNR and SSIM (Wang et al. 2004 with a 7 x 7 uniform
window, the defaults of ``skimage.metrics.structural_similarity``, which the tests compare to)."""
from __future__ import annotations

import numpy as np


def to_gray(image) -> np.ndarray:
    """[H, W, 3] RGB (any dtype) -> [H, W] float64 luma, ITU-R BT.601 weights (as OpenCV's
    RGB2GRAY): 0.299 R + 0.587 G + 0.114 B. A [H, W] input is returned as float64."""
    a = np.asarray(image)
    if a.ndim == 2:
        return a.astype(np.float64)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image: expected [H, W, 3] RGB or [H, W], got {list(a.shape)}")
    return a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _pair(a, b) -> tuple:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"a, b: expected two [H, W] pictures of one shape, got {list(x.shape)} and {list(y.shape)}")
    return x, y


def psnr(a, b, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE); +inf for equal pictures."""
    x, y = _pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def _window_means(x: np.ndarray, k: int) -> np.ndarray:
    """Means over every k x k window lying fully inside ``x`` ([H-k+1, W-k+1]), by integral image."""
    s = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    s[1:, 1:] = x.cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(a, b, data_range: float = 255.0, win_size: int = 7) -> float:
    """Mean structural similarity of two [H, W] pictures over all ``win_size`` windows inside
    them (sample covariances, K1 = 0.01, K2 = 0.03): skimage's default ``structural_similarity``,
    whose mean also skips the border where the window would leave the picture."""
    x, y = _pair(a, b)
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size: expected an odd number >= 3, got {win_size}")
    if min(x.shape) < win_size:
        raise ValueError(f"a, b: pictures must be at least {win_size} pixels on each side, got {list(x.shape)}")
    n = win_size * win_size
    cov = n / (n - 1.0)
    ux, uy = _window_means(x, win_size), _window_means(y, win_size)
    vx = cov * (_window_means(x * x, win_size) - ux * ux)
    vy = cov * (_window_means(y * y, win_size) - uy * uy)
    vxy = cov * (_window_means(x * y, win_size) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())
