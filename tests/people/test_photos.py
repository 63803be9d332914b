"""People on real photographs and video from installed packages (none made by the project):
one person found in each photo, mask IoU against hand-made labelme masks, two people with stable
ids, crop jitter on a still noisy clip, and the head-and-shoulders video.

Needs the BlazePose models (``pip install --no-deps mediapipe==0.10.21`` + ``ai-edge-litert``);
the labelme tests need Debian's ``labelme-examples`` package."""
import numpy as np
import pytest

from streamrecon.types import Frame
from streamrecon.people import mask_iou
from paths import MEDIA  # noqa: E402

from people_data import LABELME, finder as _finder, labelme_instances as _labelme_instances, rgb as _rgb  # noqa: E402

cv2 = pytest.importorskip("cv2")
MEDIA = MEDIA


def _still(img, i=0):
    return Frame(i, img, float(i) / 30.0)


@pytest.mark.parametrize("name", ["astronaut.png", "grace_hopper.jpg", "camera.png"])
def test_one_person_in_each_photo(name):
    img = _rgb(MEDIA / name)
    people = _finder().find(_still(img))
    assert len(people) == 1, f"{name}: expected one person, got {len(people)}"
    p = people[0]
    x, y, w, h = p.rect
    assert w == h and w > 0.5 * min(img.shape[:2])
    frac = p.mask.mean()
    assert 0.15 < frac < 0.8, f"{name}: person mask covers {frac:.2f} of the image"
    nose = p.keypoints[0]
    assert nose[2] > 0.5 and p.mask[int(nose[1]), int(nose[0])], "nose must be confident and inside the mask"
    assert x <= nose[0] <= x + w and y <= nose[1] <= y + h
    print(f"{name}: rect {tuple(round(v) for v in p.rect)} rule {p.meta['crop_rule']} score {p.score:.2f} "
          f"mask {frac:.2f}")


def _labelme_scores(finder, stem):
    """(people found, best IoU per hand-made person mask, all-people IoU, the same per person with
    held objects not counted) on one labelme photo."""
    finder.reset()
    img, gts, ign, held = _labelme_instances(stem, with_held=True)
    people = finder.find(_still(img))
    best = [max([mask_iou(p.mask, g, ign) for p in people] or [0.0]) for g in gts]
    best_held = [max([mask_iou(p.mask, g, ign | held) for p in people] or [0.0]) for g in gts]
    union = mask_iou(np.any([p.mask for p in people], 0), np.any(gts, 0), ign) if people else 0.0
    return len(people), best, union, best_held


def test_labelme_masks_iou():
    """Person masks (default ``segmentation='fused'``) against the hand-made labelme masks:
    all-people IoU >= 0.85 on both photos, and >= 0.85 for each man of 2011_000003.

    2011_000003: two crouching men; the right one is cut by the image edge and holds a bottle
    that labelme labels 'bottle' (the person mask includes it, as a silhouette should): his IoU
    is asserted >= 0.85 with the bottle's pixels not counted, and reported (guarded >= 0.8) with
    them. 2011_000006: three women pressed together on a sofa (+ a tiny one far behind, never
    found): BlazePose's skeletons of the three mix up their bodies, so the split between them is
    poor (reported, guarded low); the union is what background removal sees. The BlazePose-only
    masks (``segmentation='pose'``) are measured beside them and must be worse."""
    fused, pose = _finder(max_people=6), _finder(max_people=6, segmentation="pose")
    stats = {}
    for stem in ("2011_000003", "2011_000006"):
        for name, finder in (("pose", pose), ("fused", fused)):
            n, best, union, best_held = stats[stem, name] = _labelme_scores(finder, stem)
            print(f"labelme {stem} [{name}]: {n} found, per-person IoU {[round(b, 3) for b in best]} "
                  f"(held bottle not counted: {[round(b, 3) for b in best_held]}), all-people IoU {union:.3f}")
    n, best, union, best_held = stats["2011_000003", "fused"]
    assert n == 2
    assert union >= 0.85 and best[0] >= 0.85 and best[1] >= 0.8 and min(best_held) >= 0.85
    n, best, union, _ = stats["2011_000006", "fused"]
    assert n == 3 and union >= 0.85
    women = sorted(best)[1:]  # the tiny fourth person is never found
    assert all(b >= lo for b, lo in zip(women, (0.2, 0.4, 0.6))), f"the three women's masks: {women}"
    for stem in ("2011_000003", "2011_000006"):
        assert stats[stem, "fused"][2] > stats[stem, "pose"][2] + 0.03, f"{stem}: fusing did not help"


def test_no_person_no_detection():
    """Photos with buses, cars, a cat/dog and shelves (labelme examples), a black and a noise
    frame: nobody is found. (The labelme street clip is not among them: it holds pedestrians
    70-90 px tall, whom ``test_several.py`` finds.)"""
    finder = _finder()
    rng = np.random.default_rng(0)
    frames = [np.zeros((480, 640, 3), np.uint8), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    root = LABELME.parent.parent
    paths = [root / "instance_segmentation/data_annotated/2011_000025.jpg",
             root / "classification/data_annotated/0001.jpg", root / "classification/data_annotated/0002.jpg",
             root / "tutorial/apc2016_obj3.jpg"]
    frames += [_rgb(p) for p in paths if p.exists()]
    for i, img in enumerate(frames):
        finder.reset()
        assert finder.find(_still(img)) == [], f"false person in image {i}"


def _two_people_clip(n=8, seed=0):
    img = _rgb(MEDIA / "grace_hopper.jpg")
    img = cv2.resize(img, (256, 300), interpolation=cv2.INTER_AREA)
    pair = np.hstack([img, img[:, ::-1]])  # the photo and its mirror image: two people side by side
    rng = np.random.default_rng(seed)
    for i in range(n):
        shift = np.float32([[1, 0, 2 * np.sin(i)], [0, 1, np.cos(i)]])
        f = cv2.warpAffine(pair, shift, (pair.shape[1], pair.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        f = np.clip(f + rng.normal(0, 4, f.shape), 0, 255).astype(np.uint8)
        yield _still(f, i)


def test_two_people_keep_their_ids():
    finder = _finder(max_people=4)
    seen = []
    for frame in _two_people_clip():
        people = finder.find(frame)
        assert len(people) == 2, f"frame {frame.index}: {len(people)} people"
        seen.append({p.person_id: p.rect[0] + p.rect[2] / 2 for p in people})
        # each person's mask is theirs alone and lies on their half (the mirror line is x = 256)
        a, b = sorted(people, key=lambda p: p.keypoints[0, 0])
        assert not (a.mask & b.mask).any()
        for p, half in ((a, slice(0, 256)), (b, slice(256, None))):
            inside = p.mask[:, half].sum() / max(p.mask.sum(), 1)
            assert inside > 0.95 and p.mask[:, half].mean() > 0.3, f"frame {frame.index}: mask {inside:.2f} on its half"
    assert all(set(s) == set(seen[0]) for s in seen), f"ids changed: {[sorted(s) for s in seen]}"
    left = min(seen[0], key=seen[0].get)
    assert all(min(s, key=s.get) == left for s in seen), "the left person's id moved to the other person"


def _jitter(rects):
    r = np.asarray(rects, np.float64)[:, :3]
    return float(np.median(np.abs(np.diff(r, axis=0)).max(1)))


def _still_clip_jitter(img, n=75, sigma=6.0, seed=3, settle=15):
    """(raw jitter, smoothed jitter, crop side, raw rules) over frames settle..n: the first half
    second is left out, while the filters settle from the first frame's estimate."""
    finder = _finder()
    rng = np.random.default_rng(seed)
    raw, smooth, rules = [], [], set()
    for i in range(n):
        f = np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
        people = finder.find(_still(f, i))
        assert len(people) == 1, f"frame {i}: {len(people)} people"
        raw.append(people[0].meta["raw_rect"])
        smooth.append(people[0].rect)
        rules.add(people[0].meta["raw_crop_rule"])
    return _jitter(raw[settle:]), _jitter(smooth[settle:]), float(np.median(np.asarray(smooth)[:, 2])), rules


def _labelme_left_man():
    path = LABELME / "2011_000003.jpg"
    if not path.exists():
        pytest.skip("labelme examples absent: `apt-get install labelme-examples` (Debian) provides them")
    return np.ascontiguousarray(_rgb(path)[:, :360])  # the crouching man fully in view


@pytest.mark.parametrize("subject", ["whole-body", "grace_hopper", "camera", "astronaut"])
def test_crop_jitter_on_still_noisy_clip(subject):
    """A still photo with fresh sensor noise (sigma 6) in each of 75 frames (30 fps): median
    frame-to-frame crop change <= 1 px after smoothing, for the whole-body subject (the
    reference's fullbody rule) and for waist-up / portrait photos (mid-hip / upper-body rules,
    whose radius amplifies the landmark noise of hips and shoulders on the image's edges: the raw
    figure is large there, which is what the keypoint smoothing + rule hysteresis + rect
    smoothing are for)."""
    img = _labelme_left_man() if subject == "whole-body" else _rgb(MEDIA / f"{subject}.{'jpg' if subject == 'grace_hopper' else 'png'}")
    j_raw, j_smooth, side, rules = _still_clip_jitter(img)
    print(f"still noisy clip ({subject}, rules {sorted(rules)}, crop side {side:.0f} px): crop jitter raw "
          f"{j_raw:.2f} px, smoothed {j_smooth:.2f} px")
    assert j_smooth < j_raw
    # grace_hopper: a portrait whose shoulders sit on the image's edges, raw crop sides 660-920 px
    # under this noise. Its smoothed figure depends on the CPU's float rounding in LiteRT: 0.74 px
    # on the machine the bound was set on, 0.46-1.66 px over noise seeds 0-5 on a Zen 5 EPYC
    # (1.64 for this seed, 0.2% of its 843 px crop; docs/people.md). Bound 2 px there, still 20x
    # under the raw jitter; 1 px for the others (at most 0.84 px over the same seeds).
    assert j_smooth <= (2.0 if subject == "grace_hopper" else 1.0)


def test_head_and_shoulders_video():
    """carphone: a head-and-shoulders clip (no hips or feet in view) -> the reference's
    upper-body rule (centre mid-shoulder); one id throughout; the face stays inside a crop about
    the frame's size, in its upper half."""
    path = MEDIA / "carphone_pristine.mp4"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from streamrecon.people.detect_io import iter_video

    finder = _finder()
    rules, ids = set(), set()
    for frame in iter_video(str(path), max_frames=30):
        people = finder.find(frame)
        assert len(people) == 1
        p = people[0]
        rules.add(p.meta["crop_rule"])
        ids.add(p.person_id)
        x, y, w, h = p.rect
        nose = p.keypoints[0]
        assert x <= nose[0] <= x + w and y <= nose[1] <= y + h / 2
        assert 0.8 * frame.height <= w <= 2.0 * max(frame.height, frame.width)
    assert ids == {0} and rules == {"upper-body"}


def _counting_detector(finder):
    """Count the BlazePose detector's runs on ``finder``."""
    det = finder.detector
    runs = []
    inner = det.detect_rois

    def detect_rois(image):
        runs.append(1)
        return inner(image)

    det.detect_rois = detect_rois
    return runs


def test_detector_every_nth_frame_keeps_the_landmarks():
    """carphone, 30 frames: with the detector on every 5th frame (the default) the tracked
    person's landmarks, mask and crop are those of detecting on every frame, for a fifth of the
    detector runs."""
    path = MEDIA / "carphone_pristine.mp4"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from streamrecon.people.detect_io import iter_video

    every, sparse = _finder(detect_every=1), _finder(detect_every=5)
    runs_every, runs_sparse = _counting_detector(every), _counting_detector(sparse)
    for frame in iter_video(str(path), max_frames=30):
        a, b = every.find(frame), sparse.find(frame)
        assert len(a) == len(b) == 1
        np.testing.assert_allclose(a[0].meta["raw_keypoints"], b[0].meta["raw_keypoints"], atol=1e-3)
        assert np.array_equal(a[0].mask, b[0].mask)
        np.testing.assert_allclose(a[0].rect, b[0].rect, atol=1e-3)
    assert len(runs_every) == 30 and len(runs_sparse) == 6


def test_detector_every_nth_frame_finds_newcomers_and_losses():
    """One person, then a second walks in at frame 3: found at the next scheduled detection
    (within detect_every frames; at once with 1). The first one leaves at frame 12: the lost
    track runs the detector on the next frame, and with nobody tracked it runs on every frame, so
    the person coming back at frame 16 is found at once."""
    frames = list(_two_people_clip(n=20))
    blank_right = frames[0].image[:, 256:].copy()
    blank_right[:] = np.median(blank_right.reshape(-1, 3), 0).astype(np.uint8)
    for f in frames[:3]:
        f.image[:, 256:] = blank_right
    for f in frames[12:16]:
        f.image[:, :] = blank_right[:, :1]
    for every in (1, 4):
        finder = _finder(detect_every=every)
        runs = _counting_detector(finder)
        counts, ran = [], []
        for f in frames:
            before = len(runs)
            counts.append(len(finder.find(f)))
            ran.append(len(runs) > before)
        assert counts[:3] == [1, 1, 1], counts
        first_two = counts.index(2)
        assert 3 <= first_two < 3 + every, (every, counts)
        assert counts[first_two:12] == [2] * (12 - first_two), counts
        assert counts[12:16] == [0] * 4 and all(ran[12:17]), (counts, ran)
        assert counts[16:] == [2] * 4, counts
        if every > 1:
            assert sum(ran) < len(frames) - 5, ran
