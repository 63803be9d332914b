"""``streamrecon train``: train the embedded model on synthetic people (needs the train extra),
or export a run's final (or best) weights into the package format.

    streamrecon train --out runs/emb [--resume] [--hours H] [--seed S] [--data-seed D] ...
    streamrecon train --out runs/emb --generate-only          # only the synthetic shards
    streamrecon train --out runs/emb --export streamrecon/models/embedded/weights/default.pt
"""
from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields

from .help import field_docs


def register(subparsers) -> None:
    from ..training.loop import TrainConfig  # light: no torch at module level

    p = subparsers.add_parser("train", help="train the embedded model on synthetic people (streamrecon[train])",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    docs = field_docs(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "out":
            p.add_argument(flag, required=True, help=docs.get(f.name))
        elif f.name == "generate":
            p.add_argument("--no-generate", dest="generate", action="store_false", help="train on the shards on disk, rescanning them (no generation)")
        elif f.name == "net":
            p.add_argument("--net", type=json.loads, default={}, help="NetConfig overrides as JSON, e.g. '{\"feat\": 64}'")
        else:
            default = f.default if f.default is not MISSING else None
            typ = {int: int, float: float, str: str}.get(type(default), str)
            p.add_argument(flag, type=typ, default=default, help=f"{docs.get(f.name, '')} (default: {default})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--generate-only", action="store_true", help="generate the synthetic shards (and validation shard) and exit")
    p.add_argument("--export", metavar="PATH", help="write the run's final weights (last.pt: the end of its learning-rate "
                   "schedule) in the package format to PATH and exit")
    p.add_argument("--export-best", action="store_true", help="with --export: the run's best.pt (highest validation IoU) "
                   "instead; that score picks worse meshes than the schedule's end (docs/embedded_model.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import logging
    import shutil
    from pathlib import Path

    from ..errors import UserInputError
    from ..training.loop import TrainConfig, train

    if args.export:
        src = Path(args.out) / ("best.pt" if args.export_best else "last.pt")
        if not src.is_file():
            raise UserInputError(f"--export: {src} does not exist (train first)")
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        if args.export_best:
            from ..models.embedded.model import load_embedded

            load_embedded(src)  # refuses a broken file before it lands in the package
            shutil.copyfile(src, args.export)
        else:
            from ..training.export import export_weights

            export_weights([src], args.export)  # the training checkpoint's weights, in the package format
        logging.getLogger(__name__).info("exported %s -> %s", src, args.export)
        print(f"exported {src} -> {args.export}")
        return 0
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    cfg = TrainConfig(**kw)
    if args.generate_only:
        from ..training.loop import ensure_data, train_net_config

        body = train_net_config(cfg).body
        print(f"shards in {ensure_data(cfg, progress=not args.no_progress, body=body)}")
        return 0
    path = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"best checkpoint: {path}")
    return 0
