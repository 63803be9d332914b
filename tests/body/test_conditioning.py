"""The fitted body as the network's input channels (``body.conditioning``)."""
import numpy as np

from body_inputs import random_pose, synthetic_inputs
from streamrecon.body.conditioning import body_in_crop, body_maps, empty_maps, maps_from_crop_vertices
from streamrecon.body.fit import BodyFitter, FitConfig
from streamrecon.mesh.coords import image_to_crop_points


def _fit(body_model):
    rng = np.random.default_rng(3)
    betas, rots, root_R = random_pose(body_model, rng)
    kp, world = synthetic_inputs(body_model, betas, rots, root_R, rng)[:2]
    return BodyFitter(body_model, FitConfig(quality=False)).fit(kp, world)


def test_body_in_crop_is_the_crop_transform_with_the_centroid_at_depth_zero(body_model):
    fit = _fit(body_model)
    rect = (50.0, -20.0, 700.0, 700.0)
    v = body_in_crop(fit.vertices, rect)
    ref = image_to_crop_points(fit.vertices, rect)
    np.testing.assert_allclose(v[:, :2], ref[:, :2])
    assert abs(v[:, 2].mean()) < 1e-9
    np.testing.assert_allclose(v[:, 2] - ref[:, 2], -ref[:, 2].mean())  # a pure shift in depth


def test_maps_cover_the_projection_with_front_before_back_and_zero_off_the_body(body_model):
    fit = _fit(body_model)
    rect = (0.0, 0.0, 800.0, 800.0)
    size = 96
    m = body_maps(fit, body_model.faces, rect, size)
    assert m.stack().shape == (3, size, size) and m.stack().dtype == np.float32
    on = m.cover > 0
    assert 0.03 < on.mean() < 0.6
    assert np.all(m.front[on] <= m.back[on]) and np.all(m.front[~on] == 0) and np.all(m.back[~on] == 0)
    # the body's thickness is a body's: tens of centimetres at most, never negative
    assert float((m.back - m.front)[on].max()) < 1.0
    # every projected vertex lands within a pixel of a covered one (pixel grid of the network:
    # align_corners; thin parts such as fingers fall between pixel centres)
    v = body_in_crop(fit.vertices, rect)
    cols = np.round((v[:, 0] + 1) * (size - 1) / 2).astype(int)
    rows = np.round((1 - v[:, 1]) * (size - 1) / 2).astype(int)
    ok = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    grown = on.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            grown |= np.roll(np.roll(on, dr, 0), dc, 1)
    assert grown[rows[ok], cols[ok]].mean() > 0.99
    same = maps_from_crop_vertices(v, body_model.faces, size)
    np.testing.assert_array_equal(same.front, m.front)
    e = empty_maps(8)
    assert not e.stack().any()
