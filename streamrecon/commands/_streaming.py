"""Flags and helpers shared by ``run`` and ``live`` (mirroring ``StageConfig`` and
``PipelineConfig`` field by field). No heavy imports here."""
from __future__ import annotations

import argparse
import sys

from ..pipeline import PipelineConfig
from ..recon_stage import MODELS, StageConfig


def add_stage_flags(p: argparse.ArgumentParser, policy_default: str = "auto") -> None:
    g = p.add_argument_group("reconstruction")
    g.add_argument("--model", choices=MODELS, default=StageConfig.model,
                   help="default: the network (--checkpoint or the embedded model); synthetic: a sphere over bright pixels (checks the streaming path without a network)")
    g.add_argument("--checkpoint", default=StageConfig.checkpoint, help="PIFuHD checkpoint (default: the embedded model)")
    g.add_argument("--resolution", type=int, default=StageConfig.resolution, help="marching-cubes grid points per axis (default %(default)s)")
    g.add_argument("--mesh-frame", choices=("image", "crop"), default=StageConfig.mesh_frame,
                   help="vertex frame: image (frame pixels, y down) or crop (normalised crop frame); default %(default)s")
    g.add_argument("--people", choices=("auto", "full-frame"), default=StageConfig.people,
                   help="person finder: auto (detector when available) or full-frame (one centred square crop)")
    g.add_argument("--detect-every", type=int, default=StageConfig.detect_every, metavar="N",
                   help="run the person detector on every Nth frame while people are tracked (the landmark model follows "
                        "them in between; newcomers are found within N frames; 1 = every frame; default %(default)s)")
    g.add_argument("--no-silhouette-fill", dest="silhouette_fill", action="store_false",
                   help="do not give every grid column under the person mask a surface (the fill keeps thin parts' outlines; "
                        "docs/embedded_model.md)")
    g.add_argument("--mirror-average", action="store_true",
                   help="average each person's occupancy with their mirror image's: a little closer to the body, "
                        "half the frame rate (docs/embedded_model.md)")
    g.add_argument("--threads", type=int, default=StageConfig.threads,
                   help="PyTorch CPU threads of the network (0 = auto: half the cores for the embedded model, whose people/network/meshing steps run on their own threads)")
    from ..backends.flags import add_backend_flags

    add_backend_flags(p)
    q = p.add_argument_group("streaming")
    q.add_argument("--policy", choices=("auto", "latest", "block"), default=policy_default,
                   help="full frame queue: latest drops stale frames (live), block loses nothing (files); auto picks by source")
    q.add_argument("--queue-size", type=int, default=PipelineConfig.queue_size,
                   help="frames waiting for reconstruction (0 = 1 for latest, 4 for block)")
    q.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")


def stage_config(args: argparse.Namespace) -> StageConfig:
    from ..errors import UserInputError
    from ..resources import check_recon_memory

    if args.resolution < 2:
        raise UserInputError(f"--resolution: expected an integer >= 2, got {args.resolution}")
    if args.threads < 0:
        raise UserInputError(f"--threads: expected an integer >= 0 (0 = auto), got {args.threads}")
    if args.detect_every < 1:
        raise UserInputError(f"--detect-every: expected an integer >= 1 (1 = every frame), got {args.detect_every}")
    check_recon_memory(args.resolution)  # before a camera opens or an output folder is made
    return StageConfig(model=args.model, checkpoint=args.checkpoint, resolution=args.resolution,
                       mesh_frame=args.mesh_frame, people=args.people, detect_every=args.detect_every,
                       backend=args.backend, precision=args.precision, engines_dir=args.engines_dir,
                       threads=args.threads, silhouette_fill=args.silhouette_fill,
                       mirror_average=args.mirror_average)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(policy=args.policy, queue_size=args.queue_size, max_frames=args.max_frames)


def print_summary(summary: dict, interrupted: bool = False) -> None:
    from ..runstats import format_summary

    if interrupted:
        print("streamrecon: interrupted; partial results kept", file=sys.stderr)
    print(format_summary(summary), file=sys.stderr)
