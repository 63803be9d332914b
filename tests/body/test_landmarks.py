"""World-landmark decoding (BlazePose's Identity_4 in the ROI's frame -> image axes)."""
import math

import numpy as np
import pytest

from streamrecon.body.landmarks import world_landmarks_from_roi


def test_zero_rotation_keeps_the_body_points():
    raw = np.arange(117, dtype=np.float32)
    out = world_landmarks_from_roi(raw[None], 0.0)
    assert out.shape == (33, 3)
    np.testing.assert_allclose(out, raw.reshape(39, 3)[:33])


def test_rotation_turns_x_and_y_like_the_roi_warp():
    # a point straight up in a ROI turned by +90 degrees: the ROI -> frame map is
    # frame = R(rot) @ roi (people.blazepose.roi_matrix), and R(90) @ (0, -1) = (1, 0)
    raw = np.zeros((39, 3))
    raw[0] = (0.0, -1.0, 0.25)
    out = world_landmarks_from_roi(raw.ravel(), math.pi / 2)
    np.testing.assert_allclose(out[0], (1.0, 0.0, 0.25), atol=1e-12)


def test_rotation_is_inverted_by_the_opposite_angle():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(39, 3))
    out = world_landmarks_from_roi(raw, 0.7)
    back = world_landmarks_from_roi(np.concatenate([out, np.zeros((6, 3))]), -0.7)
    np.testing.assert_allclose(back, raw[:33], atol=1e-12)
    # lengths and z are unchanged
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(raw[:33], axis=1))
    np.testing.assert_allclose(out[:, 2], raw[:33, 2])


@pytest.mark.parametrize("raw, rot, name", [
    (np.zeros(116), 0.0, "raw117"),
    (np.full(117, np.nan), 0.0, "raw117"),
    (np.zeros(117), float("inf"), "roi_rotation_rad"),
    (np.zeros(117), "a", "roi_rotation_rad"),
])
def test_bad_inputs_name_the_argument(raw, rot, name):
    with pytest.raises(ValueError, match=name):
        world_landmarks_from_roi(raw, rot)
