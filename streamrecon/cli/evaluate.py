"""``streamrecon evaluate RUN_DIR``: render every mesh of a run with the camera of its crop,
compare it with the input frame and person mask, judge it in 3D against the person's fitted body
where the run holds one (the views the camera never saw), write ``metrics.json`` and
``report.html``."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ..eval.report.config import RENDER_VIEWS, EvaluateConfig
from .help import field_docs

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="render each mesh of a run, compare it with its frame and, in 3D, with the fitted body: "
                    "metrics.json + report.html",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `streamrecon run --out`")
    p.add_argument("--out", default=None, help="where to write metrics.json, report.html and images/ (default RUN_DIR/eval)")
    helps = field_docs(EvaluateConfig)  # one flag per config field, its docstring as the help
    for f in dataclasses.fields(EvaluateConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                       choices=RENDER_VIEWS if f.name == "save_renders" else None,
                       help=helps[f.name] + " (default %(default)s)")
    p.add_argument("--no-report", action="store_true", help="write metrics.json only")
    p.set_defaults(func=main)


def main(args) -> int:
    import json
    from pathlib import Path

    from ..mesh.io import atomic_write_bytes
    from ..eval.report.evaluation import evaluate_run
    from ..eval.report.run_dir import load_manifest

    cfg = EvaluateConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvaluateConfig)})
    manifest = load_manifest(args.run_dir)
    out = Path(args.out) if args.out else manifest.root / "eval"
    out.mkdir(parents=True, exist_ok=True)
    n = len(manifest.frames[: cfg.max_frames] if cfg.max_frames else manifest.frames)
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=n, unit="frame", desc="evaluate", file=sys.stderr)
    doc = evaluate_run(manifest, cfg, on_frame=(lambda done, total: progress.update(1)) if progress else None,
                       renders_dir=out / "renders")
    if progress:
        progress.close()
    atomic_write_bytes(out / "metrics.json", json.dumps(doc, indent=1, allow_nan=False).encode("utf-8"))
    s = doc["summary"]
    iou = s["iou"]
    print(f"evaluated {s['frames']} frames, {s['person_frames']} person-frames: "
          + (f"IoU mean {iou['mean']:.3f} (min {iou['min']:.3f}), " if iou else "no masks, ")
          + f"{s['failing']} failing (IoU < {cfg.iou_threshold}, no mesh or 3D) in {s['eval_s']:.1f} s")
    d = s["depth"]
    if d["judged"]:
        cov, thin = d["body_covered"], d["thickness_min_ratio"]
        print(f"3D against the fitted bodies: {d['failing']} of {d['judged']} failing; body covered mean "
              + (f"{cov['mean']:.3f} (min {cov['min']:.3f})" if cov else "–") + ", thinnest band mean "
              + (f"{thin['mean']:.2f} (min {thin['min']:.2f})" if thin else "–"))
    for item in s["not_made"]:
        print(f"not made: {', '.join(item['figures'])}: {item['reason']}")
    print(f"metrics: {out / 'metrics.json'}")
    if cfg.save_renders != "none":
        print(f"renders: {out / 'renders'} ({cfg.save_renders} view)")
    if not args.no_report:
        from ..eval.report.html import write_report

        page = write_report(doc, manifest, cfg, out)
        print(f"report:  {page}")
    return 0
