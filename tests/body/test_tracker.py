"""Bodies of the people of a video, frame after frame (``body.tracker``)."""
import numpy as np
import pytest

from body_inputs import random_pose, synthetic_inputs
from streamrecon.body.tracker import BodyTracker
from streamrecon.types import PersonCrop


def _crop(pid, kp, world, with_world=True):
    return PersonCrop(pid, (0.0, 0.0, 800.0, 800.0), keypoints=kp, world_landmarks=world.astype(np.float32) if with_world else None)


def test_each_person_gets_a_body_warm_started_from_their_own_previous_fit(body_model):
    rng = np.random.default_rng(5)
    a = synthetic_inputs(body_model, *random_pose(body_model, rng), rng)[:2]
    b = synthetic_inputs(body_model, *random_pose(body_model, rng), rng)[:2]
    tracker = BodyTracker(smooth=False)
    calls = []
    fit = tracker.fitter.fit

    def spy(kp, world, mask=None, previous=None, **kw):
        calls.append(previous)
        return fit(kp, world, mask=mask, previous=previous, **kw)

    tracker.fitter.fit = spy
    crops = tracker.update([_crop(1, *a), _crop(2, *b), _crop(3, a[0], a[1], with_world=False)], 0.0)
    assert crops[0].body is not None and crops[1].body is not None and crops[2].body is None  # no world landmarks
    assert calls == [None, None]  # first sight: cold
    first = crops[0].body
    again = tracker.update([_crop(1, *a)], 0.04)
    assert calls[-1] is first and again[0].body is not None  # warm from person 1's own fit
    # the two people's bodies differ (each fitted to its own landmarks)
    assert np.abs(crops[0].body.vertices - crops[1].body.vertices).max() > 10
    tracker.update([_crop(1, *a)], 2.0)  # after a gap longer than max_gap_s: cold again
    assert calls[-1] is None
    tracker.update([_crop(1, *a)], 1.0)  # time going backwards (a new video): cold again
    assert calls[-1] is None


def test_smoothed_bodies_move_less_than_raw_ones_on_jittery_landmarks(body_model):
    rng = np.random.default_rng(6)
    pose = random_pose(body_model, rng)
    raw_t, smooth_t = BodyTracker(smooth=False), BodyTracker(smooth=True)
    raw, smooth = [], []
    for k in range(12):
        kp, world = synthetic_inputs(body_model, *pose, rng, noise_m=0.01)[:2]
        raw.append(raw_t.update([_crop(1, kp, world)], k / 25)[0].body.vertices)
        smooth.append(smooth_t.update([_crop(1, kp, world)], k / 25)[0].body.vertices)
    step = lambda vs: np.mean([np.abs(p - q).mean() for p, q in zip(vs[5:], vs[6:])])  # noqa: E731
    assert step(smooth) < 0.8 * step(raw)
    with pytest.raises(ValueError):
        BodyTracker(max_gap_s=0)
