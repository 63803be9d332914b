"""The embedded model: network invariants, its fast path vs slow twin, the file format, the
shipped weights and the ImplicitModel adapter (crop mapping, mask fallback)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrecon.models.embedded import model as em
from streamrecon.models.embedded.net import EmbeddedNet, NetConfig
from streamrecon.errors import CheckpointError, UserInputError
from streamrecon.models.protocol import ImplicitModel

class Evil:
    """Pickled objects other than tensors and containers must be refused (weights_only)."""


TINY = NetConfig(in_res=64, widths=(8, 8, 8, 8, 8), feat=16, mlp=(16,), z_freqs=3)


def _blob(res=64):
    m = np.zeros((res, res), np.float32)
    m[8:56, 20:44] = 1
    return m


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    net = EmbeddedNet(TINY)
    for p in net.parameters():  # random non-trivial weights, as after training
        p.data.normal_(0, 0.3)
    return net.eval()


def test_z_table_matches_exact_depth_term(tiny):
    feats = tiny.encode(torch.from_numpy(_blob())[None, None])
    pts = torch.rand(1, 5000, 3) * 2 - 1
    with torch.no_grad():
        fast = tiny.query(feats, pts)
        slow = tiny.query(feats, pts, exact_z=True)
    assert torch.allclose(fast, slow, atol=2e-3 * (1 + slow.abs().max()))
    # the table is rebuilt after training changes the weights
    tiny.train()
    tiny.decoder.z_lin.bias.data += 1.0
    tiny.eval()
    with torch.no_grad():
        assert torch.allclose(tiny.query(feats, pts), tiny.query(feats, pts, exact_z=True), atol=2e-3 * (1 + slow.abs().max()))


def test_query_does_not_depend_on_chunking(tiny):
    feats = tiny.encode(torch.from_numpy(_blob())[None, None])
    pts = torch.rand(1, 3001, 3) * 2 - 1
    with torch.no_grad():
        whole = tiny.query(feats, pts)
        parts = torch.cat([tiny.query(feats, pts[:, i : i + 700]) for i in range(0, 3001, 700)], 1)
    assert torch.allclose(whole, parts, atol=1e-5)


def test_pixel_alignment_reads_feature_at_x_minus_y(tiny):
    """A point's mask term comes from the pixel at (x, -y): mask pixels on the top row are y = +1."""
    m = torch.zeros(1, 1, 32, 32)
    m[0, 0, 0, 31] = 1.0  # top-right pixel = crop (x=1, y=1)
    pts = torch.tensor([[[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]]])
    grid = torch.stack([pts[..., 0], -pts[..., 1]], -1)[:, :, None]
    vals = torch.nn.functional.grid_sample(m, grid, align_corners=True)[0, 0, :, 0]
    assert vals.tolist() == [1.0, 0.0]


def test_training_sampler_matches_grid_sample_values_and_gradients():
    """The training path's feature sampling (sample_bilinear_rows) is grid_sample's bilinear,
    zeros-padded, align_corners=True lookup: same values and same gradient for the feature map,
    at points inside, exactly on the border and outside the map."""
    import torch.nn.functional as F

    from streamrecon.models.embedded.net import sample_bilinear_rows

    g = torch.Generator().manual_seed(3)
    feat = torch.randn(3, 5, 9, 7, generator=g, requires_grad=True)
    xy = torch.rand(3, 400, 2, generator=g) * 2.6 - 1.3
    xy[:, :4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [0.0, 1.0]])
    ref = F.grid_sample(feat, xy[:, :, None], mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0]
    got = sample_bilinear_rows(feat, xy).transpose(1, 2)
    assert got.shape == ref.shape == (3, 5, 400)
    assert torch.allclose(got, ref, atol=1e-6)
    up = torch.randn(ref.shape, generator=g)
    (g_ref,) = torch.autograd.grad(ref, feat, up)
    (g_got,) = torch.autograd.grad(got, feat, up)
    assert torch.allclose(g_got, g_ref, atol=1e-5)
    assert g_ref.abs().sum() > 0


def _tiny_depth_prior():
    torch.manual_seed(0)
    net = EmbeddedNet(NetConfig(**{**TINY.to_json(), "widths": TINY.widths, "mlp": TINY.mlp, "depth_prior": True}))
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    return net.eval()


@pytest.mark.parametrize("depth_prior", [False, True])
def test_train_mode_query_equals_eval_mode_with_exact_depth(tiny, depth_prior):
    """Training samples features with its own sampler and eval mode with grid_sample: one network
    answers the same either way (exact depth term in both), with or without the depth prior."""
    if depth_prior:
        tiny = _tiny_depth_prior()
    img = torch.from_numpy(_blob())[None, None]
    pts = torch.rand(1, 300, 3) * 2 - 1
    tiny.train()
    with torch.enable_grad():
        a = tiny.query(tiny.encode(img), pts)
    tiny.eval()
    with torch.no_grad():
        b = tiny.query(tiny.encode(img), pts, exact_z=True)
    assert a.requires_grad
    assert torch.allclose(a.detach(), b, atol=1e-5)


def test_depth_prior_adds_the_interval_between_the_predicted_surfaces():
    """With the MLP's answer taken away (last layer zero), a depth-prior net's logit is
    k m min(z - front, back - z): positive between its two predicted depth maps, negative before
    and behind them, zero off the mask; ``surface_depths`` reads the same two maps."""
    net = _tiny_depth_prior()
    with torch.no_grad():
        net.decoder.layers[-1].weight.zero_()
        net.decoder.layers[-1].bias.zero_()
    img = torch.from_numpy(_blob())[None, None]
    xy = torch.rand(1, 200, 2) * 2 - 1
    feat, mask = net.encode(img)
    with torch.no_grad():
        fb = net.decoder.surface_depths(feat, xy)  # [1, 200, 2]
        z = (torch.rand(1, 200) * 2 - 1)
        for exact in (False, True):
            got = net.query((feat, mask), torch.cat([xy, z[..., None]], -1), exact_z=exact)
            m = torch.nn.functional.grid_sample(mask, torch.stack([xy[..., 0], -xy[..., 1]], -1)[:, :, None],
                                                align_corners=True)[0, 0, :, 0]
            want = net.decoder.log_prior_scale.exp() * m * torch.minimum(z - fb[..., 0], fb[..., 1] - z)
            assert torch.allclose(got, want, atol=1e-5)
    on = m > 0.99
    assert on.any() and (~on).any()
    assert torch.all(got[0, m == 0] == 0)
    with pytest.raises(ValueError, match="depth prior"):
        EmbeddedNet(TINY).decoder.surface_depths(feat, xy)


def test_save_load_round_trip_weights_only(tmp_path, tiny):
    path = em.save_embedded(tmp_path / "w.pt", tiny, {"data_seed": 7, "command": "streamrecon train ..."})
    raw = torch.load(path, weights_only=True)  # plain dict of tensors and JSON-like values
    assert raw["format"] == em.FORMAT and raw["config"]["feat"] == 16
    m = em.load_embedded(path)
    assert isinstance(m, ImplicitModel) and m.meta["data_seed"] == 7
    f1 = m.encode_crop(_blob())
    pts = torch.rand(2000, 3) * 2 - 1
    with torch.no_grad():
        ref = torch.sigmoid(tiny.query(tiny.encode(torch.from_numpy(_blob())[None, None]), pts[None]))[0]
    out = m.query(f1, pts)
    assert out.shape == (2000,) and torch.allclose(out, ref, atol=1e-6)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_bad_files_are_refused(tmp_path, tiny):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        em.load_embedded(tmp_path / "missing.pt")
    p = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, p)
    with pytest.raises(CheckpointError, match="not a streamrecon-embedded"):
        em.load_embedded(p)
    torch.save({"format": em.FORMAT, "version": 1, "config": TINY.to_json(), "meta": {}, "state_dict": {"x": torch.zeros(1)}}, p)
    with pytest.raises(CheckpointError, match="do not match"):
        em.load_embedded(p)

    torch.save({"format": em.FORMAT, "obj": Evil()}, p)
    with pytest.raises(CheckpointError, match="safe"):
        em.load_embedded(p)
    p.write_bytes(b"truncated")
    with pytest.raises(CheckpointError):
        em.load_embedded(p)


def test_crop_inputs_maps_rect_to_crop_frame():
    img = np.zeros((120, 160, 3), np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[20:60, 40:80] = True  # frame pixels x in [40, 80), y in [20, 60)
    # rect (40, 20, 40, 40) covers the mask exactly: the whole crop is person (the outermost
    # crop pixels sit on the rect's edges, half on the mask: excluded)
    m, rgb = em.crop_inputs(img, (40, 20, 40, 40), mask, 16)
    assert m.shape == (16, 16) and m[1:-1, 1:-1].min() == 1.0
    # a rect twice as big, centred on the mask: the middle half is person, the border is not
    m, _ = em.crop_inputs(img, (20, 0, 80, 80), mask, 33)
    assert m[16, 16] == 1 and m[0, 0] == 0 and m[16, 2] == 0
    # crop pixel j sits at frame x = 20 + 2.5 j: the mask's [40, 80) is pixels 9..23 strictly inside
    assert m[9:24, 9:24].min() == 1 and m.sum() == 15 * 15
    # a rect beyond the frame pads with zeros
    m, _ = em.crop_inputs(img, (-400, -400, 100, 100), mask, 16)
    assert m.max() == 0
    with pytest.raises(UserInputError, match="mask"):
        em.crop_inputs(img, (0, 0, 10, 10), np.zeros((5, 5), bool), 16)
    with pytest.raises(UserInputError, match="rect"):
        em.crop_inputs(img, (0, 0, 0, 10), mask, 16)


def test_grabcut_fallback_without_mask(tmp_path, tiny):
    img = np.full((100, 100, 3), 30, np.uint8)
    img[15:95, 35:65] = (200, 150, 120)  # a bright upright "person" on a dark background
    m, _ = em.crop_inputs(img, (0, 0, 100, 100), None, 64)
    assert m.shape == (64, 64)
    inside, outside = m[20:55, 25:38].mean(), np.r_[m[:, :12].ravel(), m[:, 52:].ravel()].mean()
    assert inside > 0.8 and outside < 0.1
    model = em.EmbeddedModel(tiny)
    feats = model.encode(img, (0, 0, 100, 100), None)
    assert model.query(feats, torch.zeros(4, 3)).shape == (4,)


def test_default_weights_ship_and_load():
    if not em.DEFAULT_WEIGHTS.is_file():
        pytest.skip("no embedded weights in this checkout (streamrecon/models/embedded/weights/default.pt)")
    assert em.DEFAULT_WEIGHTS.stat().st_size <= 20 * 1024 * 1024
    raw = torch.load(em.DEFAULT_WEIGHTS, weights_only=True)
    assert raw["meta"].get("command") and "data_seed" in raw["meta"]
    m = em.load_default()
    # a standing person's silhouette: the body centre is inside, far corners are outside
    img = np.zeros((480, 640, 3), np.uint8)
    mask = np.zeros((480, 640), bool)
    mask[60:420, 290:350] = True
    mask[60:110, 300:340] = True
    occ = m.query(m.encode(img, (140, 10, 360, 360), mask), torch.tensor([[0.0, 0.0, 0.0], [0.95, 0.95, 0.9], [-0.9, -0.9, -0.9]]))
    assert occ[0] > 0.5 and occ[1] < 0.5 and occ[2] < 0.5


def test_eval_metrics_on_analytic_spheres():
    pytest.importorskip("igl", reason="the train extra (libigl) is not installed")
    trimesh = pytest.importorskip("trimesh", reason="the train extra (trimesh) is not installed")
    pytest.importorskip("embreex", reason="the train extra (embreex) is not installed")
    from streamrecon.training import evaluate as ev

    a = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    b = trimesh.creation.icosphere(subdivisions=4, radius=0.52)
    va, fa = np.asarray(a.vertices), np.asarray(a.faces)
    vb, fb = np.asarray(b.vertices), np.asarray(b.faces)
    m = ev.mesh_metrics(vb, fb, va, fa, crop_per_metre=1.0, samples=4000, rng=np.random.default_rng(0))
    assert abs(m["chamfer_cm"] - 2.0) < 0.2 and abs(m["p2s_cm"] - 2.0) < 0.2  # 0.02 crop units = 2 cm
    assert m["normal_consistency"] > 0.99
    same = ev.mesh_metrics(va, fa, va, fa, crop_per_metre=0.5, samples=2000, rng=np.random.default_rng(1))
    assert same["chamfer_cm"] < 1e-6
    from streamrecon.training.synth.render import render

    mask = render(va, fa, 64).mask
    assert ev.silhouette_iou(va, fa, mask) == 1.0 and ev.silhouette_iou(vb, fb, mask) < 1.0
    # a far, small fragment is dropped by the largest-component cleanup
    frag = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    v = np.vstack([va, np.asarray(frag.vertices) + 0.9])
    f = np.vstack([fa, np.asarray(frag.faces) + len(va)])
    _, fl = ev.largest_component(v, f)
    assert len(fl) == len(fa)


def test_marching_cubes_of_dense_sphere_field_matches_radius():
    from streamrecon.training import evaluate as ev

    q = lambda p: (p.norm(dim=1) < 0.6).float()  # noqa: E731
    vol = ev.occupancy_volume(q, 48)
    v, f = ev.marching_cubes(vol, 48)
    r = np.linalg.norm(v, axis=1)
    assert len(f) > 1000 and abs(r.mean() - 0.6) < 2.0 / 48


class _BallsAndSheet:
    """An ImplicitModel double: a ball, a smaller detached ball in front of it to the side, and a
    sheet hidden behind the big ball (wider than it, as the shipped weights' depth slab)."""

    name, device = "balls", "cpu"

    def query(self, features, p):
        big = p.norm(dim=1) < 0.3
        small = (p - torch.tensor([0.6, 0.6, -0.2])).norm(dim=1) < 0.1
        sheet = (p[:, 0].abs() < 0.32) & (p[:, 1].abs() < 0.32) & (p[:, 2] > 0.45) & (p[:, 2] < 0.65)
        return (big | small | sheet).float()


def test_eval_cleanup_settings_use_the_product_path():
    from streamrecon.training import evaluate as ev
    from streamrecon.mesh.cleanup import connected_components

    def pieces(cleanup):
        v, f = ev.reconstruct_mesh(_BallsAndSheet(), None, ev.EvalConfig(resolution=48, cleanup=cleanup))
        lab = connected_components(f, len(v))[f[:, 0]]
        return len(np.unique(lab)), v[np.unique(f)]

    (n_none, _), (n_big, v_big), (n_prod, v_prod) = pieces("none"), pieces("largest"), pieces("product")
    assert (n_none, n_big, n_prod) == (3, 1, 2)
    assert np.linalg.norm(v_big, axis=1).max() < 0.35
    assert v_prod[:, 2].max() < 0.35 and v_prod[:, 0].max() > 0.6  # sheet gone, small ball kept
    with pytest.raises(ValueError, match="cleanup"):
        ev.EvalConfig(cleanup="biggest")


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_compiled_encoder_matches_eager(backend, tmp_path):
    """The embedded model's encoder through a compiled backend (ONNX Runtime on CPU) gives the
    eager features within 5e-4 (values up to ~5; 2e-4 seen) and the occupancy within 2e-4 (4e-5
    seen with one set of weights, 1.0e-4 at one point of 4000 with the shipped ones): different
    convolution kernels reorder sums. The engine is cached and reused."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from streamrecon.backends import BackendConfig
    from streamrecon.backends.cache import EngineCache
    from streamrecon.models.embedded import load_default

    eager, fast = load_default(), load_default()
    cfg = BackendConfig(backend=backend, cache_dir=str(tmp_path))
    fast.compile(cfg)
    assert fast.backend == "onnxruntime"
    img = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)  # any picture: the
    mask = np.zeros((120, 100), bool)                                               # shading channel reads it
    mask[10:110, 35:65] = True  # a standing figure
    mask[30:40, 20:80] = True   # arms out
    rect = (0, 5, 100, 100)
    fe, ff = eager.encode(img, rect, mask), fast.encode(img, rect, mask)
    assert torch.allclose(fe.feat, ff.feat, atol=5e-4, rtol=1e-4) and torch.equal(fe.mask, ff.mask)
    pts = torch.rand(4000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(eager.query(fe, pts), fast.query(ff, pts), atol=2e-4)
    [entry] = EngineCache(tmp_path).entries()
    assert entry["status"] == "ok" and entry["fields"]["artefact"].endswith(":encoder")
    load_default().compile(cfg)  # a second model with the same weights reuses the engine
    assert len(EngineCache(tmp_path).entries()) == 1


def test_bf16_encoder_on_cpu_stays_close_to_fp32():
    """--precision bf16 on a CPU with native bfloat16: the encoder runs eagerly in channels-last
    bf16 (ONNX Runtime has no bf16 CPU kernels), the point decoder stays the native fp32 one.
    Against fp32 eager: features within 0.15 (0.042 seen, values up to ~4.5), occupancy within
    0.08 (0.028 seen, mean 3e-4), and a point changes side of the 0.5 level only where fp32 puts
    it within 0.03 of the level (0.0086 seen; 26 of 110592 grid points), at most 1% of the
    inside points: the surface moves by a fraction of a voxel."""
    from streamrecon.backends import BackendConfig
    from streamrecon.backends.hardware import cpu_runs_bf16
    from streamrecon.models.embedded import load_default

    if not cpu_runs_bf16():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 or AMX): bf16 is refused here")
    eager, fast = load_default(), load_default()
    fast.compile(BackendConfig(precision="bf16"))
    assert (fast.backend, fast.decoder_backend) == ("eager", "native")
    img = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    mask = np.zeros((120, 100), bool)
    mask[10:110, 35:65] = True
    mask[30:40, 20:80] = True
    rect = (0, 5, 100, 100)
    fe, ff = eager.encode(img, rect, mask), fast.encode(img, rect, mask)
    assert ff.feat.dtype == torch.float32 and ff.feat.shape == fe.feat.shape
    assert not torch.equal(fe.feat, ff.feat) and torch.allclose(fe.feat, ff.feat, atol=0.15)
    g = torch.linspace(-1, 1, 48)
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    pa, pb = eager.query(fe, pts), fast.query(ff, pts)
    assert float((pa - pb).abs().max()) <= 0.08
    flip = (pa > 0.5) != (pb > 0.5)
    assert int(flip.sum()) <= 0.01 * int((pa > 0.5).sum())
    assert bool(((pa[flip] - 0.5).abs() < 0.03).all())


def test_compiled_encoder_of_a_depth_prior_net_matches_eager(tmp_path):
    """The depth prior's two extra encoder outputs go through the compiled encoder like the
    features do, and the occupancy through it matches eager's."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from streamrecon.backends import BackendConfig

    path = em.save_embedded(tmp_path / "prior.pt", _tiny_depth_prior())
    eager, fast = em.load_embedded(path), em.load_embedded(path)
    fast.compile(BackendConfig(backend="onnxruntime", cache_dir=str(tmp_path / "engines")))
    assert fast.backend == "onnxruntime" and fast.cfg.depth_prior
    fe, ff = eager.encode_crop(_blob()), fast.encode_crop(_blob())
    assert fe.feat.shape[1] == TINY.feat + 2
    assert torch.allclose(fe.feat, ff.feat, atol=5e-4, rtol=1e-4)
    pts = torch.rand(2000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pe, pf = eager.query(fe, pts), fast.query(ff, pts)
    assert torch.allclose(pe, pf, atol=2e-4) and float(pe.std()) > 0.01


def test_engines_build_for_the_embedded_model_then_reuse(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from streamrecon.cli import main

    assert main(["engines", "build", "--engines-dir", str(tmp_path)]) == 0
    assert "1 engine(s) built, 0 reused" in capsys.readouterr().out
    assert main(["engines", "build", "--cache-dir", str(tmp_path)]) == 0
    assert "0 engine(s) built, 1 reused" in capsys.readouterr().out
    assert main(["engines", "list", "--engines-dir", str(tmp_path)]) == 0
    assert ":encoder" in capsys.readouterr().out


def _ball_heldout(radius: float, res: int):
    """(evaluate module, a held-out-style subject: an icosphere of ``radius`` and its mask at
    ``res``); skips without the train extra."""
    pytest.importorskip("igl", reason="the train extra (libigl) is not installed")
    trimesh = pytest.importorskip("trimesh", reason="the train extra (trimesh) is not installed")
    pytest.importorskip("embreex", reason="the train extra (embreex) is not installed")
    from streamrecon.training import evaluate as ev
    from streamrecon.training.synth.render import render

    ball = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    v, f = np.asarray(ball.vertices, np.float32), np.asarray(ball.faces, np.int32)
    return ev, {"vertices": v, "faces": f, "mask": render(v.astype(np.float64), f.astype(np.int64), res).mask,
                "crop_per_metre": np.float64(1.0), "height": np.float64(1.7)}


def test_evaluate_model_scores_the_subjects_from_first_on(monkeypatch, tmp_path):
    """``--first`` shifts the held-out window (the selection set 20-39 vs the reported 0-19)."""
    ev, subject = _ball_heldout(0.3, 32)
    seen = []

    def fake_heldout(cfg, index):
        seen.append(index)
        return subject

    class Ball:
        name, device = "ball", "cpu"

        def encode_crop(self, mask):
            return None

        def query(self, features, p):
            return (p.norm(dim=1) < 0.3).float()

    monkeypatch.setattr(ev, "load_heldout", fake_heldout)
    cfg = ev.EvalConfig(subjects=2, first=5, resolution=32, mask_res=32, samples=500, cache=str(tmp_path))
    res = ev.evaluate_model(Ball(), cfg)
    assert seen == [5, 6] and [r["subject"] for r in res["subjects"]] == [5, 6]
    assert res["mean"]["chamfer_cm"] < 2.0 and res["mean"]["silhouette_iou"] > 0.8
    # the ground-truth surfaces are cached beside the subjects and the second run reads them
    v = ev.SURFACE_CACHE_VERSION
    cached = sorted(p.name for p in ev.heldout_dir(cfg).glob("*_surface32_v*.npz"))
    assert cached == [f"subject_0005_r32_y90_surface32_v{v}.npz", f"subject_0006_r32_y90_surface32_v{v}.npz"]
    real_volume = ev.occupancy_volume
    monkeypatch.setattr(ev, "occupancy_volume", lambda *a: pytest.fail("the cached surface was not used"))
    again = ev.evaluate_model(Ball(), cfg)
    for a, b in zip(res["subjects"], again["subjects"]):
        assert a["chamfer_cm"] == b["chamfer_cm"] and a["normal_consistency"] == b["normal_consistency"]
    # a damaged file, or one made for another subject mesh, is made again
    calls = []
    monkeypatch.setattr(ev, "occupancy_volume", lambda *a: calls.append(1) or real_volume(*a))
    first = ev.heldout_dir(cfg) / cached[0]
    first.write_bytes(first.read_bytes()[:100])
    gv, gf = ev.heldout_surface(cfg, 5, subject)
    assert calls == [1] and len(gf) > 0
    assert ev.heldout_surface(cfg, 5, subject)[1].shape == gf.shape and calls == [1]  # and is good again
    other = dict(subject, vertices=subject["vertices"] * np.float32(0.9))
    ev.heldout_surface(cfg, 5, other)
    assert calls == [1, 1]
    assert not list(ev.heldout_dir(cfg).glob("*.tmp.npz"))  # no temp files left behind


def test_summary_gives_mean_median_and_standard_error():
    from streamrecon.training.evaluate import summarise

    rows = [{"chamfer_cm": c, "iou": i} for c, i in ((1.0, 0.9), (2.0, float("nan")), (3.0, 0.8), (6.0, 1.0))]
    out = summarise(rows, keys=("chamfer_cm", "iou"))
    assert out["mean"]["chamfer_cm"] == 3.0 and out["median"]["chamfer_cm"] == 2.5
    # sample deviation sqrt((4 + 1 + 0 + 9) / 3) over sqrt(4) subjects
    assert abs(out["stderr"]["chamfer_cm"] - np.sqrt(14 / 3) / 2) < 1e-12
    assert abs(out["mean"]["iou"] - 0.9) < 1e-12 and out["median"]["iou"] == 0.9  # the NaN is left out
    assert np.isnan(summarise(rows[:1], keys=("chamfer_cm",))["stderr"]["chamfer_cm"])  # one subject: no error bar


def test_evaluate_model_feeds_shading_weights_the_shaded_view(monkeypatch, tmp_path):
    """Weights with a shading channel get the held-out view's shaded front depth (fixed light)."""
    ev, subject = _ball_heldout(0.5, 32)
    monkeypatch.setattr(ev, "load_heldout", lambda cfg, index: subject)
    got = []

    class ShadedBall:
        name, device = "ball", "cpu"
        cfg = NetConfig(shading=True)

        def encode_crop(self, mask, shading=None):
            got.append(shading)
            return None

        def query(self, features, p):
            return (p.norm(dim=1) < 0.5).float()

    ev.evaluate_model(ShadedBall(), ev.EvalConfig(subjects=1, resolution=32, mask_res=32, samples=200, cache=str(tmp_path)))
    s = got[0]
    m = subject["mask"]
    assert s.shape == (32, 32) and np.all(s[~m] == 0) and abs(float(s[m].mean())) < 1e-4
    assert m[12, 12] and m[19, 19] and s[12, 12] > s[19, 19]  # lit from the upper left (EVAL_LIGHT)
