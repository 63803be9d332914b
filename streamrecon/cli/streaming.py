"""Flags and helpers shared by ``run`` and ``live``: the flags mirror ``SessionConfig``,
``StageConfig`` and ``PipelineConfig`` field by field and ``session_config`` turns them into one
``SessionConfig`` (the configs check every value). No heavy imports here."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..stream.pipeline import PipelineConfig
from ..stream.session import SessionConfig
from ..stream.stages import MODELS, PEOPLE, StageConfig
from ..types import FRAMES


def add_stage_flags(p: argparse.ArgumentParser, policy_default: str = "auto") -> None:
    g = p.add_argument_group("reconstruction")
    g.add_argument("--model", choices=MODELS, default=StageConfig.model,
                   help="default: the network (--checkpoint or the embedded model shipped as default.pt, which reads the person mask alone); "
                        "mask-only: the embedded model that reads the person mask alone; "
                        "body: the embedded model that reads the mask and each person's fitted body; "
                        "synthetic: a sphere over bright pixels (checks the streaming path without a network)")
    g.add_argument("--checkpoint", default=StageConfig.checkpoint, help="PIFuHD checkpoint (default: the embedded model)")
    g.add_argument("--resolution", type=int, default=StageConfig.resolution, help="marching-cubes grid points per axis (default %(default)s)")
    g.add_argument("--mesh-frame", choices=FRAMES, default=StageConfig.mesh_frame,
                   help="vertex frame: image (frame pixels, y down) or crop (normalised crop frame); default %(default)s")
    g.add_argument("--people", choices=PEOPLE, default=StageConfig.people,
                   help="person finder: auto (detector when available) or full-frame (one centred square crop)")
    g.add_argument("--detect-every", type=int, default=StageConfig.detect_every, metavar="N",
                   help="run the person detector on every Nth frame while people are tracked (the landmark model follows "
                        "them in between; newcomers are found within N frames; 1 = every frame; default %(default)s)")
    g.add_argument("--no-silhouette-fill", dest="silhouette_fill", action="store_false",
                   help="do not give every grid column under the person mask a surface (the fill keeps thin parts' outlines; "
                        "docs/embedded_model.md)")
    g.add_argument("--no-body", dest="body", action="store_false",
                   help="do not fit the body to each person (the body-reading model then sees none; no body in the manifest)")
    g.add_argument("--save-body", action="store_true",
                   help="with --out: also write each person's fitted body as a mesh (bodies/frame_NNNNNN_pID.obj), "
                        "in the frame and depth origin of the clothed meshes")
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


def add_out_flags(p: argparse.ArgumentParser, resume: bool) -> None:
    """``--overwrite`` (and, for ``run``, ``--resume``): what to do when ``--out`` holds a run."""
    from .help import field_docs

    docs = field_docs(SessionConfig)
    # not an argparse exclusive group: SessionConfig refuses both at once in one line
    p.add_argument("--overwrite", action="store_true", help=docs.get("overwrite"))
    if resume:
        p.add_argument("--resume", action="store_true", help=docs.get("resume"))


def add_publish_flags(p: argparse.ArgumentParser, default: Optional[str]) -> None:
    """``--publish`` (``run``: off unless given, bare = the default address; ``live``: always on)
    and ``--curve-keys``; ``run`` also waits for subscribers."""
    from ..transport.publisher import DEFAULT_ADDRESS

    g = p.add_argument_group("publishing")
    if default is None:
        g.add_argument("--publish", nargs="?", const=DEFAULT_ADDRESS, default=None, metavar="ADDR",
                       help=f"also publish meshes over ZeroMQ (default address {DEFAULT_ADDRESS})")
    else:
        g.add_argument("--publish", default=default, metavar="ADDR",
                       help="ZeroMQ address to publish on (default %(default)s; binding a non-local address warns)")
    g.add_argument("--curve-keys", default=None, metavar="DIR",
                   help="admit only subscribers whose key is in DIR/authorized_clients (CURVE; streamrecon keys generate DIR)")
    g.add_argument("--drain-timeout", type=float, default=SessionConfig.drain_timeout_s, metavar="S",
                   help="at the end, seconds to wait for slow subscribers to take what is queued for them and the end "
                        "of stream; what is left then is dropped and counted (default %(default)s)")
    if default is None:
        g.add_argument("--wait-subscribers", type=int, default=SessionConfig.wait_subscribers, metavar="N",
                       help="with --publish: wait for N subscribers before reading frames")
        g.add_argument("--wait-timeout", type=float, default=SessionConfig.wait_timeout_s,
                       help="seconds to wait for them (default %(default)s)")


def session_config(args: argparse.Namespace, source: Optional[str] = None, camera: Optional[int] = None,
                   live: bool = False, reconnect=None) -> SessionConfig:
    """The parsed flags of ``run`` / ``live`` as one ``SessionConfig`` (the configs check them)."""
    from ..stream.capture import ReconnectConfig

    stage = StageConfig(model=args.model, checkpoint=args.checkpoint, resolution=args.resolution,
                        mesh_frame=args.mesh_frame, people=args.people, detect_every=args.detect_every,
                        backend=args.backend, precision=args.precision, engines_dir=args.engines_dir,
                        threads=args.threads, silhouette_fill=args.silhouette_fill,
                        mirror_average=args.mirror_average, body=args.body)
    pipe = PipelineConfig(policy=args.policy, queue_size=args.queue_size, max_frames=args.max_frames)
    return SessionConfig(source=source, camera=camera, live=live, reconnect=reconnect or ReconnectConfig(),
                         stage=stage, pipeline=pipe, out=args.out, mesh_format=args.format,
                         save_inputs=not getattr(args, "no_save_inputs", False), save_body=args.save_body,
                         publish=args.publish,
                         curve_keys=args.curve_keys, wait_subscribers=getattr(args, "wait_subscribers", 0),
                         wait_timeout_s=getattr(args, "wait_timeout", SessionConfig.wait_timeout_s),
                         duration_s=getattr(args, "duration", None), drain_timeout_s=args.drain_timeout, overwrite=getattr(args, "overwrite", False),
                         resume=getattr(args, "resume", False))


class progress_bar:
    """A tqdm bar on stderr that counts frames and shows the latency of the last one."""

    def __init__(self, desc: str, num_frames: Optional[int] = None, max_frames: Optional[int] = None) -> None:
        from tqdm import tqdm

        total = num_frames
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        self.bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, desc=desc)

    def on_result(self, result, latency: float) -> None:
        self.bar.set_postfix(latency=f"{latency * 1e3:.0f}ms", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def print_summary(summary: dict, interrupted: bool = False) -> None:
    from ..stream.stats import format_summary

    if interrupted:
        print("streamrecon: interrupted; partial results kept", file=sys.stderr)
    print(format_summary(summary), file=sys.stderr)
