"""``streamrecon live --camera 0 [--view]``: reconstruct a camera (or a stream, or a file played in
real time) as it comes, publishing meshes over ZeroMQ. Stale frames are dropped (counted) so latency
stays bounded; Ctrl-C stops within 2 s and prints the summary."""
from __future__ import annotations

import argparse
import sys

from ..capture import ReconnectConfig
from ._streaming import add_stage_flags, pipeline_config, print_summary, stage_config


def register(subparsers) -> None:
    p = subparsers.add_parser("live", help="reconstruct a camera or stream live and publish the meshes", description=__doc__)
    p.add_argument("source", nargs="?", default=None,
                   help="stream URL, video file (played in real time) or synthetic:...; omit with --camera")
    p.add_argument("--camera", type=int, default=None, metavar="N", help="webcam index (/dev/videoN)")
    p.add_argument("--publish", default="tcp://127.0.0.1:5555", metavar="ADDR",
                   help="ZeroMQ address to publish on (default %(default)s; binding a non-local address warns)")
    p.add_argument("--curve-keys", default=None, metavar="DIR",
                   help="admit only subscribers whose key is in DIR/authorized_clients (CURVE; streamrecon keys generate DIR)")
    p.add_argument("--view", action="store_true", help="open the viewer (streamrecon view) on the stream")
    p.add_argument("--out", default=None, help="also record a run directory here")
    p.add_argument("--format", choices=("obj", "ply"), default="obj", help="mesh format with --out")
    p.add_argument("--reconnect-attempts", type=int, default=ReconnectConfig.attempts, metavar="N",
                   help="camera/stream lost: reopen attempts (back-off doubling) before stopping (default %(default)s)")
    p.add_argument("--reconnect-backoff", type=float, default=ReconnectConfig.backoff_s, metavar="S",
                   help="seconds before the first reopen attempt (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    add_stage_flags(p)
    p.set_defaults(func=main)


def needs_pacing(source) -> bool:
    """A file or image folder under ``live`` plays at its frame rate, like a camera (opened with
    ``live=True`` it says it is live, but nothing makes it wait: it would be read as fast as it
    decodes and nearly every frame dropped)."""
    return getattr(source, "kind", "") in ("file", "images") or not source.live


def main(args: argparse.Namespace) -> int:
    import subprocess
    import threading

    from ..capture import PacedSource, open_source
    from ..errors import UserInputError
    from ..publisher import MeshPublisher
    from ..recon_stage import build_stage, model_label
    from ..runwriter import RunWriter
    from ..session import run_session

    if (args.camera is None) == (args.source is None):
        raise UserInputError("live: pass either --camera N or a SOURCE (stream URL, file, synthetic:...)")
    if args.view:
        from ..viewer import check_can_view

        check_can_view()  # fail before the camera opens, not in a child process
    reconnect = ReconnectConfig(attempts=args.reconnect_attempts, backoff_s=args.reconnect_backoff)
    source = open_source(args.source, camera=args.camera, live=True, reconnect=reconnect)
    if needs_pacing(source):
        source = PacedSource(source)
    scfg = stage_config(args)
    publisher = viewer = timer = None
    started = False
    stop = threading.Event()
    try:
        stage = build_stage(scfg)
        writer = None
        if args.out:
            writer = RunWriter(args.out, source=source.name, source_kind=source.kind, model=model_label(scfg),
                               resolution=scfg.resolution, mesh_format=args.format, mesh_frame=scfg.mesh_frame)
        publisher = MeshPublisher(args.publish, curve_keys=args.curve_keys)
        print(f"publishing meshes on {publisher.endpoint}", file=sys.stderr)
        if args.view:
            view_args = ["--curve-keys", args.curve_keys] if args.curve_keys else []
            viewer = subprocess.Popen([sys.executable, "-m", "streamrecon.cli", "view", "--connect", publisher.endpoint, *view_args])
        if args.duration:
            timer = threading.Timer(args.duration, stop.set)
            timer.daemon = True
            timer.start()
        from tqdm import tqdm

        bar = tqdm(unit="frame", file=sys.stderr, dynamic_ncols=True, desc="live")

        def on_result(result, latency):
            bar.set_postfix(latency=f"{latency * 1e3:.0f}ms", refresh=False)
            bar.update(1)
            if viewer is not None and viewer.poll() is not None:
                stop.set()  # the user closed the viewer window

        started = True
        try:
            res = run_session(source, stage, pipeline_config(args), writer=writer, publisher=publisher,
                              on_result=on_result, stop_event=stop, graceful_sigint=True)
        finally:
            bar.close()
    finally:
        if timer is not None:
            timer.cancel()
        if not started:
            source.close()
        if publisher is not None:
            publisher.close()
        if viewer is not None:
            _end_child(viewer)
    print_summary(res.summary, res.interrupted)
    return 130 if res.interrupted else 0


def _end_child(proc) -> None:
    """Stop the viewer we started: it leaves by itself on end of stream; else terminate, then kill."""
    import subprocess

    try:
        proc.wait(1.0)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
