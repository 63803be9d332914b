"""The embedded network's body channels (``NetConfig.body``): the depth head starts from the
fitted body's depths, and weights trained without the body grow into a body-reading net."""
import dataclasses

import pytest
import torch

from streamrecon.models.embedded.net import EmbeddedNet, NetConfig, body_depths_at, grow_state_dict

TINY = NetConfig(in_res=32, widths=(8, 8, 8, 8, 8), feat=16, mlp=(16,), z_freqs=2)


def test_body_depths_keep_the_covered_depth_at_the_outline_and_zero_off_the_body():
    res = 32
    cover = torch.zeros(1, 1, res, res)
    cover[..., 8:24, 10:20] = 1
    front, back = 0.3 * cover, 0.5 * cover  # a box at constant depths
    d = body_depths_at(torch.cat([front, back, cover], 1), (8, 8))
    on = d[0, 0] != 0
    assert on.any() and (~on).any()
    # wherever any covered neighbour exists, the depth is the body's, not pulled towards the zeros
    torch.testing.assert_close(d[0, 0][on], torch.full_like(d[0, 0][on], 0.3))
    torch.testing.assert_close(d[0, 1][on], torch.full_like(d[0, 1][on], 0.5))
    assert torch.all(d[0, 1][~on] == 0)


def test_the_depth_head_adds_its_output_to_the_body_depths():
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, body=True, depth_prior=True)
    net = EmbeddedNet(cfg).eval()
    with torch.no_grad():  # the body reaches the head only through the skip in this test
        net.encoder.down[0][0].weight[:, -3:] = 0
    x = torch.zeros(2, cfg.in_channels, 64, 64)
    x[:, 0, 8:56, 16:48] = 1
    with torch.no_grad():
        bare = net.encoder(x)  # no body: the head alone
        x[:, -3, 8:56, 16:48], x[:, -2, 8:56, 16:48], x[:, -1, 8:56, 16:48] = -0.1, 0.2, 1
        with_body = net.encoder(x)
        base = body_depths_at(x[:, -3:], bare.shape[-2:])
    f = cfg.feat
    assert cfg.in_channels == 4
    torch.testing.assert_close(with_body[:, :f], bare[:, :f])
    torch.testing.assert_close(with_body[:, f:], bare[:, f:] + base)
    assert float(base[:, 0].min()) == pytest.approx(-0.1) and float(base[:, 1].max()) == pytest.approx(0.2)


def test_weights_without_the_body_grow_into_a_body_net_that_computes_the_same_features():
    torch.manual_seed(1)
    old = EmbeddedNet(TINY).eval()
    torch.manual_seed(2)
    new = EmbeddedNet(dataclasses.replace(TINY, body=True, depth_prior=True)).eval()
    init_prior = new.decoder.log_prior_scale.detach().clone()
    new.load_state_dict(grow_state_dict(old.state_dict(), old.cfg, new))
    x = torch.rand(2, 1, 32, 32).round()
    xb = torch.cat([x, torch.zeros(2, 3, 32, 32)], 1)  # no body
    with torch.no_grad():
        a = old.encoder(x)
        b = new.encoder(xb)
    torch.testing.assert_close(b[:, :TINY.feat], a)  # the new channels start at zero weight
    assert torch.equal(new.decoder.log_prior_scale, init_prior)  # the prior keeps its initial value
    with pytest.raises(ValueError, match="feat"):
        grow_state_dict(old.state_dict(), old.cfg, EmbeddedNet(dataclasses.replace(TINY, feat=8)))
    with pytest.raises(ValueError, match="depth_prior"):  # a switch is never dropped
        grow_state_dict(new.state_dict(), new.cfg, EmbeddedNet(dataclasses.replace(TINY, body=True)))


def test_a_body_model_reads_the_fitted_body_and_its_mirror_average_is_symmetric(tmp_path):
    import numpy as np

    from streamrecon.body.conditioning import body_maps
    from streamrecon.body.fit import BodyFitter, FitConfig
    from streamrecon.body.model import BodyModel
    from streamrecon.models.embedded.model import load_embedded, save_embedded
    from streamrecon.models.mirror_average import MirrorAveraged
    from streamrecon.models.protocol import encode_person

    torch.manual_seed(3)
    cfg = dataclasses.replace(TINY, in_res=64, body=True, depth_prior=True)
    model = load_embedded(save_embedded(tmp_path / "b.pt", EmbeddedNet(cfg)))
    assert model.reads_body
    body = BodyModel()
    v, _, lm = body.pose(np.zeros(body.n_betas), body.identity_pose(), np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), np.zeros(3))
    kp = np.concatenate([lm[:, :2] * 300 + [320, 300], np.ones((33, 1))], 1)
    world = lm - 0.5 * (lm[23] + lm[24])
    fit = BodyFitter(body, FitConfig(quality=False)).fit(kp, world)
    image = np.zeros((640, 640, 3), np.uint8)
    mask = np.zeros((640, 640), bool)
    mask[40:600, 200:440] = True
    rect = (0.0, 0.0, 640.0, 640.0)
    none = model.encode(image, rect, mask)
    with_body = encode_person(model, image, rect, mask, fit)
    assert not torch.allclose(none.feat, with_body.feat)  # the body reaches the features
    maps = body_maps(fit, body.faces, rect, 64).stack()
    direct = model.encode_crop(none.mask[0, 0].numpy(), body_maps=maps)
    torch.testing.assert_close(direct.feat, with_body.feat)  # encode = crop inputs + the same maps
    mirrored = MirrorAveraged(model)
    feats = mirrored.encode(image, rect, mask, body=fit)
    pts = torch.rand(200, 3) * 2 - 1
    occ = mirrored.query(feats, pts)
    flip = pts.clone()
    flip[:, 0] = -flip[:, 0]
    # symmetric up to the rasteriser's tie rule at pixel centres on a triangle edge, which the
    # mirrored body meets from the other side
    torch.testing.assert_close(mirrored.query(feats, flip), occ, atol=1e-3, rtol=0)


def test_the_mask_only_model_ships_beside_the_default_and_reads_no_body():
    from streamrecon.errors import UserInputError
    from streamrecon.models.load import load_named
    from streamrecon.stream.stages import StageConfig, model_label

    m = load_named("mask-only")
    assert m.name == "embedded" and not m.reads_body and m.cfg.in_channels == 1
    assert model_label(StageConfig(model="mask-only")) == "embedded:mask-only"
    with pytest.raises(UserInputError, match="--model"):
        load_named("nope")


def test_each_shipped_model_reads_what_its_name_says():
    """``--model body`` reads the fitted body, ``mask-only`` does not; the default is one of them
    (the same tensors as the file its name says)."""
    import torch

    from streamrecon.models.embedded.model import NAMED_WEIGHTS
    from streamrecon.models.load import load_named
    from streamrecon.stream.stages import StageConfig, model_label

    body, mask_only, default = load_named("body"), load_named("mask-only"), load_named("default")
    assert body.reads_body and body.cfg.body and not mask_only.reads_body
    assert model_label(StageConfig(model="body")) == "embedded:body"
    twin = body if default.reads_body else mask_only
    for k, v in default.net.state_dict().items():
        assert torch.equal(v, twin.net.state_dict()[k]), k
    assert set(NAMED_WEIGHTS) == {"mask-only", "body"}
