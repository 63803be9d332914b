"""``streamrecon view --connect ADDR``: an Open3D window showing the newest mesh of a stream, with
its rate and capture-to-display latency (needs a display; Open3D from the ``view`` extra)."""
from __future__ import annotations

import argparse
import sys

from ..viewer import ViewerConfig


def register(subparsers) -> None:
    p = subparsers.add_parser("view", help="watch a published mesh stream in an Open3D window", description=__doc__)
    p.add_argument("--connect", default=ViewerConfig.address, help="publisher address (default %(default)s)")
    p.add_argument("--curve-keys", default=None, metavar="DIR",
                   help="authenticate to a CURVE publisher with DIR/client.key_secret and DIR/server.key")
    p.add_argument("--width", type=int, default=ViewerConfig.width, help="window width (default %(default)s)")
    p.add_argument("--height", type=int, default=ViewerConfig.height, help="window height (default %(default)s)")
    p.add_argument("--screenshot", default=None, metavar="PNG", help="save the window as PNG on exit")
    p.add_argument("--exit-after", type=int, default=None, metavar="N", help="close after N meshes were shown")
    p.add_argument("--timeout", type=float, default=None, help="close after this many seconds")
    p.add_argument("--keep-open", action="store_true", help="stay open after the publisher's end of stream")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..viewer import MeshViewer

    cfg = ViewerConfig(address=args.connect, curve_keys=args.curve_keys, width=args.width, height=args.height, screenshot=args.screenshot,
                       exit_after=args.exit_after, timeout=args.timeout, exit_on_end=not args.keep_open)
    viewer = MeshViewer(cfg)
    try:
        shown = viewer.run()
    finally:
        viewer.close()
    print(f"showed {shown} meshes; missed {viewer.sub.missed}, skipped {viewer.sub.skipped}; last: {viewer.status}",
          file=sys.stderr)
    return 0
