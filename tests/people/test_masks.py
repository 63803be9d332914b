"""Person-mask fusion (``segmentation.fuse_person_masks``) against its pixel-by-pixel slow twin,
the selfie-segmentation crop geometry, and the ``segmentation`` config switch."""
import logging

import numpy as np
import pytest

from streamrecon.errors import BackendUnavailableError
from streamrecon.people.config import PeopleConfig
from streamrecon.people.segmentation import fuse_person_masks, fuse_person_masks_reference
from streamrecon.people.selfie import MIN_LOGIT, SIZE, group_matrix, logit_threshold, prob_to_logit, roi_polygon
from paths import MEDIA  # noqa: E402

cv2 = pytest.importorskip("cv2")
MEDIA = MEDIA


def _stick(cx, top, h=60):
    """[33, 3] BlazePose-layout keypoints of an upright stick person centred at x = cx."""
    k = np.zeros((33, 3), np.float32)
    y = lambda f: top + f * h  # noqa: E731
    pts = {0: (cx, y(0.08)), 2: (cx - 2, y(0.06)), 5: (cx + 2, y(0.06)), 7: (cx - 4, y(0.08)), 8: (cx + 4, y(0.08)),
           11: (cx - 8, y(0.2)), 12: (cx + 8, y(0.2)), 13: (cx - 12, y(0.35)), 14: (cx + 12, y(0.35)),
           15: (cx - 13, y(0.5)), 16: (cx + 13, y(0.5)), 23: (cx - 5, y(0.55)), 24: (cx + 5, y(0.55)),
           25: (cx - 6, y(0.75)), 26: (cx + 6, y(0.75)), 27: (cx - 6, y(0.95)), 28: (cx + 6, y(0.95))}
    for i, (px, py) in pts.items():
        k[i] = (px, py, 0.9)
    return k


def _scene(seed=0):
    """Two overlapping stick people on a 70 x 90 frame: blurred blob logits per person (each
    leaking onto the other), a group logit covering both, and overlapping square regions."""
    rng = np.random.default_rng(seed)
    h, w = 70, 90
    kps = [_stick(35, 4), _stick(52, 6)]
    own, regions = [], []
    for k in kps:
        body = np.zeros((h, w), np.uint8)
        for a, b in ((0, 11), (0, 12), (11, 23), (12, 24), (11, 15), (12, 16), (23, 27), (24, 28), (23, 24)):
            cv2.line(body, tuple(int(v) for v in k[a, :2]), tuple(int(v) for v in k[b, :2]), 1, 5)
        logit = cv2.GaussianBlur(body.astype(np.float32) * 12 - 6, (0, 0), 2) + rng.normal(0, 0.5, (h, w)).astype(np.float32)
        own.append(logit)
        r = np.zeros((h, w), bool)
        x0 = int(k[:, 0][k[:, 2] > 0].min()) - 14
        r[:, max(0, x0):x0 + 50] = True
        regions.append(r)
    group = np.maximum(own[0], own[1]) - 1.0 + rng.normal(0, 0.5, (h, w)).astype(np.float32)
    return own, group, kps, regions


@pytest.mark.parametrize("seed", [0, 1])
def test_fuse_person_masks_matches_slow_twin(seed):
    own, group, kps, regions = _scene(seed)
    fast = fuse_person_masks(own, group, kps, regions, 0.0)
    slow = fuse_person_masks_reference(own, group, kps, regions, 0.0)
    union = np.max(np.stack(own + [group]), 0) > 0
    for f, s, r in zip(fast, slow, regions):
        assert not (f & ~r).any(), "a person's mask left their region"
        assert not (f & ~union).any()
    # identical union (inside the regions) and no pixel given to two people
    assert np.array_equal(np.any(fast, 0), np.any(slow, 0))
    assert not (fast[0] & fast[1]).any()
    # ownership of contested pixels: the fast path measures skeleton distances on a coarse grid,
    # so pixels about equidistant from both skeletons may go either way
    contested = union & regions[0] & regions[1]
    assert contested.sum() > 100
    agree = (fast[0] == slow[0])[contested].mean()
    assert agree >= 0.95, f"ownership agrees on {agree:.3f} of contested pixels"
    # pixels only one person's region covers are theirs
    only0 = union & regions[0] & ~regions[1]
    assert fast[0][only0].all() and not fast[1][only0].any()


def test_fuse_person_masks_edge_cases():
    own, group, kps, regions = _scene()
    assert fuse_person_masks([], None, [], []) == []
    one = fuse_person_masks(own[:1], None, kps[:1], regions[:1], 0.0)
    assert np.array_equal(one[0], (own[0] > 0) & regions[0])
    # a higher threshold never grows a mask
    lo = fuse_person_masks(own, group, kps, regions, 0.0)
    hi = fuse_person_masks(own, group, kps, regions, 2.0)
    assert np.any(hi, 0).sum() < np.any(lo, 0).sum() and not (np.any(hi, 0) & ~np.any(lo, 0)).any()


def test_group_matrix_geometry():
    assert group_matrix([]) is None
    m = group_matrix([(10, 20, 30, 60), (50, 30, 70, 40)], pad=0.25)
    corners = roi_polygon(m)
    x0, y0 = corners.min(0)
    x1, y1 = corners.max(0)
    assert x1 - x0 == pytest.approx(y1 - y0)  # square, people keep their aspect ratio
    assert x1 - x0 == pytest.approx(60 * 1.5)  # larger side (width 60) grown by 25 % each side
    assert (x0 + x1) / 2 == pytest.approx(40) and (y0 + y1) / 2 == pytest.approx(40)
    assert x0 <= 10 and y0 <= 20 and x1 >= 70 and y1 >= 60
    assert m[0, 0] * SIZE == pytest.approx(x1 - x0)


def test_logit_helpers():
    p = np.array([1e-9, 0.1, 0.5, 0.9, 1.0], np.float32)
    lg = prob_to_logit(p)
    assert np.isfinite(lg).all() and lg[2] == 0
    assert np.allclose(1 / (1 + np.exp(-lg[1:4])), p[1:4], atol=1e-6)
    assert logit_threshold(0.5) == 0 and logit_threshold(0.73) == pytest.approx(np.log(0.73 / 0.27))


def test_config_segmentation_switch():
    assert PeopleConfig().segmentation == "fused"
    PeopleConfig(segmentation="pose")
    with pytest.raises(ValueError, match="segmentation"):
        PeopleConfig(segmentation="grabcut")
    import argparse

    from streamrecon.cli.detect import add_arguments, from_args

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    assert from_args(ap.parse_args(["--segmentation", "pose"])).segmentation == "pose"
    with pytest.raises(SystemExit):
        ap.parse_args(["--segmentation", "nope"])


def _segmenter():
    from streamrecon.people.selfie import SelfieSegmenter

    try:
        return SelfieSegmenter(num_threads=1)
    except BackendUnavailableError as exc:
        pytest.skip(f"selfie-segmentation model unavailable: {exc}")


def test_selfie_logits_warp_matches_direct_crop():
    """Fast path (warp the crop out, run, warp the logits back) against the direct route (slice
    the same 256x256 window, run, convert): identical inside the window, MIN_LOGIT outside."""
    path = MEDIA / "grace_hopper.jpg"
    if not path.exists():
        pytest.skip(f"{path} not present")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    seg = _segmenter()
    ox, oy = 120, 60
    m = np.array([[1.0, 0, ox], [0, 1.0, oy]])
    lg = seg.logits(img, m)
    assert lg.shape == img.shape[:2] and lg.dtype == np.float32
    direct = prob_to_logit(seg.crop_prob(np.ascontiguousarray(img[oy:oy + SIZE, ox:ox + SIZE])))
    assert np.allclose(lg[oy:oy + SIZE, ox:ox + SIZE], direct, atol=1e-4)
    outside = np.ones(lg.shape, bool)
    outside[oy:oy + SIZE + 1, ox:ox + SIZE + 1] = False
    assert (lg[outside] == MIN_LOGIT).all()


def test_selfie_finds_the_person_in_a_portrait():
    path = MEDIA / "grace_hopper.jpg"
    if not path.exists():
        pytest.skip(f"{path} not present")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    lg = _segmenter().logits(img, group_matrix([(0, 0, w, h)], pad=0.0))
    frac = (lg > 0).mean()
    assert 0.3 < frac < 0.9, f"person covers {frac:.2f} of the portrait"
    # the face (upper middle) is person, the top corners are background
    assert (lg[h // 3 - 20:h // 3 + 20, w // 2 - 20:w // 2 + 20] > 0).mean() > 0.95
    assert (lg[:30, :30] > 0).mean() < 0.1 and (lg[:30, -30:] > 0).mean() < 0.1


def test_fused_falls_back_to_pose_masks_without_the_model(monkeypatch, caplog):
    from streamrecon.people import selfie
    from streamrecon.people.blazepose import BlazePose

    def missing():
        raise BackendUnavailableError("selfie segmentation: test says it is missing")

    monkeypatch.setattr(selfie, "model_path", missing)
    try:
        with caplog.at_level(logging.WARNING):
            det = BlazePose(num_threads=1, segmentation="fused")
    except BackendUnavailableError as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")
    assert det._selfie is None and "selfie-segmentation model unavailable" in caplog.text
    with pytest.raises(ValueError, match="segmentation"):
        BlazePose(num_threads=1, segmentation="nope")
