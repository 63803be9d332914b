"""``streamrecon live --camera 0 [--view]``: reconstruct a camera (or a stream, or a file played in
real time) as it comes, publishing meshes over ZeroMQ. Stale frames are dropped (counted) so latency
stays bounded; Ctrl-C stops within 2 s and prints the summary."""
from __future__ import annotations

import argparse
import sys

from ..stream.capture import ReconnectConfig
from ..transport.publisher import DEFAULT_ADDRESS
from .streaming import add_out_flags, add_publish_flags, add_stage_flags, print_summary, progress_bar, session_config


def register(subparsers) -> None:
    p = subparsers.add_parser("live", help="reconstruct a camera or stream live and publish the meshes", description=__doc__)
    p.add_argument("source", nargs="?", default=None,
                   help="stream URL, video file (played in real time) or synthetic:...; omit with --camera")
    p.add_argument("--camera", type=int, default=None, metavar="N", help="webcam index (/dev/videoN)")
    add_publish_flags(p, default=DEFAULT_ADDRESS)
    p.add_argument("--view", action="store_true", help="open the viewer (streamrecon view) on the stream")
    p.add_argument("--out", default=None, help="also record a run directory here (it must be empty unless --overwrite)")
    add_out_flags(p, resume=False)
    p.add_argument("--format", choices=("obj", "ply"), default="obj", help="mesh format with --out")
    p.add_argument("--reconnect-attempts", type=int, default=ReconnectConfig.attempts, metavar="N",
                   help="camera/stream lost: reopen attempts (back-off doubling) before stopping (default %(default)s)")
    p.add_argument("--reconnect-backoff", type=float, default=ReconnectConfig.backoff_s, metavar="S",
                   help="seconds before the first reopen attempt (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    add_stage_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import subprocess
    import threading

    from ..stream.session import open_session

    reconnect = ReconnectConfig(attempts=args.reconnect_attempts, backoff_s=args.reconnect_backoff)
    cfg = session_config(args, source=args.source, camera=args.camera, live=True, reconnect=reconnect)
    if args.view:
        from ..viewer import check_can_view

        check_can_view()  # fail before the camera opens, not in a child process
    viewer = None
    stop = threading.Event()
    with open_session(cfg) as session:
        print(f"publishing meshes on {session.publisher.endpoint}", file=sys.stderr)
        try:
            if args.view:
                view_args = ["--curve-keys", args.curve_keys] if args.curve_keys else []
                viewer = subprocess.Popen([sys.executable, "-m", "streamrecon.cli", "view", "--connect",
                                           session.publisher.endpoint, *view_args])
            bar = progress_bar("live")

            def on_result(result, latency):
                bar.on_result(result, latency)
                if viewer is not None and viewer.poll() is not None:
                    stop.set()  # the user closed the viewer window

            try:
                res = session.run(on_result=on_result, stop_event=stop)
            finally:
                bar.close()
        finally:
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
