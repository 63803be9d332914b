"""The training loop of the embedded model: AdamW on occupancy BCE + silhouette loss, checkpoints
(``last.pt`` every few minutes and at the end, ``best.pt`` by validation IoU), resume from
``last.pt``, a tqdm progress bar, a wall-clock budget. Threads own nothing here: one process.

Checkpoints are plain dicts of tensors and JSON-like values (``torch.load(weights_only=True)``):
{"format": "streamrecon-train", "step", "elapsed_s", "config" (TrainConfig JSON), "net"
(NetConfig JSON), "model", "optimizer", "best_iou"}.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional


from ..errors import CheckpointError, UserInputError

log = logging.getLogger(__name__)


TEACHER_WEIGHT_DEFAULT = 0.5  # --teacher-weight; any other value needs --mirror-teacher


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``streamrecon train`` (one CLI flag each)."""

    out: str
    """run directory: checkpoints, log and config go here"""
    data_seed: int = 0
    """seed of the synthetic training subjects (held-out subjects use a separate seed stream)"""
    subjects: int = 2560
    """training subjects to generate before training (16 per shard; existing shards are reused)"""
    generate: bool = True
    """generate missing shards first; False trains on the shards on disk and rescans them"""
    seed: int = 0
    """seed of initialisation and batch sampling"""
    hours: float = 1.0
    """wall-clock budget of this invocation (training stops and checkpoints after it)"""
    steps: int = 0
    """stop after this many total steps (0 = no step limit)"""
    batch: int = 8
    """views per step"""
    points: int = 4096
    """labelled points per view per step"""
    sil_rays: int = 192
    """silhouette rays per view per step"""
    sil_depths: int = 24
    """samples along each silhouette ray"""
    sil_weight: float = 0.0
    """weight of the silhouette loss (0: off by default: the depth prior already starts every
    on-person ray with a slab, the product's silhouette fill closes the outline, and its queries
    cost ~30% of a step; every fine-tune of the shipped weights ran without it. 0.5 teaches the
    network a cheap shortcut: a thin sheet at one depth behind the body, which the sharp mask
    term then cuts to the exact silhouette; 0.05 with more empty points (--free) shrinks it)"""
    sil_range: str = "body"
    """depths the silhouette loss looks along each ray: ``body`` (the view's body depth range
    +- 5 cm, where the labelled points are: a sheet far behind the body earns nothing) or
    ``cube`` (all of [-1, 1], the setting of the shipped weights' recipe, which let the network
    buy coverage with a detached sheet behind the body)"""
    free: float = 0.4
    """extra empty points in front of/behind the body, as a share of --points (see dataset.batch)"""
    outside: float = 0.0
    """extra empty points at pixels off the person's silhouette, at any depth, as a share of --points
    (see dataset.batch): they keep the network from growing sheets at the crop's borders"""
    uniform: float = 0.0
    """share of each view's labelled points drawn from its uniform-in-bounding-box samples (0:
    as stored, 1/8); more of them supervise the empty space just behind the body, where the
    network otherwise grows a thick, ragged back"""
    ray_points: int = 0
    """extra labelled points per view along the rays of on-person pixels, from the shards' depth
    maps (4 per ray: just outside and just inside the front and the back surface)"""
    depth_pixels: int = 1024
    """on-person pixels per view whose front and back depth a ``depth_prior`` net (--net
    '{"depth_prior": true}') learns from the depth maps (ignored by other nets)"""
    depth_weight: float = 0.2
    """weight of that depth loss (L1 in cm, mean over the pixels)"""
    mask_noise: float = 0.3
    """share of input masks dilated or eroded by one pixel (half each): real segmentations are
    never exact, but the network answers the doubt at the outline by thinning the rim a little"""
    max_yaw_deg: float = 90.0
    """train on views whose yaw is within this many degrees of facing the camera"""
    lr: float = 1e-3
    """peak learning rate (cosine decay over --steps, else over --schedule-hours: by default the --hours budget)"""
    schedule_hours: float = -1.0
    """length in training hours (summed over resumes) of the cosine learning-rate decay when
    --steps is 0; 0: a constant rate; -1: --hours of the run's first invocation (a resume keeps
    the run's schedule)"""
    threads: int = 0
    """torch CPU threads; 0: every core this process may use (2 threads train 1.8x as fast as 1
    on a 2-core machine; give 1 to leave a core to other work)"""
    device: str = "cpu"
    """cpu or cuda"""
    precision: str = "auto"
    """number format of the encoder's pass in a training step: ``fp32``; ``bf16`` (autocast:
    convolutions in bfloat16, the point decoder and the losses stay fp32; ~1.3x the steps per
    second on an AVX-512 CPU); ``auto``: bf16 where the device computes it natively
    (``train_precision``), else fp32. Validation and the exported weights are fp32"""
    ckpt_minutes: float = 5.0
    """minutes between checkpoints"""
    val_every: int = 250
    """steps between validations"""
    cache: Optional[str] = None
    """cache root of synthetic data and anny (default ~/.cache/streamrecon)"""
    data_dir: Optional[str] = None
    """shard directory (default <cache>/data)"""
    net: dict = field(default_factory=dict)
    """NetConfig overrides (JSON), e.g. '{"shading": true}'; a run from scratch has the depth
    prior ('{"depth_prior": false}' to train without it), one from --init the init's architecture
    (which --net may extend by the input channels rgb, shading, body and by the depth prior)"""
    init: Optional[str] = None
    """start a new run from these embedded-format weights (e.g. the shipped default.pt) with a
    fresh optimizer; input channels the weights lack (--net '{"shading": true}') start at zero"""
    mirror_teacher: Optional[str] = None
    """embedded-format weights whose mirror-averaged occupancy (the mean of their answer for the
    view and for its mirror image, ``run --mirror-average``) the network also learns at the
    labelled points: distillation of the averaged answer into one pass"""
    teacher_weight: float = TEACHER_WEIGHT_DEFAULT
    """share of the occupancy loss given to --mirror-teacher's soft labels (the rest: the true labels)"""
    body_noise: float = 1.0
    """with a net that reads the body (--net '{"body": true, "depth_prior": true}'): scale of the
    detector noise on the landmarks its training bodies are fitted from (1 = as measured on
    renders, ``synth.landmarks``; 0 = exact landmarks)"""
    workers: int = 1
    """processes generating shards at once (each loads anny: ~1.5 GB)"""

    def __post_init__(self) -> None:
        if not 0.0 <= self.uniform <= 1.0:
            raise UserInputError(f"--uniform: expected a share in [0, 1], got {self.uniform}")
        if not 0.0 <= self.mask_noise <= 1.0:
            raise UserInputError(f"--mask-noise: expected a share in [0, 1], got {self.mask_noise}")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise UserInputError(f"--teacher-weight: expected a share in [0, 1], got {self.teacher_weight}")
        if self.teacher_weight != TEACHER_WEIGHT_DEFAULT and not self.mirror_teacher:
            raise UserInputError(f"--teacher-weight {self.teacher_weight:g} has no teacher to weigh: give the teacher's "
                                 "weights with --mirror-teacher PATH (e.g. the shipped default.pt), or drop --teacher-weight")
        if self.depth_pixels < 1 or self.depth_weight < 0:
            raise UserInputError(f"--depth-pixels must be >= 1 and --depth-weight >= 0 (got {self.depth_pixels}, {self.depth_weight:g})")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0.0 <= self.outside <= 1.0:
            raise UserInputError(f"--outside: expected a share in [0, 1], got {self.outside}")
        if self.body_noise < 0 or self.workers < 1:
            raise UserInputError(f"--body-noise must be >= 0 and --workers >= 1 (got {self.body_noise:g}, {self.workers})")
        if self.sil_range not in SIL_RANGES:
            raise UserInputError(f"--sil-range: expected one of {', '.join(SIL_RANGES)}, got {self.sil_range!r}")


SIL_RANGES = ("body", "cube")
PRECISIONS = ("fp32", "bf16", "auto")


@functools.lru_cache(maxsize=None)
def train_precision(precision: str, device: str) -> str:
    """``fp32`` or ``bf16``: what --precision ``precision`` means on ``device`` (``auto``: bf16
    on a CPU whose oneDNN runs bfloat16 kernels (AVX-512 or newer) or a CUDA device with bf16
    support; a CPU without them would emulate it slower than fp32)."""
    if precision != "auto":
        return precision
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    from ..backends.hardware import cpu_runs_bf16

    return "bf16" if cpu_runs_bf16() else "fp32"


def _data_root(cfg: TrainConfig) -> Path:
    from .synth.bodies import cache_dir

    return Path(cfg.data_dir) if cfg.data_dir else cache_dir(cfg.cache) / "data"


VAL_SHARD = "shard_val.npz"


def ensure_data(cfg: TrainConfig, progress: bool = True, body: bool = False) -> Path:
    """Generate the missing training shards (and the validation shard) of ``cfg``; ``body``: with
    the fitted body prior (a net that reads it)."""
    from .synth import generate as g

    root = _data_root(cfg)
    seed_dir = root / f"seed{cfg.data_seed}"
    n_shards = math.ceil(cfg.subjects / 16)
    synth_cfg = g.SynthConfig(cache=cfg.cache, body=body, body_noise=cfg.body_noise)
    val = seed_dir / VAL_SHARD
    if not val.exists():
        # Validation: 16 subjects from the held-out stream at indices far from the evaluation set's.
        idx = list(range(100000, 100016))
        g.write_shard(val, [g.make_subject(g.subject_seed(cfg.data_seed, i, g.HELDOUT), synth_cfg) for i in idx], idx, synth_cfg)
    if cfg.generate:
        bar = _bar(n_shards, "generating shards") if progress else None
        g.generate_shards(root, cfg.data_seed, 0, n_shards, cfg=synth_cfg, progress=bar.update if bar else None,
                          workers=cfg.workers)
        if bar:
            bar.close()
    return seed_dir


def _bar(total, desc):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)


def train_threads(cfg: TrainConfig) -> int:
    """torch threads for ``cfg``: ``cfg.threads``, or (0) every core this process may use."""
    from ..stream.stages import usable_cores

    return cfg.threads if cfg.threads > 0 else usable_cores()


def schedule_hours(cfg: TrainConfig, ckpt: Optional[dict]) -> float:
    """Length (training hours; 0: constant rate) of the cosine decay when ``cfg.steps`` is 0:
    ``cfg.schedule_hours`` when given (>= 0); else (-1), resuming, the run's own (a run made
    before this rule has 0 there: constant rate, as it was trained); else ``cfg.hours``, so that a
    plain ``train --hours H`` ends its budget at the low rate instead of wherever a constant rate
    left it. ``cfg.steps`` set: 0 (the schedule follows the steps)."""
    if cfg.steps:
        return 0.0
    if cfg.schedule_hours >= 0:
        return cfg.schedule_hours
    if ckpt is not None:
        return max(0.0, float(json.loads(ckpt["config"]).get("schedule_hours", 0.0)))
    return cfg.hours


def _checkpoint(path: Path, net, opt, step: int, elapsed: float, cfg: TrainConfig, best_iou: float) -> None:
    import torch

    obj = {"format": "streamrecon-train", "step": step, "elapsed_s": elapsed, "config": json.dumps(asdict(cfg)),
           "net": net.cfg.to_json(), "model": net.state_dict(), "optimizer": opt.state_dict(), "best_iou": best_iou}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable training checkpoint ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("format") != "streamrecon-train":
        raise CheckpointError(f"{path}: not a streamrecon training checkpoint")
    return obj


def mirror_averaged_probs(teacher, image, points):
    """[B, P] the mean of ``teacher``'s occupancy for ``image`` [B, C, R, R] at ``points`` [B, P, 3]
    (crop frame) and for the mirrored image at the mirrored points (x -> -x): what
    ``MirrorAveraged`` answers at inference, here for a batch. No gradients."""
    import torch

    from ..models.mirror_average import mirror_points

    mirrored = mirror_points(points)
    with torch.no_grad():  # both views in one pass of twice the batch (eval mode: items do not mix)
        direct, flipped = torch.sigmoid(teacher(torch.cat([image, image.flip(-1)]), torch.cat([points, mirrored]))).chunk(2)
    return 0.5 * (direct + flipped)


def step_fn(net, opt, batch, cfg: TrainConfig, gen=None, teacher=None) -> dict:
    """One optimisation step on ``batch`` (a ``dataset.Batch`` on the model's device);
    ``teacher``: the --mirror-teacher network (eval mode), or None."""
    from .losses import occupancy_loss, ray_points, silhouette_loss

    net.train()
    feats = encode_for_training(net, batch.image, cfg.precision)
    p = batch.points.shape[1]
    if cfg.sil_weight > 0:
        rp = ray_points(batch.rays, cfg.sil_depths, gen, batch.zrange if cfg.sil_range == "body" else None)
        logits = net.query(feats, torch_cat(batch.points, rp))
        l_sil = silhouette_loss(logits[:, p:], batch.ray_mask, cfg.sil_depths)
    else:  # no silhouette term: do not pay for its queries
        logits = net.query(feats, batch.points)
        l_sil = logits.new_zeros(())
    l_occ = occupancy_loss(logits[:, :p], batch.labels)
    out = {}
    if teacher is not None:
        l_teach = occupancy_loss(logits[:, :p], mirror_averaged_probs(teacher, batch.image, batch.points))
        out["labels"] = l_occ.detach()  # the BCE on the true labels alone: comparable with runs without a teacher
        l_occ = (1 - cfg.teacher_weight) * l_occ + cfg.teacher_weight * l_teach
        out["teach"] = l_teach.detach()
    loss = l_occ + cfg.sil_weight * l_sil
    if batch.depth_xy is not None:
        l_depth = batch_depth_loss(net, feats, batch)
        loss = loss + cfg.depth_weight * l_depth
        out["depth_cm"] = l_depth.detach()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": loss.detach(), "occ": l_occ.detach(), "sil": l_sil.detach(), **out}


def batch_depth_loss(net, feats, batch):
    """The depth maps' L1 error in cm (``losses.depth_loss``) at ``batch``'s depth pixels, from
    the encoder output ``feats`` of a ``depth_prior`` net."""
    from .losses import depth_loss

    return depth_loss(net.decoder.surface_depths(feats[0], batch.depth_xy), batch.depth_z, batch.depth_ok, batch.cm)


def encode_for_training(net, image, precision: str):
    """``net.encode(image)``, the encoder under bfloat16 autocast when ``precision`` (a
    --precision value) means bf16 on the image's device (``train_precision``); the features
    come back as fp32 either way, so the decoder, the depth maps and the losses are fp32."""
    import torch

    if train_precision(precision, str(image.device)) != "bf16":
        return net.encode(image)
    with torch.autocast(image.device.type, dtype=torch.bfloat16):
        feat, mask = net.encode(image)
    return feat.float(), mask


def torch_cat(a, b):
    import torch

    return torch.cat([a, b], 1)


def validate(net, batch) -> dict:
    """Occupancy IoU and accuracy at the validation batch's labelled points (threshold 0.5);
    with depth targets in the batch (a ``depth_prior`` net), also the depth maps' L1 error in cm
    (``depth_cm``: the training log's ``depth_cm`` on a fixed batch of held-out people)."""
    import torch

    net.eval()
    with torch.no_grad():
        feats = net.encode(batch.image)
        pred = net.query(feats, batch.points) > 0
        depth = batch_depth_loss(net, feats, batch) if batch.depth_xy is not None else None
    lab = batch.labels > 0.5
    inter = (pred & lab).sum().item()
    union = (pred | lab).sum().item()
    out = {"iou": inter / max(union, 1), "acc": (pred == lab).float().mean().item()}
    return out if depth is None else {**out, "depth_cm": float(depth)}


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) into ``cfg.out``; returns the path of ``best.pt``."""
    import torch

    from ..models.embedded.net import EmbeddedNet, NetConfig
    from .dataset import ShardDataset

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    if last.exists() and not resume:
        raise UserInputError(f"{out} already holds a run (last.pt): pass --resume to continue it or choose another --out")
    if resume and not last.exists():
        raise UserInputError(f"--resume: no {last} to resume from")
    torch.set_num_threads(train_threads(cfg))
    device = torch.device(cfg.device)
    ckpt = load_checkpoint(last) if resume else None
    net_cfg = NetConfig.from_json(ckpt["net"]) if ckpt else train_net_config(cfg)
    seed_dir = ensure_data(cfg, progress, body=net_cfg.body)
    data = ShardDataset(seed_dir, exclude=(VAL_SHARD,), device=device, max_yaw_deg=cfg.max_yaw_deg)
    if len(data) == 0:
        if data.views_read:
            raise UserInputError(f"{seed_dir}: {data.views_read} views read, none within --max-yaw-deg {cfg.max_yaw_deg:g}: raise it")
        raise UserInputError(f"no training shards in {seed_dir}: run without --no-generate first")
    for what, wanted, without in (("--ray-points", cfg.ray_points > 0, "leave it out"),
                                  ("--net shading", net_cfg.shading, "leave it out"),
                                  ("--net depth_prior", net_cfg.depth_prior, "train without it: --net '{\"depth_prior\": false}'")):
        if wanted and not data.has_depths:
            raise UserInputError(f"{what}: the shards in {seed_dir} have no depth maps (made before they were "
                                 f"rendered): generate new ones into another --data-dir, or {without}")
    val = ShardDataset(files=[seed_dir / VAL_SHARD], device=device, max_yaw_deg=cfg.max_yaw_deg)
    if len(val) == 0:
        raise UserInputError(f"{seed_dir / VAL_SHARD}: {val.views_read} views read, none within --max-yaw-deg "
                             f"{cfg.max_yaw_deg:g}: raise it, or make the validation shard again")
    vgen = torch.Generator(device=device)
    vgen.manual_seed(12345)
    if net_cfg.body and not (data.has_body and val.has_body):
        raise UserInputError(f"--net body: the shards in {seed_dir} have no fitted bodies: generate them into another "
                             "--data-dir (a run whose net reads the body makes them)")
    val_batch = val.batch(vgen, min(64, len(val)), 4096, 8, net_cfg.in_res, mask_noise=0, flip=False, free=0,
                          shading=net_cfg.shading, depth_pixels=4096 if net_cfg.depth_prior and val.has_depths else 0,
                          body=net_cfg.body)

    torch.manual_seed(cfg.seed)
    net = EmbeddedNet(net_cfg).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    step, elapsed, best_iou = 0, 0.0, -1.0
    if cfg.init and not ckpt:
        _init_from(net, cfg.init)
    teacher = _mirror_teacher(cfg.mirror_teacher, net_cfg, device) if cfg.mirror_teacher else None
    cfg = replace(cfg, schedule_hours=schedule_hours(cfg, ckpt),  # saved with the run: a resume keeps it
                  precision=train_precision(cfg.precision, cfg.device))
    log.info("training precision: %s", cfg.precision)
    if ckpt:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed, best_iou = int(ckpt["step"]), float(ckpt["elapsed_s"]), float(ckpt["best_iou"])
        log.info("resumed %s at step %d", last, step)
    (out / "config.json").write_text(json.dumps({"train": asdict(cfg), "net": net_cfg.to_json()}, indent=2))
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * 1000003 + step)
    t0 = time.monotonic()
    t_ckpt = t0
    budget = cfg.hours * 3600.0
    bar = _bar(cfg.steps or None, "training") if progress else None
    if bar is not None:
        bar.update(step)
    logf = open(out / "log.jsonl", "a")
    try:
        while True:
            if cfg.steps and step >= cfg.steps:
                break
            if time.monotonic() - t0 >= budget:
                break
            frac = None
            if cfg.steps:
                frac = step / cfg.steps
            elif cfg.schedule_hours > 0:
                frac = (elapsed + time.monotonic() - t0) / (cfg.schedule_hours * 3600.0)
            if frac is not None:
                lr = max(cfg.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))), cfg.lr * 0.02)
                for gparam in opt.param_groups:
                    gparam["lr"] = lr
            batch = data.batch(gen, cfg.batch, cfg.points, cfg.sil_rays, net_cfg.in_res, free=cfg.free, uniform=cfg.uniform,
                               ray_points=cfg.ray_points, shading=net_cfg.shading, mask_noise=cfg.mask_noise,
                               depth_pixels=cfg.depth_pixels if net_cfg.depth_prior else 0, body=net_cfg.body,
                               outside=cfg.outside)
            stats = step_fn(net, opt, batch, cfg, gen, teacher)
            step += 1
            if bar is not None:
                bar.update(1)
            if bar is not None and step % 10 == 0:
                stats = {k: float(x) for k, x in stats.items()}
                bar.set_postfix(loss=f"{stats['loss']:.4f}", sil=f"{stats['sil']:.3f}", best_iou=f"{best_iou:.4f}")
            if step % cfg.val_every == 0:
                vs = validate(net, val_batch)
                stats = {k: float(x) for k, x in stats.items()}
                rec = {"step": step, "elapsed_s": elapsed + time.monotonic() - t0, **stats, **{f"val_{k}": x for k, x in vs.items()}, "subjects": data.num_subjects}
                log.info("step %d: %s", step, " ".join(f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float)))
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                if vs["iou"] > best_iou:
                    best_iou = vs["iou"]
                    _export_best(out, net, cfg, step, best_iou)
                if not cfg.generate:
                    data.refresh()
            if time.monotonic() - t_ckpt > cfg.ckpt_minutes * 60:
                _checkpoint(last, net, opt, step, elapsed + time.monotonic() - t0, cfg, best_iou)
                t_ckpt = time.monotonic()
    finally:
        _checkpoint(last, net, opt, step, elapsed + time.monotonic() - t0, cfg, best_iou)
        logf.close()
        if bar is not None:
            bar.close()
    if best_iou < 0:
        vs = validate(net, val_batch)
        _export_best(out, net, cfg, step, vs["iou"])
    return out / "best.pt"


def train_net_config(cfg: TrainConfig):
    """The architecture a new run trains: ``NetConfig``'s defaults with the depth prior (a
    from-scratch hour with it on a 2-core Xeon: 2.56 cm Chamfer on held-out 20-39 against 2.96
    without; docs/history.md),
    or with --init the init weights' own architecture; then the --net overrides."""
    from ..models.embedded.net import NetConfig

    base = {**NetConfig().to_json(), "depth_prior": True}
    if cfg.init:
        from ..models.embedded.model import load_embedded

        base = load_embedded(cfg.init).net.cfg.to_json()
    return NetConfig.from_json({**base, **cfg.net})


def _init_from(net, path: str) -> None:
    """Load embedded-format weights into ``net``, which may add input channels, the body or the
    depth prior to them (``net.grow_state_dict``)."""
    from ..models.embedded.model import load_embedded
    from ..models.embedded.net import grow_state_dict

    src = load_embedded(path).net
    try:
        net.load_state_dict(grow_state_dict(src.state_dict(), src.cfg, net))
    except ValueError as exc:
        raise UserInputError(f"--init {path}: {exc}; drop those --net overrides") from None
    log.info("initialised from %s", path)


def _mirror_teacher(path: str, net_cfg, device):
    """The --mirror-teacher network, frozen, in eval mode; it must read the input the net reads."""
    from ..models.embedded.model import load_embedded

    t = load_embedded(path).net
    if t.cfg.in_channels != net_cfg.in_channels:
        raise UserInputError(f"--mirror-teacher {path}: it reads {t.cfg.in_channels} input channels, this net {net_cfg.in_channels}")
    if t.cfg.in_res != net_cfg.in_res:  # a convolutional net runs on any size, and would answer nonsense
        raise UserInputError(f"--mirror-teacher {path}: it reads {t.cfg.in_res}-pixel crops, this net {net_cfg.in_res}")
    t = t.to(device).eval()
    for q in t.parameters():
        q.requires_grad_(False)
    return t


def _export_best(out: Path, net, cfg: TrainConfig, step: int, iou: float) -> None:
    from ..models.embedded.model import save_embedded

    meta = {"step": step, "val_iou": iou, "data_seed": cfg.data_seed, "seed": cfg.seed, "train_config": json.dumps(asdict(cfg))}
    save_embedded(out / "best.pt", net, meta)
