"""Full-size PIFuHD per-stage throughput on any device/precision, with a realistic octree.

Random weights (the released architecture from ``release_options``) are fine for timing: the
filters cost the same whatever the weights. The query phase needs a realistic *field* so the
octree refines as it would on a person: the octree is driven by the analytic body field
(``streamrecon.testing.fields.body_field``) while every batch of points it asks for is also pushed through
the full-size MLPs (result discarded), so both the query count and the network time are real.

    python benchmarks/bench_pifuhd_stages.py --device cuda --precision fp16 --resolution 256 512
    python benchmarks/bench_pifuhd_stages.py --threads 2 --resolution 256 512 --reps 2   # CPU

Reduced precision uses autocast over fp32 weights (convs/matmuls in fp16/bf16, grid_sample and
norms in fp32), the way the eager GPU path runs it. Writes JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from _results import emit

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamrecon.testing.fields import body_field  # noqa: E402
from streamrecon.occupancy.octree import OctreeConfig, evaluate_octree  # noqa: E402
from streamrecon.models.pifuhd.model import PifuhdFeatures, PifuhdModel, build_network  # noqa: E402
from streamrecon.models.pifuhd.options import release_options  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, reps: int, warmup: int = 1):
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return out, times


def summary(times):
    s = sorted(times)
    return {"median_s": statistics.median(s), "p95_s": s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))],
            "n": len(s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the reference figures use 2)")
    ap.add_argument("--resolution", type=int, nargs="+", default=[256])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--channels-last", action="store_true", help="image filters in channels-last layout")
    ap.add_argument("--chunk", type=int, default=50_000, help="points per network batch")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    opt = release_options()
    net = build_network(opt, device="cpu").to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = PifuhdModel(net, opt, device=device, chunk=args.chunk)
    g = torch.Generator().manual_seed(1)
    img = (torch.rand(1, 3, 512, 512, generator=g) * 2 - 1).to(device)
    img_big = (torch.rand(1, 3, 1024, 1024, generator=g) * 2 - 1).to(device)
    if args.channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
        img_big = img_big.contiguous(memory_format=torch.channels_last)
    res = {"machine": {"platform": platform.platform(), "threads": args.threads, "torch": torch.__version__,
                       "device": str(device),
                       "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
           "precision": args.precision, "channels_last": args.channels_last, "stages": {}, "resolutions": {}}
    st = res["stages"]
    amp = (torch.autocast(device.type, dtype=DTYPES[args.precision]) if args.precision != "fp32"
           else contextlib.nullcontext())
    with torch.inference_mode(), amp:
        _, t = timed(lambda: net.netG.netF(img), device, args.reps)
        st["normal_front"] = summary(t)
        _, t = timed(lambda: net.netG.netB(img), device, args.reps)
        st["normal_back"] = summary(t)
        nmls = net.netG.normal_maps(img)
        _, t = timed(lambda: net.netG.filter(img, nmls), device, args.reps)
        st["coarse_filter"] = summary(t)
        _, t = timed(lambda: net.filter(img_big, nmls), device, args.reps)
        st["fine_filter"] = summary(t)

        def encode():
            n = net.netG.normal_maps(img)
            return PifuhdFeatures(coarse=net.netG.filter(img, n).float(), fine=net.filter(img_big, n).float(), normals=n)

        feats, t = timed(encode, device, args.reps)
        st["encode_total"] = summary(t)
        pts = (torch.rand(args.chunk, 3, generator=g) * 2 - 1).to(device)
        _, t = timed(lambda: model.query(feats, pts), device, max(args.reps, 3))
        st["query_batch"] = summary(t)
        st["query_us_per_point"] = 1e6 * st["query_batch"]["median_s"] / args.chunk

        field = body_field()
        for r in args.resolution:
            def query_fn(p, _feats=feats):
                model.query(_feats, p)  # the real network cost
                return field(p)  # the realistic field that steers the octree

            times = []
            for _ in range(2):  # the first pass warms up kernels and the allocator
                sync(device)
                t0 = time.perf_counter()
                grid = evaluate_octree(query_fn, r, OctreeConfig(batch_points=args.chunk), device=device)
                sync(device)
                times.append(time.perf_counter() - t0)
            octree_s = times[-1]
            frame_s = st["encode_total"]["median_s"] + octree_s
            res["resolutions"][str(r)] = {
                "octree_points": int(grid.num_queries), "dense_points": r**3, "octree_s": octree_s,
                "encode_plus_octree_s": frame_s, "fps_without_meshing": 1.0 / frame_s,
            }
    res["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device.type == "cuda":
        res["peak_cuda_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
    emit(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
