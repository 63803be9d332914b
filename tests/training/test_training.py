"""Training pieces of the embedded model on tiny analytic data (no anny needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from streamrecon.models.embedded.net import EmbeddedNet, NetConfig
from streamrecon.errors import UserInputError
from streamrecon.training.synth.camera import make_camera
from streamrecon.training.synth.generate import SynthConfig, Subject, write_shard
from streamrecon.training import losses
from streamrecon.training.dataset import ShardDataset, view_yaw
from streamrecon.training.loop import TrainConfig, load_checkpoint, step_fn, train, train_precision

TINY = NetConfig(in_res=32, widths=(8, 8, 8, 8, 8), feat=16, mlp=(16,), z_freqs=2)


def ellipsoid_subject(rng, res=32, views=2, n=600):
    """A 'person' that is an ellipsoid (world metres, z up): exact labels and silhouettes."""
    a = np.array([0.25, 0.15, 0.8]) * rng.uniform(0.8, 1.2, 3)
    pts = rng.uniform(-1, 1, (n, 3)) * (a * 1.4)
    occ = ((pts / a) ** 2).sum(1) < 1
    ring = rng.normal(size=(2000, 3))
    surf = ring / np.linalg.norm(ring, axis=1, keepdims=True) * a
    cams, masks = [], []
    from streamrecon.training.synth.render import pixel_grid

    for k in range(views):
        cam = make_camera(surf, yaw=float(rng.uniform(-1.2, 1.2)))
        # silhouette: pixel (x, y) inside when some depth is inside the ellipsoid
        xy = pixel_grid(res).reshape(-1, 2)
        zs = np.linspace(-1, 1, 64)
        q = np.concatenate([np.repeat(xy, len(zs), 0), np.tile(zs, len(xy))[:, None]], 1)
        inv = np.linalg.inv(cam.matrix)
        w = q @ inv[:3, :3].T + inv[:3, 3]
        m = (((w / a) ** 2).sum(1) < 1).reshape(len(xy), len(zs)).any(1).reshape(res, res)
        cams.append(cam)
        masks.append(m)
    return Subject(surf, np.zeros((0, 3), np.int64), pts, occ, cams, np.stack(masks), None, 1.6)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards") / "seed0"
    rng = np.random.default_rng(0)
    cfg = SynthConfig(res=32, views=2)
    for s in range(2):
        write_shard(root / f"shard_{s:05d}.npz", [ellipsoid_subject(rng) for _ in range(4)], list(range(4 * s, 4 * s + 4)), cfg)
    write_shard(root / "shard_val.npz", [ellipsoid_subject(rng) for _ in range(2)], [100, 101], cfg)
    return root


def _inside_share_on_silhouette(b) -> float:
    """Share of a batch's inside-labelled points that project onto its input silhouette."""
    grid = torch.stack([b.points[..., 0], -b.points[..., 1]], -1)[:, :, None]
    on = torch.nn.functional.grid_sample(b.image, grid, align_corners=True)[:, 0, :, 0]
    return float((on[b.labels > 0.5] > 0.25).float().mean())


def test_batch_shapes_labels_and_mask_agree(shard_dir):
    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    assert ds.num_subjects == 8
    g = torch.Generator().manual_seed(0)
    b = ds.batch(g, 6, 256, 32, 32, mask_noise=0, free=0.25)
    assert b.image.shape == (6, 1, 32, 32) and b.points.shape == (6, 320, 3) and b.labels.shape == (6, 320)
    # inside points project onto the silhouette (flips included): the crop maps agree.
    assert _inside_share_on_silhouette(b) > 0.97
    # free-space points are empty and lie outside the body's depth range
    assert b.labels[:, 256:].sum() == 0
    # rays carry the mask value of their pixel
    rg = torch.stack([b.rays[..., 0], -b.rays[..., 1]], -1)[:, :, None]
    mv = torch.nn.functional.grid_sample(b.image, rg, align_corners=True)[:, 0, :, 0]
    assert torch.allclose(mv, b.ray_mask, atol=1e-4)


def test_refresh_joins_new_shards_after_the_loaded_ones(shard_dir, tmp_path):
    """A shard written after the first load (generation running beside training) is appended
    behind the joined data: same tensors as loading all shards at once, in the same order."""
    import shutil

    root = tmp_path / "seed0"
    root.mkdir()
    shutil.copy(shard_dir / "shard_00000.npz", root)
    ds = ShardDataset(root)
    assert ds.num_subjects == 4
    shutil.copy(shard_dir / "shard_00001.npz", root)
    assert ds.refresh() == 8
    full = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    for k in ("masks", "points", "occ", "cams", "subject"):
        assert torch.equal(getattr(ds, k), getattr(full, k)), k
    assert ds.refresh() == 8  # nothing new: nothing changes


def test_a_shard_with_other_settings_is_refused_and_the_loaded_data_kept(shard_dir, tmp_path):
    import shutil

    root = tmp_path / "seed0"
    root.mkdir()
    shutil.copy(shard_dir / "shard_00000.npz", root)
    ds = ShardDataset(root)
    before = ds.masks.clone()
    rng = np.random.default_rng(5)
    write_shard(root / "shard_00001.npz", [ellipsoid_subject(rng, res=16) for _ in range(2)], [8, 9], SynthConfig(res=16, views=2))
    with pytest.raises(ValueError, match="shard_00001.npz: masks per view is"):
        ds.refresh()
    assert ds.num_subjects == 4 and torch.equal(ds.masks, before)


def test_shards_with_other_view_counts_join_as_items(shard_dir, tmp_path):
    """Items are views: a shard rendered with 3 views per subject joins one with 2."""
    import shutil

    root = tmp_path / "seed0"
    root.mkdir()
    shutil.copy(shard_dir / "shard_00000.npz", root)
    ds = ShardDataset(root)
    n0 = len(ds)
    rng = np.random.default_rng(5)
    write_shard(root / "shard_00001.npz", [ellipsoid_subject(rng, views=3) for _ in range(2)], [8, 9], SynthConfig(res=32, views=3))
    assert ds.refresh() == 6 and len(ds) == n0 + 6
    assert torch.equal(ds.subject[n0:], torch.tensor([4, 4, 4, 5, 5, 5]))


def test_yaw_filter_keeps_front_views(shard_dir):
    """Only views within the limit are kept (as items, each pointing at its subject's points)."""
    from streamrecon.training.dataset import read_shard

    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",), max_yaw_deg=30)
    shards = [read_shard(shard_dir / f"shard_{s:05d}.npz") for s in range(2)]
    cams = torch.from_numpy(np.concatenate([d["cameras"] for d in shards]))  # [S, V, 4, 4]
    yaw = view_yaw(cams)
    ok = yaw.abs() <= np.deg2rad(30) + 1e-6
    assert 0 < int(ok.sum()) < ok.numel()  # the fixture has views on both sides of the limit
    assert len(ds) == int(ok.sum()) and ds.views_read == ok.numel()
    assert torch.equal(ds.cams, cams[ok]) and torch.equal(ds.subject, torch.nonzero(ok)[:, 0])
    assert ds.num_subjects == 8 and ds.masks.shape[0] == len(ds)
    # a batch of the kept views reads their own subjects' points (the cameras of another subject
    # would map its points elsewhere; the exact map is the ds.subject check above)
    b = ds.batch(torch.Generator().manual_seed(0), len(ds), 256, 8, 32, mask_noise=0, free=0, items=torch.arange(len(ds)), flip=False)
    assert _inside_share_on_silhouette(b) > 0.97


def test_ray_points_layout_and_silhouette_loss():
    rays = torch.tensor([[[0.1, -0.2], [0.5, 0.5]]])
    p = losses.ray_points(rays, 8, torch.Generator().manual_seed(0))
    assert p.shape == (1, 16, 3)
    assert torch.allclose(p[0, :8, :2], rays[0, 0].expand(8, 2)) and torch.all(p[0, 1:8, 2] > p[0, :7, 2])
    logits = torch.full((1, 16), -8.0)
    logits[0, 3] = 8.0  # ray 0 crosses the body, ray 1 does not
    good = losses.silhouette_loss(logits, torch.tensor([[1.0, 0.0]]), 8)
    bad = losses.silhouette_loss(logits, torch.tensor([[0.0, 1.0]]), 8)
    assert good < 0.01 < 1.0 < bad


def test_body_range_holds_the_inside_points_and_rays_stay_in_it(shard_dir):
    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    b = ds.batch(torch.Generator().manual_seed(3), 6, 256, 16, 32, mask_noise=0, free=0.5)
    lo, hi = b.zrange[:, :1], b.zrange[:, 1:]
    assert torch.all(lo < hi) and torch.all(lo >= -1) and torch.all(hi <= 1)
    z = b.points[..., 2]
    inside = b.labels > 0.5
    assert torch.all((z >= lo) | ~inside) and torch.all((z <= hi) | ~inside)
    # the free points (after the 256 labelled ones) lie outside the range: the two complement
    zf = z[:, 256:]
    assert torch.all((zf <= lo) | (zf >= hi))
    # the ellipsoids are ~0.3 m deep: the range is much narrower than the cube
    assert float((hi - lo).max()) < 1.0
    rp = losses.ray_points(b.rays, 8, torch.Generator().manual_seed(4), b.zrange).reshape(6, -1, 8, 3)
    assert torch.all(rp[..., 2] >= lo[:, :, None]) and torch.all(rp[..., 2] <= hi[:, :, None])
    assert torch.all(rp[..., 1:, 2] > rp[..., :-1, 2])  # still stratified along each ray
    assert torch.allclose(rp[..., :2], b.rays[:, :, None, :].expand(-1, -1, 8, -1))


def test_uniform_share_draws_from_the_stored_uniform_samples(shard_dir, tmp_path):
    # a shard whose last 100 of 500 points are 'uniform' ones, marked far away at z = 0.9 (crop)
    rng = np.random.default_rng(5)
    subs = [ellipsoid_subject(rng, n=500) for _ in range(2)]
    for s in subs:
        s.points[400:] = [0.0, 0.0, 5.0]  # world metres, well away from the ellipsoid
        s.occupancy[400:] = False
    root = tmp_path / "seed0"
    write_shard(root / "shard_00000.npz", subs, [0, 1], SynthConfig(res=32, views=2, points=500, uniform_share=0.2))
    ds = ShardDataset(root)
    assert ds.uniform_points == 100
    b0 = ds.batch(torch.Generator().manual_seed(0), 4, 1000, 8, 32, mask_noise=0, free=0)
    b1 = ds.batch(torch.Generator().manual_seed(0), 4, 1000, 8, 32, mask_noise=0, free=0, uniform=0.6)
    # the marked points land far outside the crop cube (5 m away); all others inside it
    far = lambda b: float((b.points.abs() > 2).any(-1).float().mean())  # noqa: E731
    assert abs(far(b0) - 0.2) < 0.03  # as stored
    assert abs(far(b1) - 0.6) < 1e-6  # exactly the asked share
    # packing keeps the count right
    from streamrecon.training.pack import pack_shard

    pack_shard(root / "shard_00000.npz", tmp_path / "packed" / "shard_00000.npz", 250)
    with np.load(tmp_path / "packed" / "shard_00000.npz") as z:
        kept = z["points"][0]
        assert int(z["uniform_points"]) == int((np.abs(kept.astype(np.float32)) == 5.0).any(1).sum())


def ellipsoid_depths(sub, a, res=32):
    """Exact front/back crop z of an ellipsoid with semi-axes ``a`` under each pixel of each view."""
    from streamrecon.training.synth.render import pixel_grid

    xy = pixel_grid(res).reshape(-1, 2)
    out = []
    for cam in sub.cameras:
        inv = np.linalg.inv(cam.matrix)
        w0 = np.concatenate([xy, np.zeros((len(xy), 1))], 1) @ inv[:3, :3].T + inv[:3, 3]
        d = inv[:3, 2]  # world step per unit of crop z
        qa = ((d / a) ** 2).sum()
        qb = 2 * ((w0 * d) / a ** 2).sum(1)
        qc = ((w0 / a) ** 2).sum(1) - 1
        disc = qb ** 2 - 4 * qa * qc
        sq = np.sqrt(np.where(disc > 0, disc, np.nan))
        zf, zb = (-qb - sq) / (2 * qa), (-qb + sq) / (2 * qa)
        out.append(np.stack([np.nan_to_num(zf, nan=np.inf), np.nan_to_num(zb, nan=np.inf)]).reshape(2, res, res))
    return np.stack(out)


def test_ray_points_label_the_front_and_back_surfaces(tmp_path):
    rng = np.random.default_rng(7)
    subs, axes = [], []
    for _ in range(3):
        replay = np.random.default_rng()
        replay.bit_generator.state = rng.bit_generator.state
        a = np.array([0.25, 0.15, 0.8]) * replay.uniform(0.8, 1.2, 3)  # the draw ellipsoid_subject makes first
        sub = ellipsoid_subject(rng)
        sub.depths = ellipsoid_depths(sub, a)
        sub.masks = np.isfinite(sub.depths[:, 0])
        subs.append(sub)
        axes.append(a)
    root = tmp_path / "seed0"
    write_shard(root / "shard_00000.npz", subs, [0, 1, 2], SynthConfig(res=32, views=2, points=600, depths=True))
    ds = ShardDataset(root)
    assert ds.has_depths and ds.depths.shape == (6, 2, 32, 32)  # 3 subjects x 2 views (all within the yaw limit)
    items = torch.arange(6)
    b = ds.batch(torch.Generator().manual_seed(0), 6, 64, 8, 32, mask_noise=0, free=0, items=items, flip=False, ray_points=400)
    pts, lab = b.points[:, 64:], b.labels[:, 64:]
    assert pts.shape == (6, 400, 3) and torch.equal(lab.reshape(6, 100, 4)[0, 0], torch.tensor([0.0, 1.0, 1.0, 0.0]))
    # the labels agree with the exact ellipsoid (float16 depths: allow a hair at the surface)
    truth = []
    for i in range(6):
        cam = ds.cams[i].double().numpy()
        w = (pts[i].double().numpy() - cam[:3, 3]) @ np.linalg.inv(cam[:3, :3]).T
        truth.append(((w / axes[i // 2]) ** 2).sum(1) < 1)
    truth = torch.from_numpy(np.stack(truth))
    assert float(((lab > 0.5) == truth).float().mean()) > 0.97
    assert float((lab > 0.5).float().mean()) == 0.5
    # each ray's four points lie on one pixel ray, ordered front to back
    r = pts.reshape(6, 100, 4, 3)
    assert torch.allclose(r[..., :2], r[:, :, :1, :2].expand_as(r[..., :2]))
    assert torch.all(r[..., 1:, 2] >= r[..., :-1, 2])
    # shards without depth maps refuse the option with a message
    with pytest.raises(ValueError, match="depth maps"):
        ShardDataset(_plain_shards(tmp_path)).batch(torch.Generator(), 2, 16, 4, 32, ray_points=8)


def _plain_shards(tmp_path):
    root = tmp_path / "plain" / "seed0"
    rng = np.random.default_rng(1)
    write_shard(root / "shard_00000.npz", [ellipsoid_subject(rng) for _ in range(2)], [0, 1], SynthConfig(res=32, views=2))
    return root


def test_sil_range_and_mask_noise_are_checked():
    assert TrainConfig(out="x", sil_range="cube").sil_range == "cube"
    with pytest.raises(UserInputError, match="--sil-range"):
        TrainConfig(out="x", sil_range="slab")
    assert TrainConfig(out="x", mask_noise=0.0).mask_noise == 0.0
    with pytest.raises(UserInputError, match="--mask-noise"):
        TrainConfig(out="x", mask_noise=1.5)


def test_steps_reduce_loss_on_fixed_batch(shard_dir):
    torch.manual_seed(0)
    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    batch = ds.batch(torch.Generator().manual_seed(1), 4, 256, 16, TINY.in_res, mask_noise=0)
    net = EmbeddedNet(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    cfg = TrainConfig(out="unused", sil_depths=8, sil_weight=0.05)
    first = [float(step_fn(net, opt, batch, cfg, torch.Generator().manual_seed(2))["loss"]) for _ in range(2)]
    for _ in range(20):
        last = float(step_fn(net, opt, batch, cfg, torch.Generator().manual_seed(2))["loss"])
    assert last < first[0] * 0.9


def test_train_checkpoints_and_resume(shard_dir, tmp_path):
    out = tmp_path / "run"
    common = dict(out=str(out), data_dir=str(shard_dir.parent), generate=False, batch=2, points=64, sil_rays=8,
                  sil_depths=4, val_every=2, threads=1, net=TINY.to_json())
    best = train(TrainConfig(steps=2, **common), progress=False)
    assert best.is_file() and (out / "last.pt").is_file()
    ck = load_checkpoint(out / "last.pt")  # weights_only=True inside
    assert ck["step"] == 2 and json.loads(ck["config"])["steps"] == 2
    assert json.loads(ck["config"])["schedule_hours"] == 0.0  # --steps sets the schedule
    # the run records the number format it trained in (--precision auto resolved for this machine)
    assert json.loads(ck["config"])["precision"] == train_precision("auto", "cpu")
    with pytest.raises(Exception, match="--resume"):
        train(TrainConfig(steps=3, **common), progress=False)
    train(TrainConfig(steps=3, **common), resume=True, progress=False)
    ck2 = load_checkpoint(out / "last.pt")
    assert ck2["step"] == 3
    # resumed weights differ from the first run's (training went on), and are finite
    assert any(not torch.equal(ck["model"][k], ck2["model"][k]) for k in ck["model"])
    from streamrecon.models.embedded.model import load_embedded

    m = load_embedded(best)
    assert m.meta["data_seed"] == 0
    # train --export: the run's final weights (last.pt) in the package format; --export-best: best.pt
    from streamrecon.cli import main

    assert main(["train", "--out", str(out), "--export", str(tmp_path / "final.pt")]) == 0
    final = load_embedded(tmp_path / "final.pt").net.state_dict()
    assert all(torch.equal(final[k], ck2["model"][k]) for k in ck2["model"])
    assert main(["train", "--out", str(out), "--export", str(tmp_path / "b.pt"), "--export-best"]) == 0
    assert (tmp_path / "b.pt").read_bytes() == best.read_bytes()
    # a budget-only run (no --steps) records its schedule: --hours of this first invocation
    common["out"] = str(tmp_path / "timed")
    train(TrainConfig(hours=0.0003, **common), progress=False)
    assert json.loads(load_checkpoint(tmp_path / "timed" / "last.pt")["config"])["schedule_hours"] == 0.0003


def test_schedule_follows_the_first_invocations_budget():
    """With neither --steps nor --schedule-hours the cosine runs over --hours of the run's first
    invocation; a resume keeps the run's schedule (0, constant, for runs made before the rule);
    an explicit --schedule-hours wins (0: constant), and --steps makes it moot."""
    import json as _json

    from streamrecon.training.loop import schedule_hours

    def ck(h):
        return {"config": _json.dumps({"schedule_hours": h})}

    assert schedule_hours(TrainConfig(out="x", hours=0.5), None) == 0.5
    assert schedule_hours(TrainConfig(out="x", hours=2.0), ck(0.5)) == 0.5  # resumed: the run's own
    assert schedule_hours(TrainConfig(out="x", hours=2.0), ck(0.0)) == 0.0  # an old constant-rate run stays so
    assert schedule_hours(TrainConfig(out="x", hours=2.0), {"config": "{}"}) == 0.0
    assert schedule_hours(TrainConfig(out="x", hours=1.0, schedule_hours=3.0), ck(0.5)) == 3.0
    assert schedule_hours(TrainConfig(out="x", hours=1.0, schedule_hours=0.0), ck(0.5)) == 0.0  # asked: constant
    assert schedule_hours(TrainConfig(out="x", hours=1.0, schedule_hours=0.0), None) == 0.0
    assert schedule_hours(TrainConfig(out="x", hours=1.0, steps=10), None) == 0.0


def test_threads_default_to_every_usable_core():
    from streamrecon.stream.stages import usable_cores
    from streamrecon.training.loop import train_threads

    assert train_threads(TrainConfig(out="x")) == usable_cores()
    assert train_threads(TrainConfig(out="x", threads=1)) == 1


def test_train_refuses_ray_points_without_depth_maps(tmp_path):
    root = _plain_shards(tmp_path)
    cfg = TrainConfig(out=str(tmp_path / "run"), data_dir=str(root.parent), generate=False, steps=1, batch=2, points=16,
                      ray_points=8, threads=1, net=TINY.to_json())
    write_shard(root / "shard_val.npz", [ellipsoid_subject(np.random.default_rng(2))], [100], SynthConfig(res=32, views=2))
    with pytest.raises(UserInputError, match="--ray-points"):
        train(cfg, progress=False)


def test_step_without_silhouette_term_matches_occupancy_loss(shard_dir):
    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    batch = ds.batch(torch.Generator().manual_seed(1), 3, 128, 16, TINY.in_res, mask_noise=0)
    torch.manual_seed(0)
    net = EmbeddedNet(TINY)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    out = step_fn(net, opt, batch, TrainConfig(out="unused", sil_weight=0.0, sil_depths=4, precision="fp32"))
    with torch.no_grad():
        net.train()
        ref = losses.occupancy_loss(net(batch.image, batch.points), batch.labels)
    assert float(out["sil"]) == 0.0 and abs(float(out["loss"]) - float(ref)) < 1e-6


def test_mirror_teacher_targets_are_mirror_symmetric_and_enter_the_loss(shard_dir, tmp_path):
    """--mirror-teacher: the soft labels are the teacher's mirror-averaged answer (the same for a
    view and its mirror image at mirrored points), weighted by --teacher-weight in the loss; a
    teacher that reads other inputs is refused with a message."""
    from streamrecon.models.embedded.model import save_embedded
    from streamrecon.errors import UserInputError
    from streamrecon.training.loop import _mirror_teacher, mirror_averaged_probs

    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    batch = ds.batch(torch.Generator().manual_seed(1), 3, 128, 16, TINY.in_res, mask_noise=0, flip=False)
    torch.manual_seed(3)
    teacher = EmbeddedNet(TINY).eval()
    t = mirror_averaged_probs(teacher, batch.image, batch.points)
    mirrored = torch.cat([-batch.points[..., :1], batch.points[..., 1:]], -1)
    assert torch.allclose(t, mirror_averaged_probs(teacher, batch.image.flip(-1), mirrored), atol=1e-6)
    with torch.no_grad():  # and it is not the plain answer (the tiny net is not symmetric)
        assert float((torch.sigmoid(teacher(batch.image, batch.points)) - t).abs().max()) > 1e-3
    torch.manual_seed(0)
    net = EmbeddedNet(TINY)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    for w in (1.0, 0.25):
        out = step_fn(net, opt, batch, TrainConfig(out="unused", sil_weight=0.0, mirror_teacher="t.pt", teacher_weight=w, precision="fp32"), teacher=teacher)
        with torch.no_grad():
            net.train()
            logits = net(batch.image, batch.points)
            ref = (1 - w) * losses.occupancy_loss(logits, batch.labels) + w * losses.occupancy_loss(logits, t)
        assert abs(float(out["loss"]) - float(ref)) < 1e-6 and abs(float(out["teach"]) - float(losses.occupancy_loss(logits, t))) < 1e-6
        assert abs(float(out["labels"]) - float(losses.occupancy_loss(logits, batch.labels))) < 1e-6
    assert all(q.grad is None for q in teacher.parameters())  # nothing flows into the teacher
    with pytest.raises(UserInputError, match="--teacher-weight"):
        TrainConfig(out="x", mirror_teacher="t.pt", teacher_weight=1.5)
    with pytest.raises(UserInputError, match="--mirror-teacher PATH"):  # a weight with nothing to weigh is a mistake
        TrainConfig(out="x", teacher_weight=0.8)
    save_embedded(tmp_path / "t.pt", teacher)
    with pytest.raises(UserInputError, match="input channels"):
        _mirror_teacher(str(tmp_path / "t.pt"), NetConfig.from_json({**TINY.to_json(), "shading": True}), "cpu")
    with pytest.raises(UserInputError, match="32-pixel crops, this net 64"):
        _mirror_teacher(str(tmp_path / "t.pt"), NetConfig.from_json({**TINY.to_json(), "in_res": 64}), "cpu")
    loaded = _mirror_teacher(str(tmp_path / "t.pt"), TINY, "cpu")
    assert not loaded.training and not any(q.requires_grad for q in loaded.parameters())


def _depth_shards(tmp_path, n=3):
    rng = np.random.default_rng(7)
    subs = []
    for _ in range(n):
        replay = np.random.default_rng()
        replay.bit_generator.state = rng.bit_generator.state
        a = np.array([0.25, 0.15, 0.8]) * replay.uniform(0.8, 1.2, 3)
        sub = ellipsoid_subject(rng)
        sub.depths = ellipsoid_depths(sub, a)
        sub.masks = np.isfinite(sub.depths[:, 0])
        subs.append(sub)
    root = tmp_path / "depthy" / "seed0"
    cfg = SynthConfig(res=32, views=2, points=600, depths=True)
    write_shard(root / "shard_00000.npz", subs[:-1], list(range(n - 1)), cfg)
    write_shard(root / "shard_val.npz", subs[-1:], [100], cfg)
    return root


def test_shading_channel_follows_the_mask_and_the_mirror(tmp_path):
    ds = ShardDataset(_depth_shards(tmp_path), exclude=("shard_val.npz",))
    items = torch.arange(4)
    kw = dict(mask_noise=0, free=0, items=items)
    plain = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=False, shading=True, **kw)
    assert plain.image.shape == (4, 2, 32, 32)
    m, s = plain.image[:, 0] > 0.5, plain.image[:, 1]
    assert torch.all(s[~m] == 0) and float(s[m].std()) > 0.3  # shaded inside, nothing outside
    flipped = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=True, shading=True, **kw)
    for i in range(4):  # a mirrored item mirrors both channels together
        fm = flipped.image[i, 0] > 0.5
        assert torch.all(flipped.image[i, 1][~fm] == 0)
    # perturbed masks: the channel is normalised within the mask the network reads, so its
    # support never reveals the exact outline (a dilated mask shows a ring of black background)
    noisy = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=False, shading=True,
                     **{**kw, "mask_noise": 1.0})
    nm, ns = noisy.image[:, 0] > 0.5, noisy.image[:, 1]
    assert not torch.equal(nm, m) and torch.all(ns[~nm] == 0)
    ring = nm & ~m  # dilated pixels: background, darker than the person's mean
    assert ring.any() and float(ns[ring].mean()) < 0
    with pytest.raises(ValueError, match="depth maps"):
        ShardDataset(_plain_shards(tmp_path)).batch(torch.Generator(), 2, 16, 4, 32, shading=True)


def test_depth_targets_are_the_depth_maps_at_their_pixels_and_follow_the_mirror(tmp_path):
    ds = ShardDataset(_depth_shards(tmp_path), exclude=("shard_val.npz",))
    items = torch.arange(4)
    kw = dict(mask_noise=0, free=0, items=items, depth_pixels=50)
    plain = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=False, **kw)
    assert plain.depth_xy.shape == (4, 50, 2) and plain.depth_z.shape == (4, 50, 2) and plain.cm.shape == (4,)
    cols = torch.round((plain.depth_xy[..., 0] + 1) * 31 / 2).long()
    rows = torch.round((1 - plain.depth_xy[..., 1]) * 31 / 2).long()
    for i in range(4):
        assert torch.all(ds.masks[i][rows[i], cols[i]])  # on-person pixels only
        want = ds.depths[i][:, rows[i], cols[i]].T.float()
        ok = plain.depth_ok[i] > 0
        assert ok.float().mean() > 0.9 and torch.equal(plain.depth_z[i][ok], want[ok])
        assert torch.all(want[ok][:, 1] > want[ok][:, 0])  # front before back
    flipped = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=True, **kw)
    mirrored = flipped.points[:, :1, 0] == -plain.points[:, :1, 0]  # [4, 1]: the items the batch mirrored
    assert mirrored.any() and not mirrored.all()
    sx = torch.where(mirrored, -1.0, 1.0)
    assert torch.equal(flipped.depth_xy[..., 0], plain.depth_xy[..., 0] * sx)
    assert torch.equal(flipped.depth_z, plain.depth_z)  # mirroring keeps every depth
    assert ds.batch(torch.Generator(), 2, 16, 4, 32).depth_xy is None
    with pytest.raises(ValueError, match="depth maps"):
        ShardDataset(_plain_shards(tmp_path)).batch(torch.Generator(), 2, 16, 4, 32, depth_pixels=8)


def test_depth_prior_net_learns_the_depth_maps_and_trains_end_to_end(tmp_path):
    from streamrecon.models.embedded.model import load_embedded

    root = _depth_shards(tmp_path)
    ds = ShardDataset(root, exclude=("shard_val.npz",))
    net_cfg = {**TINY.to_json(), "depth_prior": True}
    torch.manual_seed(0)
    net = EmbeddedNet(NetConfig.from_json(net_cfg))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    cfg = TrainConfig(out="unused", sil_depths=8, depth_pixels=64)
    batch = ds.batch(torch.Generator().manual_seed(1), 4, 128, 16, 32, mask_noise=0, depth_pixels=64)
    first = float(step_fn(net, opt, batch, cfg, torch.Generator().manual_seed(2))["depth_cm"])
    for _ in range(40):
        last = float(step_fn(net, opt, batch, cfg, torch.Generator().manual_seed(2))["depth_cm"])
    assert last < 0.5 * first
    common = dict(data_dir=str(root.parent), generate=False, batch=2, points=32, sil_rays=8, sil_depths=4,
                  val_every=1, threads=1, depth_pixels=16)
    best = train(TrainConfig(out=str(tmp_path / "run"), steps=2, net=net_cfg, **common), progress=False)
    model = load_embedded(best)
    assert model.cfg.depth_prior
    rec = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert rec["depth_cm"] > 0
    assert rec["val_depth_cm"] > 0  # the depth maps' error on the validation people, logged beside val_iou
    plain = _plain_shards(tmp_path)
    write_shard(plain / "shard_val.npz", [ellipsoid_subject(np.random.default_rng(2))], [100], SynthConfig(res=32, views=2))
    with pytest.raises(UserInputError, match="--net depth_prior"):
        train(TrainConfig(out=str(tmp_path / "run2"), steps=1, net=net_cfg, **{**common, "data_dir": str(plain.parent)}),
              progress=False)
    with pytest.raises(UserInputError, match="--depth-pixels"):
        TrainConfig(out="x", depth_pixels=0)


def test_a_new_run_has_the_depth_prior_unless_told_or_started_from_weights_without_it(tmp_path):
    from streamrecon.models.embedded.model import save_embedded
    from streamrecon.training.loop import train_net_config

    assert train_net_config(TrainConfig(out="x")).depth_prior
    assert not train_net_config(TrainConfig(out="x", net={"depth_prior": False})).depth_prior
    plain = save_embedded(tmp_path / "plain.pt", EmbeddedNet(TINY))
    assert not train_net_config(TrainConfig(out="x", init=str(plain))).depth_prior  # e.g. the shipped weights
    prior = save_embedded(tmp_path / "prior.pt", EmbeddedNet(NetConfig.from_json({**TINY.to_json(), "depth_prior": True})))
    got = train_net_config(TrainConfig(out="x", init=str(prior), net=TINY.to_json()))
    assert not got.depth_prior  # --net wins
    assert train_net_config(TrainConfig(out="x", init=str(prior))).depth_prior


def test_train_init_widens_shipped_style_weights_for_shading(tmp_path):
    from streamrecon.models.embedded.model import load_embedded, save_embedded
    from streamrecon.models.embedded.net import widen_inputs

    torch.manual_seed(0)
    src = EmbeddedNet(TINY)
    init = save_embedded(tmp_path / "init.pt", src)
    root = _depth_shards(tmp_path)
    wide = {**TINY.to_json(), "shading": True}
    common = dict(data_dir=str(root.parent), generate=False, batch=2, points=32, sil_rays=8, sil_depths=4,
                  val_every=1, threads=1, init=str(init))
    out = tmp_path / "run0"
    train(TrainConfig(out=str(out), hours=0.0, net=wide, **common), progress=False)  # no step: the start
    start = load_checkpoint(out / "last.pt")["model"]
    want = widen_inputs(src.state_dict(), NetConfig.from_json(wide))
    assert all(torch.equal(start[k], want[k]) for k in want)
    best = train(TrainConfig(out=str(tmp_path / "run1"), steps=2, net=wide, **common), progress=False)
    assert load_embedded(best).cfg.shading
    with pytest.raises(UserInputError, match="architecture differs in feat"):
        train(TrainConfig(out=str(tmp_path / "run2"), steps=1, net={**wide, "feat": 8}, **common), progress=False)
    plain = _plain_shards(tmp_path)
    write_shard(plain / "shard_val.npz", [ellipsoid_subject(np.random.default_rng(2))], [100], SynthConfig(res=32, views=2))
    with pytest.raises(UserInputError, match="--net shading"):
        train(TrainConfig(out=str(tmp_path / "run3"), steps=1, net=wide, **{**common, "data_dir": str(plain.parent)}),
              progress=False)


def test_train_says_when_no_view_is_within_the_yaw_limit(shard_dir, tmp_path):
    from streamrecon.errors import UserInputError

    cfg = TrainConfig(out=str(tmp_path / "run"), data_dir=str(shard_dir.parent), generate=False, batch=2, points=64,
                      sil_rays=8, sil_depths=4, threads=1, net=TINY.to_json(), max_yaw_deg=0.001, steps=1)
    with pytest.raises(UserInputError, match="views read, none within --max-yaw-deg"):
        train(cfg, progress=False)


def test_precision_is_checked_and_auto_resolves_to_a_format_the_device_runs():
    with pytest.raises(UserInputError, match="--precision"):
        TrainConfig(out="x", precision="fp16")
    assert train_precision("fp32", "cpu") == "fp32" and train_precision("bf16", "cpu") == "bf16"
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert train_precision("auto", "cpu") == ("bf16" if native else "fp32")
    if not torch.cuda.is_available():
        assert train_precision("auto", "cuda") == "fp32"


def test_bf16_encoder_pass_gives_fp32_features_near_the_fp32_ones_and_trains(shard_dir):
    """The bf16 path changes the number format of the convolutions only: its features are fp32,
    within bfloat16's rounding (8 bits of mantissa: ~1% of the features' scale) of the fp32
    pass, every encoder weight gets a gradient, and steps on a fixed batch lower the loss."""
    from streamrecon.training.loop import encode_for_training

    torch.manual_seed(0)
    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    batch = ds.batch(torch.Generator().manual_seed(1), 4, 256, 16, TINY.in_res, mask_noise=0)
    net = EmbeddedNet(TINY)
    ref, _ = encode_for_training(net, batch.image, "fp32")
    got, mask = encode_for_training(net, batch.image, "bf16")
    assert got.dtype == torch.float32 and torch.equal(mask, batch.image[:, :1])
    assert float((got - ref).abs().max()) < 0.03 * float(ref.abs().max())
    assert float((got - ref).abs().max()) > 0  # it did run in bf16
    got.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.encoder.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    cfg = TrainConfig(out="unused", sil_depths=8, precision="bf16")
    first = float(step_fn(net, opt, batch, cfg, torch.Generator().manual_seed(2))["loss"])
    for _ in range(20):
        last = float(step_fn(net, opt, batch, cfg, torch.Generator().manual_seed(2))["loss"])
    assert last < first * 0.9


def _body_shards(tmp_path, n=3):
    """Ellipsoid people whose 'fitted body' is the same ellipsoid shrunk by 20%."""
    rng = np.random.default_rng(11)
    subs = []
    for _ in range(n):
        replay = np.random.default_rng()
        replay.bit_generator.state = rng.bit_generator.state
        a = np.array([0.25, 0.15, 0.8]) * replay.uniform(0.8, 1.2, 3)
        sub = ellipsoid_subject(rng)
        sub.depths = ellipsoid_depths(sub, a)
        sub.masks = np.isfinite(sub.depths[:, 0])
        sub.body_depths = ellipsoid_depths(sub, 0.8 * a)
        sub.landmarks = np.zeros((33, 3), np.float32)
        subs.append(sub)
    root = tmp_path / "bodies" / "seed0"
    cfg = SynthConfig(res=32, views=2, points=600, depths=True, body=True)
    write_shard(root / "shard_00000.npz", subs[:-1], list(range(n - 1)), cfg)
    write_shard(root / "shard_val.npz", subs[-1:], [100], cfg)
    return root


def test_body_channels_are_the_fitted_depths_inside_the_person_and_follow_the_mirror(tmp_path):
    ds = ShardDataset(_body_shards(tmp_path), exclude=("shard_val.npz",))
    assert ds.has_body
    items = torch.arange(4)
    kw = dict(mask_noise=0, free=0, items=items, body=True)
    plain = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=False, **kw)
    assert plain.image.shape == (4, 4, 32, 32)
    mask, front, back, cover = (plain.image[:, k] for k in range(4))
    stored = ds.body[items].float()
    on = torch.isfinite(stored[:, 0])
    assert torch.equal(cover > 0.5, on) and on.any()
    torch.testing.assert_close(front[on], stored[:, 0][on])
    assert torch.all(front[~on] == 0) and torch.all(back[~on] == 0) and torch.all(back[on] >= front[on])
    assert torch.all(mask[on] > 0.5)  # the shrunk body lies inside the person
    flipped = ds.batch(torch.Generator().manual_seed(0), 4, 32, 8, 32, flip=True, **kw)
    for i in range(4):  # an item is mirrored whole, or not at all
        same = torch.equal(flipped.image[i], plain.image[i])
        mirrored = torch.equal(flipped.image[i], plain.image[i].flip(-1))
        assert same or mirrored
    with pytest.raises(ValueError, match="fitted bodies"):
        ShardDataset(_depth_shards(tmp_path)).batch(torch.Generator(), 2, 16, 4, 32, body=True)


def test_a_body_net_trains_end_to_end_from_weights_without_the_body(tmp_path):
    root = _body_shards(tmp_path)
    torch.manual_seed(0)
    from streamrecon.models.embedded.model import save_embedded

    init = save_embedded(tmp_path / "init.pt", EmbeddedNet(TINY))
    cfg = TrainConfig(out=str(tmp_path / "run"), data_dir=str(root.parent), subjects=32, generate=False, steps=6,
                      batch=2, points=64, val_every=3, net={"body": True, "depth_prior": True}, init=str(init),
                      precision="fp32", threads=1)
    best = train(cfg, progress=False)
    from streamrecon.models.embedded.model import load_embedded

    model = load_embedded(best)
    assert model.cfg.body and model.cfg.depth_prior and model.cfg.in_channels == 4
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(logs) == 2 and all(np.isfinite(r["loss"]) for r in logs)


def test_outside_points_lie_off_the_silhouette_at_any_depth_and_are_empty(shard_dir):
    ds = ShardDataset(shard_dir, exclude=("shard_val.npz",))
    items = torch.arange(4)
    b = ds.batch(torch.Generator().manual_seed(3), 4, 100, 8, 32, mask_noise=0, free=0, flip=False, items=items, outside=0.5)
    assert b.points.shape[1] == 150
    pts, lab = b.points[:, 100:], b.labels[:, 100:]
    assert torch.all(lab == 0)
    cols = torch.round((pts[..., 0] + 1) * 31 / 2).long()
    rows = torch.round((1 - pts[..., 1]) * 31 / 2).long()
    grown = torch.nn.functional.max_pool2d(ds.masks[items].float()[:, None], 5, 1, 2)[:, 0]
    for i in range(4):
        assert torch.all(grown[i][rows[i], cols[i]] == 0)  # off the silhouette grown by 2 px
    z = pts[..., 2]
    assert float(z.min()) < -0.5 and float(z.max()) > 0.5  # any depth, the body's included
    with pytest.raises(UserInputError, match="--outside"):
        TrainConfig(out="x", outside=1.5)
