"""``streamrecon run VIDEO --out DIR``: every frame of a video file, stream or image folder to one
mesh per person in a run directory (docs/run_dir.md), optionally published over ZeroMQ."""
from __future__ import annotations

import argparse
import sys

from .streaming import add_out_flags, add_publish_flags, add_stage_flags, print_summary, progress_bar, session_config


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="reconstruct every frame of a video into a run directory",
                              description=__doc__)
    p.add_argument("video", help="video file (mp4, mkv, avi, ...), stream URL, image folder, or synthetic:frames=N,size=WxH")
    p.add_argument("--out", required=True, help="run directory to write (created; it must be empty unless --overwrite or --resume)")
    add_out_flags(p, resume=True)
    p.add_argument("--format", choices=("obj", "ply"), default="obj", help="mesh file format (default %(default)s)")
    p.add_argument("--no-save-inputs", action="store_true", help="do not store the input frames as JPEG")
    add_publish_flags(p, default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stage_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..stream.session import open_session

    cfg = session_config(args, source=args.video)
    with open_session(cfg) as session:
        if session.publisher is not None:  # the address actually bound (a port of 0 picks a free one)
            print(f"publishing meshes on {session.publisher.endpoint}", file=sys.stderr)
        bar = None if args.no_progress else progress_bar("run", session.source.num_frames, cfg.pipeline.max_frames)
        if bar is not None and session.writer.done:
            bar.bar.update(len(session.writer.done))  # frames kept from the run being resumed
        try:
            res = session.run(on_result=bar.on_result if bar else None)
        finally:
            if bar is not None:
                bar.close()
    print_summary(res.summary, res.interrupted)
    kept = f" (and kept {res.summary['resumed']} frames of the resumed run)" if res.summary.get("resumed") else ""
    print(f"wrote {res.summary['meshes']} meshes{kept} and {args.out}/manifest.json", file=sys.stderr)
    return 130 if res.interrupted else 0
