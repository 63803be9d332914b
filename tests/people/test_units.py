"""Pure parts of streamrecon.people: anchors/decoding/NMS/ROI geometry, crop rule, background,
tracking, One-Euro smoothing (vector vs scalar twin) and crop jitter on a still noisy clip."""
import math

import numpy as np
import pytest

from streamrecon.people.affine import invert_affine
from streamrecon.people.blazepose import (Roi, decode_detections, letterbox_params, roi_from_alignment,
                                          roi_matrix, ssd_anchors, weighted_nms)
from streamrecon.people.config import PeopleConfig
from streamrecon.people.crop_rule import BLAZEPOSE_FEET, crop_rect_from_keypoints, rect_from_box
from streamrecon.people.segmentation import apply_background, mask_box, mask_iou
from streamrecon.people.smoothing import OneEuroFilter, OneEuroScalar, rect_to_state, state_to_rect
from streamrecon.people.tracking import IouTracker


def test_anchors_layout():
    a = ssd_anchors()
    assert a.shape == (2254, 2)
    # first layer: 28x28 cells, 2 anchors each, row-major from the top-left cell
    assert np.allclose(a[0], [0.5 / 28, 0.5 / 28]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 28, 0.5 / 28])
    # last block: 7x7 cells with 6 anchors each
    assert np.allclose(a[-6:], [6.5 / 7, 6.5 / 7])


def test_decode_and_weighted_nms():
    anchors = ssd_anchors()
    raw = np.zeros((len(anchors), 12), np.float32)
    scores = np.full(len(anchors), -10.0, np.float32)
    # two overlapping detections around anchor 100 and one far away at anchor 2000
    for i, dx in ((100, 0.0), (101, 4.0), (2000, 0.0)):
        raw[i, :4] = [dx, 0.0, 40.0, 40.0]
        raw[i, 4:12] = [0.0, 30.0, 0.0, -30.0, 0.0, 10.0, 0.0, -10.0]
        scores[i] = {100: 3.0, 101: 1.0, 2000: 2.0}[i]
    boxes, kps, s = decode_detections(raw, scores, anchors, 0.5)
    assert len(s) == 3
    assert np.allclose(kps[0, 0] * 224, anchors[100] * 224 + [0, 30], atol=1e-3)
    out = weighted_nms(boxes, kps, s, 0.3)
    assert len(out) == 2
    w0, w1 = 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-1))
    merged_cx = ((boxes[0, 0] + boxes[0, 2]) / 2 * w0 + (boxes[1, 0] + boxes[1, 2]) / 2 * w1) / (w0 + w1)
    got = out[0][0]  # best group first, keeps the best score
    assert out[0][2] == pytest.approx(w0) and out[1][2] == pytest.approx(1 / (1 + math.exp(-2)))
    assert abs((got[0] + got[2]) / 2 - merged_cx) < 1e-6
    assert np.allclose(out[1][0], boxes[2])


def test_letterbox_and_roi_geometry():
    s, px, py = letterbox_params(480, 640)
    assert s == pytest.approx(224 / 640) and px == 0 and py == pytest.approx((224 - 480 * s) / 2)
    # upright person: scale point straight above the hip centre -> no rotation
    roi = roi_from_alignment((100.0, 200.0), (100.0, 120.0))
    assert roi.rotation == pytest.approx(0.0, abs=1e-9) and roi.side == pytest.approx(2 * 80 * 1.25)
    # body lying to the right (scale point to the right): ROI rotated by +90 degrees
    assert roi_from_alignment((0, 0), (10, 0)).rotation == pytest.approx(math.pi / 2)
    m = roi_matrix(Roi(50.0, 60.0, 128.0, 0.3))
    centre = m @ np.array([128.0, 128.0, 1.0])
    assert np.allclose(centre, [50, 60])
    inv = invert_affine(m)
    p = np.array([13.0, 200.0, 1.0])
    assert np.allclose(inv @ np.append(m @ p, 1.0), p[:2])
    # side length preserved: tensor corners 256 apart map to frame points 128 apart
    assert np.linalg.norm(m @ [256, 0, 1] - m @ [0, 0, 1]) == pytest.approx(128)


def _body(feet=True, hips=True):
    k = np.zeros((33, 3))
    k[:, :2] = [200, 200]
    k[0] = [200, 100, 0.9]  # nose
    k[11], k[12] = [180, 140, 0.9], [220, 140, 0.9]
    k[23], k[24] = [185, 250, 0.9 if hips else 0.0], [215, 250, 0.9 if hips else 0.0]
    for i in BLAZEPOSE_FEET:
        k[i] = [200 + (i % 2) * 20, 380, 0.9 if feet else 0.0]
    return k


def test_crop_rule_branches():
    rect, rule = crop_rect_from_keypoints(_body())
    assert rule == "feet"
    # bbox of confident points: x 180..220, y 100..380 -> centre (200, 240), r = 0.65 * 280
    assert rect == pytest.approx((200 - 182, 240 - 182, 364, 364))
    rect, rule = crop_rect_from_keypoints(_body(feet=False))
    assert rule == "mid-hip"
    r = 1.45 * 150  # farthest confident point from mid-hip (200, 250) is the nose
    assert rect == pytest.approx((200 - r, 250 + 0.05 * r - r, 2 * r, 2 * r))
    # a foot seen only faintly (0.2 < conf <= 0.5) is not enough for the whole-body rule
    faint = _body()
    faint[list(BLAZEPOSE_FEET), 2] = 0.3
    assert crop_rect_from_keypoints(faint)[1] == "mid-hip"
    rect, rule = crop_rect_from_keypoints(_body(feet=False, hips=False))
    assert rule == "upper-body"
    # centre mid-shoulder (200, 140); r = 0.8 x max(20 / 0.3, 40 / 0.4) = 80
    assert rect == pytest.approx((120, 60, 160, 160))
    # hips just below the bottom edge still anchor the mid-hip rule; feet there do not count
    k = _body()
    rect, rule = crop_rect_from_keypoints(k, image_size=(400, 248))
    assert rule == "mid-hip"
    bare = _body(feet=False, hips=False)
    bare[[11, 12], 2] = 0.0
    rect, rule = crop_rect_from_keypoints(bare, visible_box=(150, 90, 260, 300))
    assert rule == "visible"
    assert rect == pytest.approx(rect_from_box((150, 90, 260, 300)))
    assert rect[2] == rect[3] and rect[2] > 210  # square, whole visible part inside
    with pytest.raises(ValueError, match="keypoints"):
        crop_rect_from_keypoints(np.zeros((33, 2)))


def test_apply_background_and_masks():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    mask = np.zeros((6, 7), bool)
    mask[1:4, 2:5] = True
    out = apply_background(img, mask, "remove", (10, 20, 30))
    assert np.array_equal(out[mask], img[mask]) and (out[~mask] == [10, 20, 30]).all()
    assert apply_background(img, mask, "keep") is img
    assert apply_background(img, None, "remove") is img
    with pytest.raises(ValueError, match="mask"):
        apply_background(img, mask[:, :3], "remove")
    with pytest.raises(ValueError, match="background"):
        apply_background(img, mask, "blur")
    assert mask_box(mask) == (2, 1, 5, 4)
    other = np.zeros_like(mask)
    other[1:4, 3:6] = True
    assert mask_iou(mask, other) == pytest.approx(6 / 12)
    ignore = np.zeros_like(mask)
    ignore[:, 5] = True
    assert mask_iou(mask, other, ignore) == pytest.approx(6 / 9)


def test_tracker_keeps_ids_and_forgets():
    t = IouTracker(min_iou=0.3, max_missed=2)
    a, b = (0, 0, 10, 20), (50, 0, 60, 20)
    assert t.update([b, a]) == [1, 0]  # new ids left to right
    assert t.update([(1, 0, 11, 20), (51, 1, 61, 21)]) == [0, 1]
    assert t.update([(51, 1, 61, 21)]) == [1]  # person 0 missed once
    assert t.update([(2, 0, 12, 20), (52, 1, 62, 21)]) == [0, 1]  # comes back with its id
    for _ in range(3):
        t.update([])
    assert t.update([(2, 0, 12, 20)]) == [2]  # forgotten after max_missed: new id, never reused


def test_one_euro_vector_matches_scalar_twin():
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 200))
    xs = np.stack([np.sin(ts), 3 * np.cos(2 * ts), ts], 1) + rng.normal(0, 0.1, (200, 3))
    f = OneEuroFilter(0.5, 0.2, 1.0)
    twins = [OneEuroScalar(0.5, 0.2, 1.0) for _ in range(3)]
    for t, x in zip(ts, xs):
        v = f(x, t)
        s = [tw(float(xi), float(t)) for tw, xi in zip(twins, x)]
        assert np.allclose(v, s, atol=1e-9)


def jitter(rects) -> float:
    """Median over frames of the largest frame-to-frame change of (x, y, side), in pixels."""
    r = np.asarray(rects, dtype=np.float64)[:, :3]
    return float(np.median(np.abs(np.diff(r, axis=0)).max(1)))


def test_smoothing_cuts_jitter_of_still_noisy_rects():
    cfg = PeopleConfig()
    rng = np.random.default_rng(2)
    true = (100.0, 50.0, 300.0, 300.0)
    raw = [tuple(np.add(true, [*rng.normal(0, 2.0, 2), *([rng.normal(0, 3.0)] * 2)])) for _ in range(90)]
    f = OneEuroFilter(cfg.smooth_min_cutoff, cfg.smooth_beta, cfg.smooth_d_cutoff)
    smooth = [state_to_rect(f(rect_to_state(r), i / 30)) for i, r in enumerate(raw)]
    j_raw, j_smooth = jitter(raw), jitter(smooth)
    print(f"synthetic rect noise: jitter raw {j_raw:.2f} px, smoothed {j_smooth:.2f} px")
    assert j_raw > 2.0 and j_smooth <= 1.0
    # still centred on the truth (no drift)
    assert np.abs(np.mean(smooth[30:], 0) - true).max() < 2.0


def test_separate_masks_gives_contested_pixels_to_nearest_skeleton():
    from streamrecon.people.segmentation import separate_masks

    h, w = 60, 80
    both = np.zeros((h, w), bool)
    both[10:50, 10:70] = True  # one blob claimed by two people's segmentations

    def stick(x):
        k = np.zeros((33, 3))
        k[:, 2] = 0.0
        k[11], k[12], k[23], k[24] = [x - 3, 15, 1], [x + 3, 15, 1], [x - 3, 45, 1], [x + 3, 45, 1]
        return k

    a, b = separate_masks([both, both.copy()], [stick(25), stick(55)])
    assert not (a & b).any() and ((a | b) == both).all()
    assert a[30, 20] and b[30, 60] and not a[30, 60]
    # a pixel claimed by one person only stays theirs
    only_a = both.copy()
    only_a[:, 40:] = False
    a2, b2 = separate_masks([both, only_a], [stick(55), stick(25)])
    assert b2[30, 20] and a2[30, 60] and a2[30, 45] and not b2[30, 45]


def _decode_slow(raw_boxes, raw_scores, anchors, min_score, size=224):
    """Per-anchor decoding written out plainly (slow twin of decode_detections)."""
    boxes, kps, scores = [], [], []
    for i in range(len(anchors)):
        s = 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, float(raw_scores[i])))))
        if s < min_score:
            continue
        ax, ay = anchors[i]
        cx = raw_boxes[i, 0] / size + ax
        cy = raw_boxes[i, 1] / size + ay
        w, h = raw_boxes[i, 2] / size, raw_boxes[i, 3] / size
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        kps.append([[raw_boxes[i, 4 + 2 * k] / size + ax, raw_boxes[i, 5 + 2 * k] / size + ay] for k in range(4)])
        scores.append(s)
    return np.array(boxes).reshape(-1, 4), np.array(kps).reshape(-1, 4, 2), np.array(scores)


def test_decode_matches_slow_twin():
    rng = np.random.default_rng(5)
    anchors = ssd_anchors()
    raw = rng.normal(0, 30, (len(anchors), 12)).astype(np.float32)
    scores = rng.normal(-2, 3, len(anchors)).astype(np.float32)
    fast = decode_detections(raw, scores, anchors, 0.4)
    slow = _decode_slow(raw, scores, anchors, 0.4)
    assert len(fast[2]) == len(slow[2]) > 100
    for a, b in zip(fast, slow):
        assert np.allclose(a, b, atol=1e-5)


def _refine_slow(xy, hm, kernel=7, min_conf=0.5):
    """Landmark-by-landmark heatmap refinement, as mediapipe's calculator loops (slow twin)."""
    h, w, n = hm.shape
    out = np.array(xy, np.float64)
    off = (kernel - 1) // 2
    for i in range(n):
        c0, r0 = int(xy[i, 0] / 256 * w), int(xy[i, 1] / 256 * h)
        if xy[i, 0] < 0 or xy[i, 1] < 0 or not (0 <= c0 < w and 0 <= r0 < h):
            continue
        s = wc = wr = mx = 0.0
        for r in range(max(0, r0 - off), min(h, r0 + off + 1)):
            for c in range(max(0, c0 - off), min(w, c0 + off + 1)):
                conf = 1 / (1 + math.exp(-hm[r, c, i]))
                s, wc, wr, mx = s + conf, wc + c * conf, wr + r * conf, max(mx, conf)
        if mx >= min_conf and s > 0:
            out[i] = [wc / s * 256 / w, wr / s * 256 / h]
    return out


def test_heatmap_refinement_matches_slow_twin():
    from streamrecon.people.blazepose import refine_from_heatmap

    rng = np.random.default_rng(7)
    n = 39
    hm = rng.normal(-3, 2, (64, 64, n)).astype(np.float32)
    xy = rng.uniform(-20, 276, (n, 2))  # some landmarks off the map: left unchanged
    # a confident blob for landmark 0 at cell (40, 20): refined position lands there
    hm[18:23, 38:43, 0] = 8.0
    xy[0] = [41 * 4 + 1, 21 * 4 + 2]
    fast = refine_from_heatmap(xy, hm)
    assert np.allclose(fast, _refine_slow(xy, hm), atol=1e-6)
    assert np.allclose(fast[0], [40 * 4, 20 * 4], atol=2.0)
    off = (xy[:, 0] < 0) | (xy[:, 0] >= 256) | (xy[:, 1] < 0) | (xy[:, 1] >= 256)
    assert off.any() and np.allclose(fast[off], xy[off])


def test_smoothing_follows_a_moving_person():
    """One-Euro's other half: a crop moving at 150 px/s (walking across a 640 px frame in ~4 s)
    is followed with a bounded lag, far less than a plain low-pass at the still-subject cutoff."""
    cfg = PeopleConfig()
    f = OneEuroFilter(cfg.smooth_min_cutoff, cfg.smooth_beta, cfg.smooth_d_cutoff)
    slow = OneEuroFilter(cfg.smooth_min_cutoff, 0.0, cfg.smooth_d_cutoff)  # no speed adaptation
    v, fps = 150.0, 30.0
    lag = lag_slow = 0.0
    for i in range(90):
        t = i / fps
        truth = np.array([100 + v * t, 200.0, 150.0])
        lag = truth[0] - f(truth, t)[0]
        lag_slow = truth[0] - slow(truth, t)[0]
    print(f"lag at 150 px/s: {lag:.1f} px (one-euro), {lag_slow:.1f} px (without speed term)")
    assert 0 < lag < 0.5 * lag_slow and lag < 40


def test_match_rois_takes_the_closest_pairs_first():
    from streamrecon.people.blazepose import match_rois

    tracked = [Roi(130.0, 430.0, 1000.0, 0.0)]
    # the newcomer (first: the better detector score) lies near enough to the tracked person to
    # match them, but the second detection is closer: it is theirs, the newcomer stays new
    dets = [Roi(360.0, 470.0, 1100.0, 0.0), Roi(100.0, 490.0, 1200.0, 0.0)]
    assert match_rois(dets, tracked) == {1: 0}
    assert match_rois(dets[:1], tracked) == {0: 0}
    assert match_rois([Roi(130.0, 430.0, 400.0, 0.0)], tracked) == {}  # side 2.5x off: someone else
    assert match_rois([Roi(900.0, 430.0, 1000.0, 0.0)], tracked) == {}  # too far
    two = [Roi(100.0, 100.0, 200.0, 0.0), Roi(400.0, 100.0, 200.0, 0.0)]
    assert match_rois(two[::-1], two) == {0: 1, 1: 0}
    assert match_rois([], two) == {} and match_rois(two, []) == {}


def test_detect_every_is_validated():
    assert PeopleConfig().detect_every == 5
    with pytest.raises(ValueError, match="detect_every"):
        PeopleConfig(detect_every=0)
