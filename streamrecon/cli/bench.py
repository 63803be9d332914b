"""``streamrecon bench query``: the occupancy query engine on a human-shaped field — octree vs the
dense grid (queries, volume IoU, per-stage seconds) and sparse marching cubes vs PyMCubes.

Fields: ``body`` (analytic thin-limbed human, default), ``sphere``, ``torus``, ``fixture`` (the
small PIFuHD fixture model on its own input; needs ../shared and the PIFuHD loader)."""
from __future__ import annotations

import argparse
import dataclasses

from ..occupancy.config import OctreeConfig
from .help import field_docs

FIELDS = ("body", "sphere", "torus", "fixture")


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks of the reconstruction engine (query: octree vs dense)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    q = bsub.add_parser("query", help="octree vs dense occupancy queries and sparse vs PyMCubes marching cubes",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--resolution", type=int, default=256, help="grid points per axis (default %(default)s)")
    q.add_argument("--field", choices=FIELDS, default="body", help="occupancy field (default %(default)s)")
    q.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default %(default)s)")
    q.add_argument("--no-dense", action="store_true", help="skip the dense grid (no IoU, no PyMCubes timing)")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    q.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    q.add_argument("--shared", default="../shared", help="shared folder holding fixtures/ (for --field fixture)")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    helps = field_docs(OctreeConfig)
    for f in dataclasses.fields(OctreeConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            q.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                           help="turn off: " + helps.get(f.name, ""))
        else:
            q.add_argument(flag, type=type(f.default), default=f.default,
                           help=helps.get(f.name, "") + " (default %(default)s)")
    q.set_defaults(func=main_query)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def main_query(args: argparse.Namespace) -> int:
    import json
    import sys

    from ..errors import UserInputError

    if args.resolution < 8 or args.resolution > 2048:
        raise UserInputError(f"--resolution: expected 8..2048 points per axis, got {args.resolution}")
    if args.repeats < 1:
        raise UserInputError(f"--repeats: expected >= 1, got {args.repeats}")
    for name in ("band", "margin", "spread"):
        if getattr(args, name) < 0:
            raise UserInputError(f"--{name}: expected >= 0 (0 = off), got {getattr(args, name)}")
    import torch

    from ..occupancy.compare import make_query_fn, query_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = OctreeConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(OctreeConfig)})
    try:
        query_fn = make_query_fn(args.field, args.shared, args.device)
    except (ImportError, FileNotFoundError, OSError) as exc:
        raise UserInputError(f"--field {args.field}: cannot load it ({exc})") from None
    say = None if args.json else (lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    res = query_benchmark(query_fn, args.resolution, cfg, repeats=args.repeats, dense=not args.no_dense,
                          device=args.device, progress=say)
    res["field"] = args.field
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    s = res["seconds"]
    rows = [
        ("field", args.field),
        ("resolution", res["resolution"]),
        ("dense points", f"{res['dense_points']:,}"),
        ("octree points", f"{res['octree_points']:,} ({100 * res['query_fraction']:.3f}% of dense)"),
        ("IoU vs dense", f"{res['iou_vs_dense']:.6f}" if "iou_vs_dense" in res else "-"),
        ("vertices octree/dense", f"{res['vertices_octree']:,} / {res.get('vertices_dense', '-')}"),
        ("octree total s (median)", f"{s['octree_total']['median']:.3f} (network {s['octree_query']['median']:.3f})"),
        ("sparse MC s (cells + kernel)", f"{s['mc_sparse_cells']['median']:.3f} + {s['mc_sparse_kernel']['median']:.3f}"),
        ("PyMCubes s", f"{s['mc_pymcubes']['median']:.3f}" if "mc_pymcubes" in s else "-"),
        ("dense total s", f"{s['dense_total']:.2f}" if "dense_total" in s else "-"),
        ("octree peak RSS MiB", f"{res['octree_peak_rss_mib']:.0f}"),
    ]
    for k, v in rows:
        print(f"{k:<30} {v}")
    return 0
