"""A publisher process that exits right after its last frame, with a deliberately slow subscriber
far behind: every mesh received equals the run's OBJ file or is counted missing, none is corrupted
(no freed memory on the wire), and the end of stream arrives. Repeated 20 times (2 at a time).
Also a script that never closes its publisher: the exit hook drains it before pyzmq frees the
buffers, so nothing corrupted goes out either."""
import concurrent.futures
import json
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np

from streamrecon.mesh.io import obj_bytes
from streamrecon.stream.run_writer import mesh_name
from streamrecon.transport.subscriber import MeshSubscriber
from paths import ROOT

CLI = [sys.executable, "-m", "streamrecon.cli"]
REPEATS = 20
FRAMES = 24
SLOW_S = 0.15  # a subscriber 150 ms a mesh behind a publisher that makes one every ~30 ms


def free_addr():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def one_run(tmp_path, rep: int) -> dict:
    """One `run --publish` (1.2 MB meshes) read by a slow subscriber; what it saw."""
    addr, out = free_addr(), tmp_path / f"run{rep}"
    sub = MeshSubscriber(addr, rcvhwm=2)
    proc = subprocess.Popen([*CLI, "run", f"synthetic:frames={FRAMES},size=64x48", "--model", "synthetic",
                             "--resolution", "512", "--out", str(out), "--no-progress", "--no-save-inputs",
                             "--publish", addr, "--wait-subscribers", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    got, ended, behind_s = [], False, 0.0
    try:
        while True:
            msg = sub.recv(timeout=15)
            if msg is None:
                break
            if msg.header.is_end:
                ended = True
                break
            got.append(msg)
            behind_s = time.time() - msg.header.publish_time
            time.sleep(SLOW_S)
    finally:
        sub.close()  # as a client should once it has the end of stream
        _, err = proc.communicate(timeout=60)
    manifest = json.loads((out / "manifest.json").read_text())
    meshes = [p["file"] for f in manifest["frames"] for p in f["persons"]]
    differ = [m.header.seq for m in got
              if obj_bytes(m.mesh) != (out / mesh_name(m.header.frame_index, m.header.person_id, "obj")).read_bytes()]
    return {"rc": proc.returncode, "err": err, "ended": ended, "received": len(got), "missed": sub.missed,
            "rejected": sub.rejected, "meshes": len(meshes), "differ": differ,
            "seqs": [m.header.seq for m in got], "behind_s": behind_s}


def test_slow_subscriber_and_a_publisher_that_exits_right_after_its_last_frame(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda rep: one_run(tmp_path, rep), range(REPEATS)))
    for rep, r in enumerate(results):
        assert r["rc"] == 0, (rep, r["err"])
        assert r["meshes"] == FRAMES, rep
        assert r["rejected"] == 0 and r["differ"] == [], (rep, r)  # nothing corrupted, every mesh equals its file
        assert r["ended"], (rep, r)  # the end of stream arrived
        assert r["received"] + r["missed"] == r["meshes"], (rep, r)  # every mesh received or counted missing
        assert r["seqs"] == sorted(r["seqs"]), rep
    # the subscriber was far behind at the end (its last mesh read long after it was sent)
    assert np.median([r["behind_s"] for r in results]) > 3 * SLOW_S, [r["behind_s"] for r in results]


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from streamrecon.transport.publisher import MeshPublisher
    from streamrecon.testing.sphere_model import uv_sphere
    from streamrecon.types import Mesh

    pub = MeshPublisher(sys.argv[1], drain_s=float(sys.argv[2]))
    assert pub.wait_for_subscribers(1, 30)
    time.sleep(0.1)
    v, f = uv_sphere(100, 200)
    for i in range(40):  # every mesh's own arrays, freed as soon as the loop lets go of them
        pub.send_mesh(Mesh(v + i, f), frame_index=i)
    # exits with the publisher open and meshes still queued for the slow subscriber
""")


def test_a_publisher_left_open_at_exit_sends_no_freed_memory(tmp_path):
    addr = free_addr()
    sub = MeshSubscriber(addr, rcvhwm=2)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, addr, "5"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    v = None
    got = []
    try:
        while True:
            msg = sub.recv(timeout=10)
            if msg is None:
                break
            got.append(msg)
            time.sleep(0.1)
    finally:
        sub.close()
        _, err = proc.communicate(timeout=60)
    from streamrecon.testing.sphere_model import uv_sphere

    v, _ = uv_sphere(100, 200)
    assert proc.returncode == 0, err
    assert sub.rejected == 0 and len(got) >= 3
    for m in got:  # each mesh is exactly the one sent, none made of freed memory
        np.testing.assert_array_equal(m.mesh.vertices, v + m.header.frame_index)
