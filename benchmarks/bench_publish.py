"""Publish throughput of 100k-vertex meshes over tcp loopback (messages/s, MB/s).

The publisher (this process) sends ``--n`` meshes back to back after ``--warmup`` ones; a
subscriber in a separate process (no shared GIL) receives and fully decodes them (every size
checked, the CRC-32C verified, arrays copied, as ``MeshSubscriber`` does). Throughput is measured
at the subscriber from the first to the last measured message; per-message encode, send and decode
times are reported as median/p95, and the time ``end`` took to drain. Pure encode/decode costs are
measured too, without sockets. High-water marks are raised so nothing is dropped while
measuring; the engine's defaults drop instead. ``--copy`` copies every buffer before it is sent
(what sending with ``copy=True`` costs: a fresh 5 MB allocation and memcpy per message), to weigh
the zero-copy hand-off the publisher uses.

    .venv/bin/python benchmarks/bench_publish.py [--n 200] [--vertices 100000] [--copy] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from streamrecon.transport import wire  # noqa: E402
from streamrecon.types import Mesh  # noqa: E402
from streamrecon.testing.sphere_model import uv_sphere  # noqa: E402


def make_mesh(vertices: int) -> Mesh:
    rings = max(4, int(round((vertices / 2) ** 0.5)))
    v, f = uv_sphere(rings, 2 * rings)
    rng = np.random.default_rng(0)
    return Mesh(v * 100, f, normals=v.copy(), colors=rng.integers(0, 256, (len(v), 3)).astype(np.uint8), frame="image")


def stats(xs) -> dict:
    a = np.asarray(xs, dtype=np.float64)
    return {"median_ms": float(np.median(a) * 1e3), "p95_ms": float(np.percentile(a, 95) * 1e3)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        return ""


def run_sub(addr: str, total: int) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 10000)
    s.setsockopt(zmq.RCVTIMEO, 120_000)  # a publisher that died leaves no subscriber waiting forever
    s.setsockopt(zmq.SUBSCRIBE, wire.TOPIC)
    s.connect(addr)
    times, decode_s, nbytes = [], [], 0
    while True:
        parts = s.recv_multipart(copy=False)
        t = time.perf_counter()
        msg = wire.decode([p.buffer for p in parts[1:]])
        if getattr(msg.header, "is_heartbeat", False):
            continue
        decode_s.append(time.perf_counter() - t)
        if msg.header.is_end:
            break
        times.append(time.perf_counter())
        nbytes = sum(p.buffer.nbytes for p in parts[1:])
    print(json.dumps({"received": len(times), "times": times, "decode_s": decode_s, "bytes_per_message": nbytes}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="measured messages")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--vertices", type=int, default=100_000)
    ap.add_argument("--copy", action="store_true", help="copy every buffer before sending it (instead of zero-copy)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--role", default="pub", help=argparse.SUPPRESS)
    ap.add_argument("--addr", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "sub":
        return run_sub(args.addr, args.n)

    from streamrecon.transport.publisher import MeshPublisher

    mesh = make_mesh(args.vertices)
    # pure encode / decode, no sockets
    enc, dec = [], []
    for i in range(50):
        t = time.perf_counter()
        parts = wire.encode_mesh(mesh, seq=i, frame_index=i)
        enc.append(time.perf_counter() - t)
        b = [bytes(p) for p in parts]
        t = time.perf_counter()
        wire.decode(b)
        dec.append(time.perf_counter() - t)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    pub = MeshPublisher(addr, sndhwm=10000, drain_s=600)  # measure every message, however long it takes
    if args.copy:
        zero_copy_send = pub._send
        pub._send = lambda parts, track: zero_copy_send([bytes(p) for p in parts], track)
    sub = subprocess.Popen([sys.executable, __file__, "--role", "sub", "--addr", addr, "--n", str(args.n)],
                           stdout=subprocess.PIPE, text=True)
    if not pub.wait_for_subscribers(1, 30):
        sub.kill()
        raise SystemExit("subscriber did not connect")
    time.sleep(0.2)
    send = []
    for i in range(args.warmup + args.n):
        t = time.perf_counter()
        pub.send_mesh(mesh, frame_index=i, capture_time=time.time())
        if i >= args.warmup:
            send.append(time.perf_counter() - t)
    t = time.perf_counter()
    pub.end(args.warmup + args.n)
    end_s = time.perf_counter() - t
    out = json.loads(sub.communicate(timeout=600)[0])
    pub.close()
    times = out["times"][args.warmup:]
    span = times[-1] - times[0]
    n = len(times) - 1
    mb = out["bytes_per_message"] / 1e6
    res = {
        "vertices": mesh.num_vertices, "faces": mesh.num_faces, "message_mb": mb,
        "received": out["received"], "sent": args.warmup + args.n,
        "messages_per_s": n / span, "mb_per_s": n * mb / span,
        "encode": stats(enc), "decode_copy": stats(dec), "send_call": stats(send),
        "subscriber_decode": stats(out["decode_s"][args.warmup:-1]), "end_s": end_s, "copy": args.copy,
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
    }
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
