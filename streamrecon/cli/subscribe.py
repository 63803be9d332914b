"""``streamrecon subscribe --connect ADDR --out DIR``: record a mesh stream to files
(``DIR/meshes/frame_XXXXXX_pN.obj`` and one JSON line per message in ``DIR/messages.jsonl``).
Stops at the publisher's end of stream (exit 0), after ``--max-messages`` or ``--idle-timeout``
(exit 0), or when a publisher it heard goes silent without an end of stream (exit 1: the end was
missed). A file that cannot be written (a full disk) stops it with one line (exit 8); what was
recorded before stays, each mesh listed in ``messages.jsonl``."""
from __future__ import annotations

import argparse
import math
import sys

LOST_EXIT = 1


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


class _Recording:
    """``DIR/meshes/*`` and ``DIR/messages.jsonl``, written so that a failure (a full disk) leaves
    every earlier mesh intact and listed: a mesh file is written whole (atomically) before its
    line, and a line that cannot be written whole is cut off again, with its mesh file removed."""

    def __init__(self, out, fmt: str) -> None:
        from ..mesh.io import make_output_dir, output_error

        self.out, self.fmt, self.count = out, fmt, 0
        make_output_dir(out / "meshes")
        self.log_path = out / "messages.jsonl"
        try:
            self._log = open(self.log_path, "ab", buffering=0)
        except OSError as exc:
            raise output_error(self.log_path, exc) from exc

    def add(self, mesh, name: str, entry: dict) -> None:
        import json
        import os

        from ..mesh.io import output_error, write_mesh

        path = self.out / name
        write_mesh(mesh, path, self.fmt)  # OutputError on failure, leaving nothing behind
        line = (json.dumps(entry, allow_nan=False) + "\n").encode()
        start = self._log.seek(0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:
                view = view[self._log.write(view):]
        except OSError as exc:
            self._log.truncate(start)  # frees space: works on a full disk
            os.unlink(path)
            raise output_error(self.log_path, exc) from exc
        self.count += 1

    def close(self) -> None:
        self._log.close()


def main(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ..errors import OutputError, UserInputError
    from ..stream.run_writer import mesh_name
    from ..transport.subscriber import MeshSubscriber

    if args.max_messages is not None and args.max_messages < 1:
        raise UserInputError(f"--max-messages: expected a count >= 1, got {args.max_messages}")
    if args.idle_timeout is not None and not (math.isfinite(args.idle_timeout) and args.idle_timeout > 0):
        raise UserInputError(f"--idle-timeout: expected seconds > 0, got {args.idle_timeout}")
    out = Path(args.out)
    latencies = []
    interrupted = False
    reason = "idle timeout"
    lost = False
    # the address and the keys are checked (one line) before the folder is made
    with MeshSubscriber(args.connect, curve_keys=args.curve_keys, bodies=True) as sub:
        rec = _Recording(out, args.format)
        try:
            while args.max_messages is None or rec.count < args.max_messages:
                msg = (sub.recv_latest if args.latest else sub.recv)(args.idle_timeout)
                if msg is None:
                    lost = sub.lost
                    if lost:
                        reason = "the publisher went silent without an end of stream: its end was missed"
                    elif not sub.received and sub.connection_state() != "connected":
                        reason = f"idle timeout; {sub.connection_state()} at {args.connect}"
                    break
                if msg.header.is_end:
                    reason = "end of stream"
                    break
                h = msg.header
                name = mesh_name(h.frame_index, h.person_id, args.format)
                lat = sub.latency(msg)
                entry = {
                    "seq": h.seq, "frame": h.frame_index, "person": h.person_id, "file": name,
                    "vertices": h.num_vertices, "faces": h.num_faces, "coord_frame": h.coord_frame,
                    "rect": list(h.rect) if h.rect else None, "capture_time": h.capture_time,
                    "publish_time": h.publish_time, "receive_time": time.time(), "latency_s": lat}
                if msg.body is not None:
                    entry["body"] = msg.body  # the person's fitted body (docs/protocol.md)
                try:
                    rec.add(msg.mesh, name, entry)
                except OutputError as exc:
                    raise OutputError(f"subscribe: {exc}; the {rec.count} mesh(es) received before are intact in "
                                      f"{out} and listed in messages.jsonl", errno=exc.errno, path=exc.path) from None
                latencies.append(lat)
            else:
                reason = "max messages"
        except KeyboardInterrupt:
            interrupted = True
            reason = "interrupted"
        finally:
            rec.close()
        lat_ms = sorted(x * 1e3 for x in latencies)
        p50 = lat_ms[len(lat_ms) // 2] if lat_ms else 0.0
        print(f"received {rec.count} meshes ({reason}); missed {sub.missed}, skipped {sub.skipped}, "
              f"rejected {sub.rejected}; latency p50 {p50:.1f} ms", file=sys.stderr)
    return 130 if interrupted else LOST_EXIT if lost else 0
