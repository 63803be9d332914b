"""``streamrecon subscribe --connect ADDR --out DIR``: record a mesh stream to files
(``DIR/meshes/frame_XXXXXX_pN.obj`` and one JSON line per message in ``DIR/messages.jsonl``)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("subscribe", help="record a published mesh stream to files", description=__doc__)
    p.add_argument("--connect", default="tcp://127.0.0.1:5555", help="publisher address (default %(default)s)")
    p.add_argument("--curve-keys", default=None, metavar="DIR",
                   help="authenticate to a CURVE publisher with DIR/client.key_secret and DIR/server.key")
    p.add_argument("--out", required=True, help="folder to write (created)")
    p.add_argument("--format", choices=("obj", "ply"), default="obj", help="mesh file format (default %(default)s)")
    p.add_argument("--max-messages", type=int, default=None, help="stop after this many meshes")
    p.add_argument("--idle-timeout", type=float, default=None,
                   help="stop after this many seconds without a message (default: wait for the end of stream)")
    p.add_argument("--latest", action="store_true",
                   help="keep only the newest mesh when falling behind (bounded latency; skipped ones counted)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from ..errors import UserInputError
    from ..mesh.io import write_mesh
    from ..stream.run_writer import mesh_name
    from ..transport.subscriber import MeshSubscriber

    if args.curve_keys:
        from ..transport.curve import client_keys

        client_keys(args.curve_keys)  # a key problem is reported before the folder is made
    out = Path(args.out)
    try:
        (out / "meshes").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"--out: cannot create {str(out)!r}: {exc.strerror}") from None
    n = 0
    latencies = []
    interrupted = False
    reason = "idle timeout"
    with MeshSubscriber(args.connect, curve_keys=args.curve_keys) as sub, open(out / "messages.jsonl", "a", encoding="utf-8") as log_file:
        try:
            while args.max_messages is None or n < args.max_messages:
                msg = (sub.recv_latest if args.latest else sub.recv)(args.idle_timeout)
                if msg is None:
                    break
                if msg.header.is_end:
                    reason = "end of stream"
                    break
                h = msg.header
                name = mesh_name(h.frame_index, h.person_id, args.format)
                write_mesh(msg.mesh, out / name, args.format)
                lat = sub.latency(msg)
                latencies.append(lat)
                log_file.write(json.dumps({
                    "seq": h.seq, "frame": h.frame_index, "person": h.person_id, "file": name,
                    "vertices": h.num_vertices, "faces": h.num_faces, "coord_frame": h.coord_frame,
                    "rect": list(h.rect) if h.rect else None, "capture_time": h.capture_time,
                    "publish_time": h.publish_time, "receive_time": time.time(), "latency_s": lat}) + "\n")
                log_file.flush()
                n += 1
            else:
                reason = "max messages"
        except KeyboardInterrupt:
            interrupted = True
            reason = "interrupted"
        lat_ms = sorted(x * 1e3 for x in latencies)
        p50 = lat_ms[len(lat_ms) // 2] if lat_ms else 0.0
        print(f"received {n} meshes ({reason}); missed {sub.missed}, skipped {sub.skipped}, "
              f"rejected {sub.rejected}; latency p50 {p50:.1f} ms", file=sys.stderr)
    return 130 if interrupted else 0
