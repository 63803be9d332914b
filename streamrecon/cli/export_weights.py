"""``streamrecon export-weights CKPT [CKPT...] --out FILE``: training checkpoints (or embedded
weights) to an embedded-format file that ``--checkpoint`` and ``eval-model`` read; several are
averaged tensor by tensor (runs fine-tuned from the same start: a one-network ensemble)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("export-weights", help="training checkpoint(s) -> embedded weights (averaging several)",
                              description=__doc__)
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="runs/NAME/last.pt, best.pt or embedded weights")
    p.add_argument("--out", required=True, metavar="FILE", help="embedded-format file to write")
    p.add_argument("--note", default="", help="free text stored in the file's meta")
    p.add_argument("--iso-level", type=float, default=None, metavar="L",
                   help="occupancy level the product meshes these weights at (default: the sources' own, else 0.5)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..training.export import export_weights

    path, meta = export_weights(args.checkpoints, args.out, note=args.note, iso_level=args.iso_level)
    n = len(args.checkpoints)
    print(f"wrote {path} ({'mean of ' + str(n) + ' checkpoints, ' if n > 1 else ''}step {meta['step']})")
    return 0
