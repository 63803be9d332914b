"""The HOG + linear-SVM pedestrian detector (Dalal & Triggs, CVPR 2005) as OpenCV 4's
``HOGDescriptor`` computes it, in numpy: OpenCV 5 dropped ``HOGDescriptor``, and this detector
finds walkers seen from the back or side, whom BlazePose's face-keyed detector misses.

The SVM is OpenCV's default people detector (``HOGDescriptor_getDefaultPeopleDetector()``, 3780
weights + bias, OpenCV 4.10, Apache-2.0; ``assets/hog_people_svm.npy``, see ``assets/NOTICE``).
Its features, as OpenCV computes them for it: 64x128 windows, 16x16 blocks at a stride of 8, 8x8
cells, 9 unsigned orientation bins; square-root gamma per channel, centred [-1, 0, 1] gradients
with reflected borders, the channel of largest gradient; each pixel votes its magnitude into its
two nearest bins and, with bilinear weights and a Gaussian (sigma 4, centred on the block), into
the block's cells; blocks normalised by OpenCV's L2-Hys (``1 / (|v| + 0.1 x 36)``, clip 0.2,
``1 / (|v| + 1e-3)``). Descriptor order: blocks column by column (x outer, y inner), in each block
cells the same way, then bins.

Every block's histogram is a separable filter of the per-pixel votes sampled at the block stride,
so the whole image's blocks come from two small matrix products per axis
(``block_features``); ``block_features_reference`` is its pixel-by-pixel slow twin, and
``tests/people/test_hog_svm.py`` also compares both with OpenCV 4 where it is installed.

Coordinates: pixels of the image given (x right, y down). Pure functions, no state.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List, Tuple

import numpy as np

WIN_W, WIN_H = 64, 128
CELL = 8
BLOCK = 16
NBINS = 9
BLOCKS_X, BLOCKS_Y = (WIN_W - BLOCK) // CELL + 1, (WIN_H - BLOCK) // CELL + 1  # 7, 15
BLOCK_LEN = 4 * NBINS
SIGMA = (BLOCK + BLOCK) / 8.0  # OpenCV's default window sigma
HYS = 0.2
PERSON_IN_WINDOW = (0.12, 0.06, 0.88, 0.94)  # the body inside a positive window (x0, y0, x1, y1 fractions)
ASSET = Path(__file__).with_name("assets") / "hog_people_svm.npy"


@lru_cache(maxsize=1)
def people_svm() -> Tuple[np.ndarray, float]:
    """OpenCV's default people SVM: weights [7 (block x), 15 (block y), 36] float32 and the bias."""
    w = np.load(ASSET).astype(np.float32)
    if w.shape != (BLOCKS_X * BLOCKS_Y * BLOCK_LEN + 1,):
        raise ValueError(f"{ASSET}: expected {BLOCKS_X * BLOCKS_Y * BLOCK_LEN + 1} values, got {w.shape}")
    return w[:-1].reshape(BLOCKS_X, BLOCKS_Y, BLOCK_LEN), float(w[-1])


def _axis_weights() -> np.ndarray:
    """[2 (cell), 16 (pixel in block)]: Gaussian x bilinear cell weight along one axis (OpenCV's
    HOGCache: cell coordinate (u + 0.5) / 8 - 0.5, Gaussian exp(-(u - 8)^2 / (2 sigma^2)))."""
    u = np.arange(BLOCK, dtype=np.float64)
    c = (u + 0.5) / CELL - 0.5
    w = np.zeros((2, BLOCK))
    lo = u < CELL / 2
    hi = u >= BLOCK - CELL / 2
    mid = ~lo & ~hi
    w[0, lo] = c[lo] + 1.0
    w[0, mid] = 1.0 - c[mid]
    w[1, mid] = c[mid]
    w[1, hi] = 1.0 - (c[hi] - 1.0)
    g = np.exp(-((u - BLOCK / 2) ** 2) / (2 * SIGMA ** 2))
    return w * g


def gradient_votes(image: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel orientation votes of an RGB (or grey) uint8 image [H, W(, C)]: (bin0 [H, W] int32,
    weight0 [H, W] float32, bin1, weight1): the gradient magnitude of the strongest channel split
    between its two nearest of 9 unsigned bins (20 degrees each, centred at 10, 30, ...). Angles
    from ``cv2.cartToPolar`` (OpenCV's own, within 0.3 degrees)."""
    import cv2

    img = np.sqrt(np.asarray(image, np.float32))
    # centred differences with reflected borders (OpenCV's BORDER_REFLECT_101), per channel
    dx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    dy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    if dx.ndim == 3 and dx.shape[2] > 1:
        m2 = dx * dx + dy * dy
        best = m2[:, :, 0]
        gx, gy = dx[:, :, 0], dy[:, :, 0]
        for c in range(1, dx.shape[2]):  # the first channel wins ties, as in OpenCV
            more = m2[:, :, c] > best
            best = np.where(more, m2[:, :, c], best)
            gx = np.where(more, dx[:, :, c], gx)
            gy = np.where(more, dy[:, :, c], gy)
    else:
        gx, gy = dx.reshape(dx.shape[:2]), dy.reshape(dy.shape[:2])
    mag, ang = cv2.cartToPolar(np.ascontiguousarray(gx), np.ascontiguousarray(gy))
    ang = ang * np.float32(NBINS / np.pi) - np.float32(0.5)
    h0 = np.floor(ang)
    frac = ang - h0
    h0 = h0.astype(np.int32) % NBINS
    return h0, mag * (1.0 - frac), (h0 + 1) % NBINS, mag * frac


def _normalise(blocks: np.ndarray) -> np.ndarray:
    """OpenCV's L2-Hys over the last axis (36 values a block)."""
    n = blocks.shape[-1]
    v = blocks / (np.sqrt((blocks * blocks).sum(-1, keepdims=True)) + 0.1 * n)
    v = np.minimum(v, HYS)
    return v / (np.sqrt((v * v).sum(-1, keepdims=True)) + 1e-3)


def block_features(image: np.ndarray) -> np.ndarray:
    """Normalised HOG blocks of a whole image: [Hb, Wb, 36] float32, block (r, c) covering pixels
    [8r, 8r + 16) x [8c, 8c + 16); Hb = H // 8 - 1, Wb = W // 8 - 1 (the last H % 8 rows and W % 8
    columns start no block)."""
    h0, w0, h1, w1 = gradient_votes(image)
    H, W = h0.shape
    hc, wc = H // CELL, W // CELL
    if hc < 2 or wc < 2:
        return np.zeros((max(hc - 1, 0), max(wc - 1, 0), BLOCK_LEN), np.float32)
    h0, w0, h1, w1 = (a[: hc * CELL, : wc * CELL] for a in (h0, w0, h1, w1))
    k = _axis_weights().astype(np.float32)  # [2 cells, 16]
    # the votes as a dense [H, W, 9] array (two bins per pixel), then along x: pixel 8c + r of a
    # row feeds block c with the first half of the kernel and block c - 1 with the second; one
    # batched product with the four half-kernels [4, 8] over each run of 8 pixels
    H8 = hc * CELL
    n = H8 * wc * CELL
    votes = np.zeros(n * NBINS, np.float32)
    base = np.arange(n, dtype=np.int64) * NBINS
    votes[base + h0.ravel()] = w0.ravel()
    votes[base + h1.ravel()] = w1.ravel()  # h1 != h0: two different bins
    halves4 = np.concatenate([k[:, :CELL], k[:, CELL:]])  # [first c0, first c1, second c0, second c1]
    p = np.matmul(halves4, votes.reshape(H8 * wc, CELL, NBINS))  # [H * wc, 4, 9]
    p = p.reshape(H8, wc, 2, 2, NBINS).transpose(0, 1, 2, 4, 3)  # [H, wc, half, 9, cx]
    first, second = p[:, :, 0], p[:, :, 1]
    a = first[:, :-1] + second[:, 1:]  # [H, wb, 9, cx]
    wb = wc - 1
    # along y, the same on runs of 8 rows (contiguous: [hc, 8, wb * 9 * 2])
    q = np.matmul(halves4, np.ascontiguousarray(a).reshape(hc, CELL, wb * NBINS * 2))  # [hc, 4, ...]
    q = q.reshape(hc, 2, 2, wb, NBINS, 2)  # [hc, half, cy, wb, 9, cx]
    b = q[:-1, 0] + q[1:, 1]  # [hb, cy, wb, 9, cx]
    b = b.transpose(0, 2, 4, 1, 3).reshape(hc - 1, wb, BLOCK_LEN)  # (cx, cy, bin)
    return _normalise(b).astype(np.float32)


def block_features_reference(image: np.ndarray, rows: List[int], cols: List[int]) -> np.ndarray:
    """Slow twin of ``block_features`` for tests: the blocks at the given block rows x columns,
    each accumulated pixel by pixel as OpenCV's HOGCache does. [len(rows), len(cols), 36]."""
    h0, w0, h1, w1 = gradient_votes(image)
    k = _axis_weights()
    out = np.zeros((len(rows), len(cols), BLOCK_LEN))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            hist = np.zeros((2, 2, NBINS))
            for v in range(BLOCK):
                for u in range(BLOCK):
                    y, x = r * CELL + v, c * CELL + u
                    for cx in range(2):
                        for cy in range(2):
                            wt = k[cx, u] * k[cy, v]
                            hist[cx, cy, h0[y, x]] += wt * w0[y, x]
                            hist[cx, cy, h1[y, x]] += wt * w1[y, x]
            out[i, j] = _normalise(hist.reshape(-1))
    return out


def window_scores(blocks: np.ndarray) -> np.ndarray:
    """SVM score of every 64x128 window of a block map [Hb, Wb, 36]: [Hb - 14, Wb - 6], window
    (r, c) with its top-left pixel at (8c, 8r)."""
    wts, bias = people_svm()
    hb, wb = blocks.shape[:2]
    ny, nx = hb - BLOCKS_Y + 1, wb - BLOCKS_X + 1
    if ny <= 0 or nx <= 0:
        return np.zeros((max(ny, 0), max(nx, 0)), np.float32)
    # one product per block column: [Hb, Wb, 36] x [36, 15 block rows] gives each block's part of
    # every window's score, summed along the diagonal of block rows
    out = np.full((ny, nx), bias, np.float32)
    for i in range(BLOCKS_X):
        part = blocks[:, i:i + nx] @ wts[i].T  # [Hb, nx, 15]
        for j in range(BLOCKS_Y):
            out += part[j:j + ny, :, j]
    return out


def detect_rows(image: np.ndarray, scale: float, y0: int, y1: int, threshold: float = 0.0,
                pad: int = 16) -> List[tuple]:
    """Windows scoring above ``threshold`` in the frame rows [y0, y1) resized by ``scale``:
    [(x0, y0, x1, y1, score)] boxes of the body inside each window (``PERSON_IN_WINDOW``), frame
    pixels. Sides on the frame's edge are edge-padded by ``pad`` scaled pixels, so people cut by
    the frame edge are still seen; sides inside the frame are not (the overlapping strip next to
    this one sees across them)."""
    import cv2

    h, w = image.shape[:2]
    rows = image[max(0, y0):min(h, y1)]
    sw, sh = int(round(w * scale)), int(round(rows.shape[0] * scale))
    if sw < 1 or sh < 1:
        return []
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(rows, (sw, sh), interpolation=interp) if (sw, sh) != (w, rows.shape[0]) else rows
    top, bottom = (pad if y0 <= 0 else 0), (pad if y1 >= h else 0)
    img = cv2.copyMakeBorder(img, top, bottom, pad, pad, cv2.BORDER_REPLICATE)
    scores = window_scores(block_features(img))
    rr, cc = np.nonzero(scores > threshold)
    fx0, fy0, fx1, fy1 = PERSON_IN_WINDOW
    kx, ky = w / float(sw), rows.shape[0] / float(sh)  # scaled -> frame pixels (exact per axis)
    out = []
    for r, c, sc in zip(rr, cc, scores[rr, cc]):
        x, y = c * CELL - pad, r * CELL - top
        out.append(((x + fx0 * WIN_W) * kx, max(0, y0) + (y + fy0 * WIN_H) * ky,
                    (x + fx1 * WIN_W) * kx, max(0, y0) + (y + fy1 * WIN_H) * ky, float(sc)))
    return out


def detect_people(image: np.ndarray, min_height: float, max_height: float, threshold: float = 0.0,
                  scale_step: float = 1.3) -> List[Tuple[tuple, float]]:
    """Upright people [(box (x0, y0, x1, y1) frame pixels, SVM score)] whose body is
    ``min_height``..``max_height`` pixels tall, over a whole frame: one ``detect_rows`` per
    pyramid level, ``scale_step`` apart; overlapping hits merged by ``nms_boxes``; best first."""
    body = (PERSON_IN_WINDOW[3] - PERSON_IN_WINDOW[1]) * WIN_H
    h, w = image.shape[:2]
    hits: List[tuple] = []
    height = float(min_height)
    while True:
        scale = body / height
        if w * scale < WIN_W or h * scale < WIN_H:
            break
        hits += detect_rows(image, scale, 0, h, threshold)
        if height >= max_height:
            break
        height *= scale_step
    return nms_boxes(hits)


def nms_boxes(hits: List[tuple], iou: float = 0.4) -> List[Tuple[tuple, float]]:
    """Greedy NMS of [(x0, y0, x1, y1, score)]: best first, a box overlapping a kept one by more
    than ``iou`` (or inside it by more than 70% of its own area) is dropped."""
    if not hits:
        return []
    a = np.asarray(hits, np.float64)
    order = np.argsort(-a[:, 4])
    a = a[order]
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    alive = np.ones(len(a), bool)
    out = []
    for i in range(len(a)):
        if not alive[i]:
            continue
        out.append((tuple(float(v) for v in a[i, :4]), float(a[i, 4])))
        ix = np.clip(np.minimum(a[i, 2], a[:, 2]) - np.maximum(a[i, 0], a[:, 0]), 0, None)
        iy = np.clip(np.minimum(a[i, 3], a[:, 3]) - np.maximum(a[i, 1], a[:, 1]), 0, None)
        inter = ix * iy
        over = (inter / (area[i] + area - inter) > iou) | (inter / np.maximum(area, 1e-9) > 0.7)
        alive &= ~over
    return out


