"""``streamrecon eval-model``: the embedded model (or a checkpoint in its format) on the fixed
held-out synthetic set: Chamfer and P2S in cm, normal consistency, silhouette IoU (needs the train
extra to build the set once; it is cached).

    streamrecon eval-model [--checkpoint PATH] [--subjects 20] [--first 0] [--resolution 256]
                           [--cleanup product|largest|none] [--json OUT]
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields


def register(subparsers) -> None:
    from ..training.evaluate import EvalConfig
    from .help import field_docs

    p = subparsers.add_parser("eval-model", help="evaluate the embedded model on held-out synthetic people",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    docs = field_docs(EvalConfig)
    for f in fields(EvalConfig):
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            p.add_argument("--" + f.name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=default,
                           help=f"{docs.get(f.name, '')} (default: {default})")
            continue
        typ = {int: int, float: float}.get(type(default)) or (float if "float" in str(f.type) else str)
        p.add_argument("--" + f.name.replace("_", "-"), type=typ, default=default, help=f"{docs.get(f.name, '')} (default: {default})")
    p.add_argument("--checkpoint", help="embedded-format weights (default: the ones shipped in the package)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from tqdm import tqdm

    from ..training.evaluate import EvalConfig, evaluate_model
    from ..models.embedded.model import load_default, load_embedded
    from ..errors import UserInputError

    if args.subjects < 1 or args.resolution < 16 or args.first < 0:
        raise UserInputError("--subjects must be >= 1, --first >= 0 and --resolution >= 16")
    try:
        cfg = EvalConfig(**{f.name: getattr(args, f.name) for f in fields(EvalConfig)})
    except ValueError as exc:
        raise UserInputError(f"--{exc}") from None
    model = load_embedded(args.checkpoint, args.device) if args.checkpoint else load_default(args.device)
    bar = tqdm(total=cfg.subjects, desc="held-out subjects", dynamic_ncols=True)
    res = evaluate_model(model, cfg, progress=bar.update)
    bar.close()
    print(f"{'subject':>7} {'chamfer cm':>10} {'p2s cm':>8} {'normal c.':>9} {'sil IoU':>8} {'rec s':>6}")
    for r in res["subjects"]:
        print(f"{r['subject']:>7} {r['chamfer_cm']:>10.2f} {r['p2s_cm']:>8.2f} {r['normal_consistency']:>9.3f} {r['silhouette_iou']:>8.4f} {r['reconstruct_s']:>6.2f}")
    for label in ("mean", "+-", "median"):  # +-: the standard error of the mean
        m = res["stderr" if label == "+-" else label]
        print(f"{label:>7} {m['chamfer_cm']:>10.2f} {m['p2s_cm']:>8.2f} {m['normal_consistency']:>9.3f} {m['silhouette_iou']:>8.4f} {m['reconstruct_s']:>6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0
