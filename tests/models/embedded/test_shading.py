"""The shading channel (``streamrecon.models.embedded.shading``): normals from depth maps, Lambert
shading, the within-mask normalisation, and how training, evaluation and the product feed it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrecon.models.embedded import shading as sh
from streamrecon.models.embedded.net import EmbeddedNet, NetConfig, widen_inputs

TINY = NetConfig(in_res=64, widths=(8, 8, 8, 8, 8), feat=16, mlp=(16,), z_freqs=2)


def _grid(res):
    t = torch.linspace(-1, 1, res)
    return t[None, :].expand(res, res), -t[:, None].expand(res, res)  # x (columns), y (rows go down)


def test_normals_of_a_tilted_plane_and_a_sphere():
    res = 33
    x, y = _grid(res)
    plane = (0.3 * x - 0.5 * y + 0.1)[None]
    n = sh.normals_from_depth(plane)
    want = torch.tensor([0.3, -0.5, -1.0]) / torch.tensor([0.3, -0.5, -1.0]).norm()
    assert torch.allclose(n[0, 5:-5, 5:-5], want.expand(res - 10, res - 10, 3), atol=1e-5)
    # a sphere of radius 0.8 seen from -z: front surface z = -sqrt(r^2 - x^2 - y^2), +inf off it
    r2 = 0.64 - x ** 2 - y ** 2
    depth = torch.where(r2 > 0, -torch.sqrt(r2.clamp(min=0)), torch.tensor(float("inf")))[None]
    n = sh.normals_from_depth(depth)
    c = res // 2
    assert torch.allclose(n[0, c, c], torch.tensor([0.0, 0.0, -1.0]), atol=1e-5)
    inner = r2 > 0.25  # away from the outline the normal is the radial direction
    exact = torch.stack([x, y, depth[0]], -1) / 0.8
    cos = (n[0] * exact).sum(-1)[inner]
    assert float(cos.min()) > 0.98
    assert torch.all(n[0][~torch.isfinite(depth[0])] == 0)  # nothing off the person


def test_lambert_is_brightest_facing_the_light_and_ambient_in_shadow():
    n = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    g = sh.lambert(n, torch.tensor([[0.0, 0.0, -2.0]]), torch.tensor([0.25]))
    assert torch.allclose(g[0, 0], torch.tensor([1.0, 0.25, 0.25]))


def test_normalise_removes_exposure_and_zeroes_the_background():
    torch.manual_seed(0)
    grey = torch.rand(2, 16, 16)
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, 4:12, 3:13] = True
    a = sh.normalise(grey, mask)
    b = sh.normalise(3.0 * grey + 0.2, mask)  # brighter exposure: almost the same channel
    assert torch.all(a[~mask] == 0)
    assert abs(float(a[mask].mean())) < 1e-5
    assert float((a - b).abs().max()) < 0.2 < float(a[mask].std())
    assert float(sh.normalise(grey * 1e3, mask).abs().max()) <= 3.0


def test_random_shading_varies_the_light_but_keeps_the_geometry():
    res = 33
    x, y = _grid(res)
    r2 = 0.64 - x ** 2 - y ** 2
    depth = torch.where(r2 > 0, -torch.sqrt(r2.clamp(min=0)), torch.tensor(float("inf")))[None].expand(4, res, res)
    mask = torch.isfinite(depth)
    g = torch.Generator().manual_seed(0)
    out = sh.random_shading(depth, mask, g)
    assert out.shape == (4, res, res) and torch.all(out[~mask] == 0)
    assert float((out[0] - out[1]).abs().mean()) > 0.1  # different lights
    ev = sh.eval_shading(depth[:1], mask[:1])
    # under the evaluation light (up and to the left) the upper-left of the ball is brighter
    c = res // 2
    assert float(ev[0, c - 8, c - 8]) > float(ev[0, c + 8, c + 8])


def test_widened_net_computes_what_the_mask_only_net_did():
    torch.manual_seed(0)
    old = EmbeddedNet(TINY)
    for p in old.parameters():
        p.data.normal_(0, 0.3)
    wide_cfg = NetConfig(**{**TINY.__dict__, "shading": True})
    assert wide_cfg.in_channels == 2
    new = EmbeddedNet(wide_cfg)
    new.load_state_dict(widen_inputs(old.state_dict(), wide_cfg))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 12:52, 20:44] = 1
    pts = torch.rand(1, 50, 3) * 2 - 1
    old.eval(), new.eval()
    with torch.no_grad():
        a = old(mask, pts)
        b = new(torch.cat([mask, torch.randn(1, 1, 64, 64)], 1), pts)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="input channels"):
        widen_inputs(new.state_dict(), TINY)


def test_shading_model_reads_the_photo_luminance(tmp_path):
    from streamrecon.models.embedded.model import EmbeddedModel, photo_shading

    torch.manual_seed(0)
    net = EmbeddedNet(NetConfig(**{**TINY.__dict__, "shading": True}))
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    m = EmbeddedModel(net)
    img = np.zeros((40, 40, 3), np.uint8)
    img[5:35, 12:28] = np.linspace(40, 220, 30, dtype=np.uint8)[:, None, None]  # a vertical gradient
    mask = np.zeros((40, 40), bool)
    mask[5:35, 12:28] = True
    f = m.encode(img, (0, 0, 40, 40), mask)
    # the same features as feeding the crop's channels by hand
    from streamrecon.models.embedded.model import crop_inputs

    mc, rgb = crop_inputs(img, (0, 0, 40, 40), mask, 64)
    s = photo_shading(rgb, mc)
    assert s[mc > 0].std() > 0.5 and np.all(s[mc == 0] == 0)
    assert s[16, 32] < s[48, 32]  # darker above, brighter below: the gradient survives
    g = m.encode_crop(mc, shading=s)
    assert torch.allclose(f.feat, g.feat, atol=1e-6)
    # a different picture inside the same mask changes the features: the channel is read
    g2 = m.encode_crop(mc, shading=-s)
    assert float((g2.feat - g.feat).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="shading"):
        m.encode_crop(mc)


def test_compiled_encoder_of_a_shading_model_reads_both_channels(tmp_path):
    """ONNX Runtime's encoder of a shading model takes the two-channel input (mask, shading) and
    gives the eager features (within the tolerance of test_embedded's compiled check)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from streamrecon.backends import BackendConfig
    from streamrecon.models.embedded.model import EmbeddedModel

    torch.manual_seed(0)
    net = EmbeddedNet(NetConfig(**{**TINY.__dict__, "shading": True}))
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    eager = EmbeddedModel(net)
    fast = EmbeddedModel(EmbeddedNet(net.cfg))
    fast.net.load_state_dict(net.state_dict())
    fast.compile(BackendConfig(backend="onnxruntime", cache_dir=str(tmp_path)))
    assert fast.backend == "onnxruntime"
    img = np.random.default_rng(1).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    mask = np.zeros((80, 80), bool)
    mask[10:70, 25:55] = True
    fe, ff = eager.encode(img, (0, 0, 80, 80), mask), fast.encode(img, (0, 0, 80, 80), mask)
    assert torch.allclose(fe.feat, ff.feat, atol=5e-4, rtol=1e-4)
