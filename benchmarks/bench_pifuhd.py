"""Benchmark our PIFuHD: encode (normal nets + both filters) per image, query cost per point, and
the reference-equivalent mesh path. Script, not a test.

    .venv/bin/python benchmarks/bench_pifuhd.py                      # fixture checkpoint
    .venv/bin/python benchmarks/bench_pifuhd.py --full --repeats 2   # release-size model, random weights
    .venv/bin/python benchmarks/bench_pifuhd.py --checkpoint pifuhd.pt --mesh-resolution 256

Warm-up once, then ``--repeats`` timed runs; reports median and p95 and writes JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT.parent / "shared" / "fixtures" / "pifuhd_small"


def _stats(xs):
    xs = sorted(xs)
    return {"median_s": statistics.median(xs), "p95_s": xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))],
            "runs": len(xs)}


def _time(fn, repeats, sync):
    fn()
    sync()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return _stats(out)


def _full_random_model(device):
    from streamrecon.models.pifuhd.model import PifuhdModel, build_network
    from streamrecon.models.pifuhd.options import release_options

    opt = release_options()
    net = build_network(opt, device="meta").to_empty(device=device)
    g = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1 and ("bn" in name or "norm" in name or "downsample.0" in name):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(device))
    return PifuhdModel(net, opt, device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(FIX / "pifuhd_small.pt"), help="PIFuHD checkpoint")
    ap.add_argument("--full", action="store_true", help="release-size model with random weights instead")
    ap.add_argument("--image", default=str(FIX / "input" / "person.png"))
    ap.add_argument("--rect", default=str(FIX / "input" / "person_rect.txt"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--points", type=int, default=200_000, help="query points per timed run")
    ap.add_argument("--mesh-resolution", type=int, default=0, help="also time the reference mesh path (0 = skip)")
    ap.add_argument("--json", default="", help="write the results here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    from streamrecon.models.checkpoint import load_pifuhd_model
    from streamrecon.models.pifuhd.reference_recon import ReferenceReconConfig, reconstruct_reference
    from streamrecon.images.decode import load_image
    from streamrecon.models.preprocess import preprocess, read_rect_file

    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    t = time.perf_counter()
    model = _full_random_model(dev) if a.full else load_pifuhd_model(a.checkpoint, device=dev)
    load_s = time.perf_counter() - t
    image = load_image(a.image)
    rect = read_rect_file(a.rect)[0]
    pre = preprocess(image, rect, model.options.coarse.load_size, model.options.fine.load_size_big)
    res = {"model": "release-size random" if a.full else a.checkpoint, "device": str(dev),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "load_s": load_s}
    res["preprocess"] = _time(lambda: preprocess(image, rect, model.options.coarse.load_size,
                                                 model.options.fine.load_size_big), a.repeats, sync)
    feats = model.encode_tensors(pre.img_512, pre.img)
    net = model.net
    img, big = pre.img_512.to(dev), pre.img.to(dev)
    with torch.no_grad():
        res["normal_nets"] = _time(lambda: net.netG.normal_maps(img), a.repeats, sync)
        res["coarse_filter"] = _time(lambda: net.netG.filter(img, feats.normals), a.repeats, sync)
        res["fine_filter"] = _time(lambda: net.filter(big, feats.normals), a.repeats, sync)
    res["encode"] = _time(lambda: model.encode_tensors(pre.img_512, pre.img), a.repeats, sync)
    pts = (torch.rand(a.points, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dev)
    q = _time(lambda: model.query(feats, pts), a.repeats, sync)
    q["us_per_point"] = q["median_s"] / a.points * 1e6
    q["points_per_s"] = a.points / q["median_s"]
    res["query"] = q
    if a.mesh_resolution:
        cfg = ReferenceReconConfig(resolution=a.mesh_resolution)
        t = time.perf_counter()
        mesh = reconstruct_reference(model, feats, cfg)
        res["reference_mesh"] = {"resolution": a.mesh_resolution, "seconds": time.perf_counter() - t,
                                 "points_evaluated": mesh.meta["points_evaluated"], "faces": mesh.num_faces}
    for k, v in res.items():
        if isinstance(v, dict):
            extra = f"  ({v['us_per_point']:.2f} us/point)" if "us_per_point" in v else ""
            if "median_s" in v:
                print(f"{k:16s} median {v['median_s'] * 1e3:9.1f} ms  p95 {v['p95_s'] * 1e3:9.1f} ms{extra}")
            else:
                print(f"{k:16s} {v}")
        else:
            print(f"{k:16s} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
