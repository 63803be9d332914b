"""Mirror averaging (``streamrecon.models.mirror_average``): exactly mirror-symmetric occupancy, built
from the wrapped model's own answers for the crop and for the mirrored frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrecon.models.mirror_average import MirrorAveraged, mirror_rect
from streamrecon.testing.sphere_model import SphereModel


def _points(n=500, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (n, 3)).astype(np.float32))


def test_mirror_rect_maps_the_crop_onto_the_flipped_crop():
    from streamrecon.models.embedded.model import crop_inputs

    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    mask = rng.random((60, 80)) > 0.5
    for rect in [(10, 5, 40, 40), (-7.5, -3, 50, 50), (55.25, 20, 30, 30)]:  # inside, over the edges
        m, rgb = crop_inputs(img, rect, mask, 32)
        fm, frgb = crop_inputs(np.ascontiguousarray(img[:, ::-1]), mirror_rect(rect, 80), np.ascontiguousarray(mask[:, ::-1]), 32)
        np.testing.assert_allclose(fm, m[:, ::-1], atol=1e-5)
        np.testing.assert_allclose(frgb, rgb[:, ::-1], atol=1e-4)


class _LeaningSphere(SphereModel):
    """A sphere drawn 0.2 to the right of the bright disc: not mirror-equivariant."""

    def query(self, features, points):
        cx, cy, r = features
        return super().query((cx + 0.2, cy, r), points)


def test_a_leaning_model_is_averaged_with_its_mirror_image():
    base = _LeaningSphere(sharpness=20.0)
    img = np.zeros((64, 64, 3), np.uint8)
    img[20:40, 6:26] = 255  # a blob left of centre
    rect = (0, 0, 64, 64)
    m = MirrorAveraged(base)
    p = _points()
    got = m.query(m.encode(img, rect), p)
    cx, cy, r = base.encode(img, rect)
    # the mirrored frame's disc is at -cx, its sphere at -cx + 0.2; mirrored back: cx - 0.2
    want = 0.5 * (SphereModel.query(base, (cx + 0.2, cy, r), p) + SphereModel.query(base, (cx - 0.2, cy, r), p))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - base.query((cx, cy, r), p)).abs().max() > 0.1
    # a mirror-equivariant model (the plain sphere) is left as it is
    plain = SphereModel(sharpness=20.0)
    mp = MirrorAveraged(plain)
    torch.testing.assert_close(mp.query(mp.encode(img, rect), p), plain.query(plain.encode(img, rect), p), atol=1e-5, rtol=0)
    assert m.name == base.name and m.device == base.device  # the rest is the wrapped model's


def test_embedded_model_becomes_mirror_symmetric():
    from streamrecon.models.embedded import load_default

    base = load_default()
    m = MirrorAveraged(base)
    rng = np.random.default_rng(2)
    mask = np.zeros((96, 120), bool)
    mask[10:90, 30:60] = True
    mask[30:45, 60:100] = True  # one arm out to the right: not symmetric
    img = (rng.random((96, 120, 3)) * 255).astype(np.uint8)
    rect = (5, 0, 96, 96)
    p = _points(2000, 3)
    q = p.clone()
    q[:, 0] = -q[:, 0]
    got = m.query(m.encode(img, rect, mask), p)
    flipped = m.query(m.encode(np.ascontiguousarray(img[:, ::-1]), mirror_rect(rect, 120), np.ascontiguousarray(mask[:, ::-1])), q)
    torch.testing.assert_close(got, flipped, atol=1e-5, rtol=0)
    plain = base.query(base.encode(img, rect, mask), p)
    assert (got - plain).abs().max() > 0.05  # the network alone is not symmetric
    # encode_crop (evaluation's path) flips the crop: the same as encode on the frame
    from streamrecon.models.embedded.model import crop_inputs

    mc, _ = crop_inputs(img, rect, mask, base.cfg.in_res)
    torch.testing.assert_close(m.query(m.encode_crop(mc), p), got, atol=1e-5, rtol=0)
    assert m.iso_level == base.iso_level


def test_stage_flag_wraps_the_model(monkeypatch):
    from streamrecon.cli import build_parser
    from streamrecon.cli.streaming import session_config

    args = build_parser().parse_args(["run", "in.mp4", "--out", "o", "--mirror-average"])
    assert session_config(args, source="in.mp4").stage.mirror_average is True
    assert session_config(build_parser().parse_args(["run", "in.mp4", "--out", "o"]), source="in.mp4").stage.mirror_average is False
    import streamrecon.models.mirror_average as mod
    from streamrecon.stream.stages import StageConfig, build_stage

    made = []

    class Spy(mod.MirrorAveraged):
        def __init__(self, base):
            made.append(base)
            super().__init__(base)

    monkeypatch.setattr(mod, "MirrorAveraged", Spy)
    before = torch.get_num_threads()
    try:
        build_stage(StageConfig(resolution=32, people="full-frame", mirror_average=True))
    finally:
        torch.set_num_threads(before)
    assert len(made) == 1 and made[0].name == "embedded"


def test_eval_config_option_exists_and_defaults_off():
    from streamrecon.cli import build_parser
    from streamrecon.training.evaluate import EvalConfig

    assert EvalConfig().mirror_average is False
    assert build_parser().parse_args(["eval-model", "--mirror-average"]).mirror_average is True


def test_a_model_that_rounds_its_rect_gets_the_mirror_of_the_rect_it_uses():
    """PIFuHD crops at integer pixels (``prepare_rect``): the mirrored rect must be the mirror of
    the rounded one, or a fractional rect's two crops differ by a pixel."""
    from streamrecon.models.preprocess import check_rect

    class Rounding(SphereModel):
        def __init__(self):
            super().__init__()
            self.rects = []

        def prepare_rect(self, rect):
            return check_rect(rect)

        def encode(self, image, rect, mask=None):
            self.rects.append(tuple(check_rect(rect)))
            return super().encode(image, rect, mask)

    base = Rounding()
    img = np.zeros((40, 81, 3), np.uint8)
    MirrorAveraged(base).encode(img, (10.5, 0.0, 40.0, 40.0))
    direct, mirrored = base.rects
    assert direct == (10, 0, 40, 40) and mirrored == (81 - 10 - 40, 0, 40, 40)  # not round(30.5) = 30


def test_pifuhd_declares_its_rect_rounding():
    from streamrecon.models.pifuhd.model import PifuhdModel
    from streamrecon.models.preprocess import check_rect

    assert PifuhdModel.prepare_rect(None, (10.5, 3.2, 40.4, 40.4)) == check_rect((10.5, 3.2, 40.4, 40.4)) == (10, 3, 40, 40)


def test_synthetic_model_refuses_mirror_averaging():
    from streamrecon.errors import UserInputError
    from streamrecon.stream.stages import StageConfig, build_stage

    with pytest.raises(UserInputError, match="--mirror-average"):
        build_stage(StageConfig(model="synthetic", resolution=32, mirror_average=True))
