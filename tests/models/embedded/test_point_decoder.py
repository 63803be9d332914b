"""The native point decoder (native/point_decoder.cpp via streamrecon.models.embedded.native_query) gives
the torch eval path's logits, and the octree's mesh through it is the torch path's mesh."""
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamrecon.models.embedded.model import EmbeddedModel  # noqa: E402
from streamrecon.models.embedded.native_query import NativeDecoder, pack_features  # noqa: E402
from streamrecon.models.embedded.net import EmbeddedNet, NetConfig  # noqa: E402
from streamrecon.native import load_native  # noqa: E402
from paths import MEDIA  # noqa: E402


@pytest.fixture(scope="module")
def native():
    try:
        return load_native()
    except ImportError as exc:  # pragma: no cover - the package build makes it
        pytest.skip(f"native extension not built: {exc}")


def _net(seed, **cfg):
    torch.manual_seed(seed)
    net = EmbeddedNet(NetConfig(in_res=64, widths=(8, 8, 8, 8, 8), z_freqs=3, **cfg))
    for p in net.parameters():  # random non-trivial weights
        p.data.normal_(0, 0.3)
    return net.eval()


def _features(net, seed):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(1, 1, 64, 64, generator=g) > 0.4).float()
    with torch.inference_mode():
        feat = net.encoder(torch.cat([mask] + [torch.rand(1, net.cfg.in_channels - 1, 64, 64, generator=g)], 1)
                           if net.cfg.in_channels > 1 else mask)
    return feat, mask


@pytest.mark.parametrize("depth_prior", [False, True])
@pytest.mark.parametrize("feat_w,mlp", [(16, (16,)), (24, (40, 8)), (96, (48,)), (20, ())])
def test_logits_equal_the_torch_eval_path(native, depth_prior, feat_w, mlp):
    """Random weights, widths that are and are not multiples of the kernel's 16-wide tiles, with
    and without hidden layers and the depth prior; points inside and outside [-1, 1] (zeros
    padding for the image, the z table clamped) and a count that is no multiple of its 32-point
    blocks. Sums run in another order than torch's: logits agree within 1e-4 of values up to ~30."""
    net = _net(1, feat=feat_w, mlp=mlp, depth_prior=depth_prior)
    feat, mask = _features(net, 2)
    pts = torch.rand(3001, 3, generator=torch.Generator().manual_seed(3)) * 2.6 - 1.3
    with torch.inference_mode():
        want = net.query((feat, mask), pts[None])[0].numpy()
    dec = NativeDecoder.from_decoder(net.decoder, native)
    got = dec.logits(pack_features(feat, mask), pts.numpy())
    assert got.shape == want.shape and got.dtype == np.float32
    assert float(np.abs(want).max()) > 1.0  # a non-trivial function
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
    assert dec.logits(pack_features(feat, mask), pts.numpy()[:0]).shape == (0,)


def test_bad_shapes_are_refused(native):
    net = _net(0, feat=16, mlp=(16,))
    dec = NativeDecoder.from_decoder(net.decoder, native)
    packed = pack_features(*_features(net, 0))
    with pytest.raises(ValueError, match="points"):
        dec.logits(packed, np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="feat"):
        native.decode_points(packed.feat, packed.height + 1, packed.width, packed.mask, dec.z_table, dec.mask_w,
                             None, 0.0, dec.weights_t, dec.biases, np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="layer 1"):
        native.decode_points(packed.feat, packed.height, packed.width, packed.mask, dec.z_table, dec.mask_w,
                             None, 0.0, dec.weights_t[:1] + dec.weights_t[:1], dec.biases,
                             np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="last layer"):
        native.decode_points(packed.feat, packed.height, packed.width, packed.mask, dec.z_table, dec.mask_w,
                             None, 0.0, dec.weights_t[:1], dec.biases[:1], np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="depth"):  # a depth prior needs the encoder's 2 extra channels
        native.decode_points(packed.feat, packed.height, packed.width, packed.mask, dec.z_table, dec.mask_w,
                             np.zeros((16, 2), np.float32), 1.0, dec.weights_t, dec.biases,
                             np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="pack_features"):
        pack_features(torch.zeros(2, 16, 8, 8), torch.zeros(2, 1, 32, 32))


def test_auto_on_cpu_uses_it_and_eager_does_not(tmp_path):
    from streamrecon.backends import BackendConfig

    net = _net(4, feat=16, mlp=(16,))
    auto = EmbeddedModel(net).compile(BackendConfig(backend="auto", cache_dir=str(tmp_path)))
    assert auto.decoder_backend == "native"
    eager = EmbeddedModel(_net(4, feat=16, mlp=(16,))).compile(BackendConfig(backend="eager", cache_dir=str(tmp_path)))
    assert eager.decoder_backend == "torch" and eager._native_decoder is None
    assert EmbeddedModel(_net(4, feat=16, mlp=(16,))).decoder_backend == "torch"  # not compiled: torch


def test_octree_mesh_through_the_native_decoder_is_the_torch_mesh(native):
    """The shipped weights on a photo through reconstruct_person (octree, silhouette fill,
    cleanup): the same mesh whichever decoder answers the queries (vertices within 1e-5 of the
    crop's [-1, 1]; occupancies differ by float rounding only, ~1e-7)."""

    import cv2

    from streamrecon.models.embedded import load_default
    from streamrecon.recon import ReconConfig, reconstruct_person

    photo = MEDIA / "astronaut.png"
    if not photo.exists():
        pytest.skip(f"{photo} not found")
    img = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    mask = np.zeros(img.shape[:2], bool)
    mask[50:500, 150:350] = True
    mask[120:200, 80:420] = True
    plain, fast = load_default(), load_default()
    fast._native_decoder = NativeDecoder.from_decoder(fast.net.decoder, native)
    cfg = ReconConfig(resolution=96)
    a = reconstruct_person(plain, img, (0, 0, 512, 512), mask, cfg)
    b = reconstruct_person(fast, img, (0, 0, 512, 512), mask, cfg)
    assert a.num_vertices > 1000
    assert a.meta["num_queries"] == b.meta["num_queries"]
    assert np.array_equal(a.faces, b.faces)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5 * 512)
    c = reconstruct_person(fast, img, (0, 0, 512, 512), mask, replace(cfg, evaluator="dense"))
    assert c.meta["num_queries"] > 2 * b.meta["num_queries"]  # the dense grid goes through it too
