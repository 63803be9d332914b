"""End-to-end throughput of one person per frame: per-stage time, fps, latency p50/p95 and peak
memory, for full-size PIFuHD (random weights, the released architecture) and the embedded model,
on any backend. Script, not a test.

    .venv/bin/python benchmarks/bench_e2e.py --model pifuhd-full --resolution 256 512 --frames 3
    .venv/bin/python benchmarks/bench_e2e.py --model pifuhd-full --backend eager --resolution 512
    .venv/bin/python benchmarks/bench_e2e.py --model embedded --resolution 128 256 --frames 10
    .venv/bin/python benchmarks/bench_e2e.py --plot-only benchmarks/results/*.json --plot out.png

The input matches the reference's figures (../shared/reference/timing_summary.json): a 1024x1024
image, crop rect (-32, -32, 1088, 1088) -> 512 and 1024 inputs. Random weights make the filters
cost what they cost with real ones, but their occupancy field is noise, so the octree is steered by
the analytic body field (``streamrecon.testing.fields.body_field``) while every batch it asks for is also
pushed through the real network (result discarded): query counts and network time are realistic.

Each frame runs ``streamrecon.recon.reconstruct_person`` (preprocess, encode, octree,
marching cubes, cleanup, normals). Times are wall clock and process CPU time (the machine may be
shared: CPU seconds / threads is what an idle machine would take, within the threads' overlap).
Peak memory: ``peak_rss_MiB`` is the process's max RSS over everything it did (loading the model
and its engines, the per-stage breakdown, every frame); ``load_peak_rss_MiB`` covers loading alone
and ``frame_peak_rss_MiB`` the timed frames alone (Linux ``VmHWM``, reset before them). Compiled
engines are built beforehand in a child process (``--build-only``) so an export does not count.
Like the ``streamrecon`` command, the script turns on huge pages for large tensors before torch is
imported (``streamrecon.cli.process``); ``--no-huge-pages`` measures without.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
REFERENCE = ROOT.parent / "shared" / "reference" / "timing_summary.json"


def _stats(xs):
    s = sorted(xs)
    return {"median_s": statistics.median(s), "p95_s": s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))],
            "min_s": s[0], "n": len(s)}


def _load(args):
    import torch

    if args.model == "pifuhd-full":
        from bench_pifuhd import _full_random_model

        torch.manual_seed(0)
        return _full_random_model(args.device)
    from streamrecon.api import load_model

    return load_model(None if args.model == "embedded" else args.model, device=args.device)


def _input():
    import cv2
    import numpy as np

    img = cv2.imread(str(ROOT.parent / "shared" / "media" / "astronaut.png"))
    img = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    return np.ascontiguousarray(img), (-32, -32, 1088, 1088)


class BodyFieldProxy:
    """``ImplicitModel`` running the real network for cost and answering with the body field."""

    def __init__(self, model):
        from streamrecon.testing.fields import body_field

        self.model, self.field = model, body_field()
        self.name, self.device = getattr(model, "name", "model"), getattr(model, "device", "cpu")
        self.queries = 0

    def encode(self, image, rect, mask=None):
        return self.model.encode(image, rect, mask)

    def query(self, features, points):
        self.model.query(features, points)
        self.queries += int(points.shape[0])
        return self.field(points)


def _vm_hwm_mib() -> float:
    """Peak resident set (``VmHWM``) of this process in MiB, or the ru_maxrss fallback."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_vm_hwm() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _timed(fn, reps):
    out, wall, cpu = None, [], []
    for _ in range(reps):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return out, wall, cpu


def pifuhd_stages(model, image, rect, reps):
    """Per-stage wall/CPU seconds of PIFuHD's encode (normal nets, both filters) and of one batch
    of 50,000 query points, through whatever runs the model (its compiled runners or eager)."""
    import torch

    from streamrecon.models.preprocess import preprocess

    pre = preprocess(image, rect)
    img, big = pre.img_512, pre.img
    net, r = model.net, getattr(model, "_runners", {})
    parts = {
        "normal_front": (lambda: r["normal_front"](img)) if r else (lambda: net.netG.netF(img)),
        "normal_back": (lambda: r["normal_back"](img)) if r else (lambda: net.netG.netB(img)),
    }
    nml = torch.cat([parts["normal_front"](), parts["normal_back"]()], 1)
    parts["coarse_filter"] = (lambda: r["coarse_filter"](img, nml)) if r else (lambda: net.netG.filter(img, nml))
    parts["fine_filter"] = (lambda: r["fine_filter"](big, nml)) if r else (lambda: net.filter(big, nml))
    feats = model.encode_tensors(img, big)
    pts = torch.rand(50_000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    parts["query_50k"] = lambda: model.query(feats, pts)
    out = {}
    with torch.inference_mode():
        for name, fn in parts.items():
            fn()  # warm-up
            _, wall, cpu = _timed(fn, reps)
            out[name] = {"wall": _stats(wall), "cpu_s": statistics.median(cpu)}
    out["query_us_per_point"] = {"wall": 1e6 * out["query_50k"]["wall"]["median_s"] / 50_000,
                                 "cpu": 1e6 * out["query_50k"]["cpu_s"] / 50_000}
    return out


def run(args) -> dict:
    import torch

    from streamrecon.backends import BackendConfig
    from streamrecon.backends.flags import apply_backend
    from streamrecon.recon import ReconConfig, reconstruct_person

    torch.set_num_threads(args.threads)
    cfg = BackendConfig(backend=args.backend, precision=args.precision, device=args.device, cache_dir=args.engines_dir)
    model = _load(args)
    t = time.perf_counter()
    backend = apply_backend(model, cfg)
    compile_s = time.perf_counter() - t
    if args.build_only:
        return {"backend": backend, "compile_s": compile_s}
    load_peak = _vm_hwm_mib()
    image, rect = _input()
    res = {
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "threads": args.threads,
                    "torch": torch.__version__, "device": args.device},
        "huge_pages": os.environ.get("THP_MEM_ALLOC_ENABLE") == "1",
        "model": args.model, "backend": backend, "precision": args.precision, "compile_or_load_s": compile_s,
        "input": "1024x1024 image (astronaut.png upscaled), rect (-32, -32, 1088, 1088)",
        "stages": {}, "resolutions": {},
    }
    if getattr(model, "name", "") == "pifuhd" and not args.no_stages:
        res["stages"] = pifuhd_stages(model, image, rect, args.reps)
    proxy = BodyFieldProxy(model) if args.model == "pifuhd-full" else model
    for r in args.resolution:
        rcfg = ReconConfig(resolution=r)
        reconstruct_person(proxy, image, rect, None, rcfg)  # warm-up (allocator, kernels)
        hwm_reset = _reset_vm_hwm()
        walls, cpus, parts = [], [], []
        for _ in range(args.frames):
            if isinstance(proxy, BodyFieldProxy):
                proxy.queries = 0
            c, w = time.process_time(), time.perf_counter()
            mesh = reconstruct_person(proxy, image, rect, None, rcfg)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            parts.append(dict(mesh.meta.get("timings", {})))
        s = _stats(walls)
        res["resolutions"][str(r)] = {
            "latency": s, "fps": 1.0 / s["median_s"], "cpu_s_per_frame": statistics.median(cpus),
            "cpu_s_per_frame_per_thread": statistics.median(cpus) / args.threads,
            "timings_median_s": {k: statistics.median(p.get(k, 0.0) for p in parts) for k in parts[0]},
            "queries": int(mesh.meta.get("num_queries", 0)), "vertices": int(mesh.num_vertices),
            "frame_peak_rss_MiB": _vm_hwm_mib() if hwm_reset else None,
        }
        print(f"{args.model} {backend} R={r}: {s['median_s']:.2f} s/frame (p95 {s['p95_s']:.2f}), "
              f"CPU {statistics.median(cpus):.1f} s, {res['resolutions'][str(r)]['queries']} queries", file=sys.stderr)
    res["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res["load_peak_rss_MiB"] = load_peak
    return res


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def plot(results: list, path: str) -> None:
    """Per-stage bars (ours vs reference) and s/frame per resolution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = json.loads(REFERENCE.read_text())["stages_measured_s"] if REFERENCE.exists() else {}
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ["normal_front", "normal_back", "coarse_filter", "fine_filter"]
    ref_vals = [min(ref.get("netF (front normal, 512^2)", [0])), min(ref.get("netB (back normal, 512^2)", [0])),
                ref.get("coarse HGFilter (9ch 512^2 -> 256ch 128^2)", 0),
                min(ref.get("fine filter_local (upsample normals + HGFilter 9ch 1024^2 -> 16ch 512^2)", [0]))]
    width = 0.8 / (1 + sum(1 for r in results if r.get("stages")))
    a.bar([i for i in range(len(names))], ref_vals, width, label="reference (wall)")
    k = 1
    for r in results:
        if not r.get("stages"):
            continue
        vals = [r["stages"][n]["cpu_s"] / r["machine"]["threads"] for n in names]
        a.bar([i + k * width for i in range(len(names))], vals, width, label=f"ours {r['backend'][:40]} (CPU s / threads)")
        k += 1
    a.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    a.set_ylabel("seconds")
    a.set_title("PIFuHD encode stages, 2 CPU threads")
    a.legend(fontsize=7)
    for r in results:
        xs = sorted(int(x) for x in r["resolutions"])
        b.plot(xs, [r["resolutions"][str(x)]["cpu_s_per_frame_per_thread"] for x in xs], "o-",
               label=f"{r['model']} {r['backend'][:30]} (CPU s / threads)")
        b.plot(xs, [r["resolutions"][str(x)]["latency"]["median_s"] for x in xs], "x--",
               label=f"{r['model']} {r['backend'][:30]} (wall)")
    b.plot([256, 512], [39.5, 112.5], "s:", color="k", label="reference PIFuHD (wall, 2 threads)")
    b.axhline(15, color="r", lw=0.8, ls=":", label="target 15 s at 512")
    b.set_xlabel("resolution")
    b.set_ylabel("seconds per frame")
    b.set_yscale("log")
    b.set_title("end to end, one person per frame")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pifuhd-full", help="pifuhd-full (random weights), embedded, or a checkpoint path")
    ap.add_argument("--resolution", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--frames", type=int, default=3, help="timed frames per resolution (after one warm-up)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions per encode stage")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--engines-dir", default=None)
    ap.add_argument("--no-stages", action="store_true", help="skip the per-stage breakdown")
    ap.add_argument("--build-only", action="store_true", help="build/cache the engines and exit")
    ap.add_argument("--no-huge-pages", action="store_true", help="measure without huge pages for large tensors")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--plot", default=None, help="write a PNG plot here (with --json results or --plot-only files)")
    ap.add_argument("--plot-only", nargs="*", default=None, help="only plot these result JSON files")
    args = ap.parse_args()
    if args.no_huge_pages:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "0"
    from streamrecon.cli.process import prepare_process

    prepare_process()  # as the CLI does, before torch is imported
    if args.plot_only is not None:
        plot([json.loads(Path(p).read_text()) for p in args.plot_only], args.plot or "bench_e2e.png")
        return 0
    if not args.build_only and args.backend not in ("eager",):
        cmd = [sys.executable, __file__, "--build-only"] + [a for a in sys.argv[1:] if a not in ("--build-only",)]
        subprocess.run(cmd, check=True)
    res = run(args)
    if args.build_only:
        print(json.dumps(res, indent=1), file=sys.stderr)
        return 0
    emit(res, args.json)
    if args.plot:
        plot([res], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
