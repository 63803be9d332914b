"""``streamrecon run VIDEO --out DIR``: every frame of a video file, stream or image folder to one
mesh per person in a run directory (docs/run_dir.md), optionally published over ZeroMQ."""
from __future__ import annotations

import argparse
import sys

from ._streaming import add_stage_flags, pipeline_config, print_summary, stage_config


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="reconstruct every frame of a video into a run directory",
                              description=__doc__)
    p.add_argument("video", help="video file (mp4, mkv, avi, ...), stream URL, image folder, or synthetic:frames=N,size=WxH")
    p.add_argument("--out", required=True, help="run directory to write (created)")
    p.add_argument("--format", choices=("obj", "ply"), default="obj", help="mesh file format (default %(default)s)")
    p.add_argument("--no-save-inputs", action="store_true", help="do not store the input frames as JPEG")
    p.add_argument("--publish", nargs="?", const="tcp://127.0.0.1:5555", default=None, metavar="ADDR",
                   help="also publish meshes over ZeroMQ (default address tcp://127.0.0.1:5555)")
    p.add_argument("--curve-keys", default=None, metavar="DIR",
                   help="with --publish: admit only subscribers whose key is in DIR/authorized_clients (CURVE; streamrecon keys generate DIR)")
    p.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                   help="with --publish: wait for N subscribers before reading frames")
    p.add_argument("--wait-timeout", type=float, default=30.0, help="seconds to wait for them (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stage_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..capture import open_source
    from ..errors import UserInputError
    from ..recon_stage import build_stage, model_label
    from ..runwriter import RunWriter
    from ..session import run_session

    if args.wait_subscribers and not args.publish:
        raise UserInputError("--wait-subscribers needs --publish")
    if args.curve_keys and not args.publish:
        raise UserInputError("--curve-keys needs --publish")
    scfg = stage_config(args)
    source = open_source(args.video)
    publisher = None
    started = False  # once the pipeline runs, its capture thread owns (and closes) the source
    try:
        stage = build_stage(scfg)
        writer = RunWriter(args.out, source=args.video, source_kind=source.kind, model=model_label(scfg),
                           resolution=scfg.resolution, mesh_format=args.format, mesh_frame=scfg.mesh_frame,
                           save_inputs=not args.no_save_inputs)
        if args.publish:
            from ..publisher import MeshPublisher

            publisher = MeshPublisher(args.publish, curve_keys=args.curve_keys)
            if args.wait_subscribers and not publisher.wait_for_subscribers(args.wait_subscribers, args.wait_timeout):
                raise UserInputError(f"--wait-subscribers: no {args.wait_subscribers} subscriber(s) within {args.wait_timeout} s on {publisher.endpoint}")
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            total = source.num_frames
            if args.max_frames is not None:
                total = min(total, args.max_frames) if total else args.max_frames
            bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, desc="run")

        def on_result(result, latency):
            if bar is not None:
                bar.set_postfix(latency=f"{latency * 1e3:.0f}ms", refresh=False)
                bar.update(1)

        started = True
        try:
            res = run_session(source, stage, pipeline_config(args), writer=writer, publisher=publisher, on_result=on_result, graceful_sigint=True)
        finally:
            if bar is not None:
                bar.close()
    finally:
        if not started:
            source.close()
        if publisher is not None:
            publisher.close()
    print_summary(res.summary, res.interrupted)
    print(f"wrote {res.summary['meshes']} meshes and {args.out}/manifest.json", file=sys.stderr)
    return 130 if res.interrupted else 0
