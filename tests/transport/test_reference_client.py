"""The independent client: ``examples/client.c``, written from docs/protocol.md against libzmq's C
API alone, is built here and run against live publishers: it decodes a `run --publish` stream with
every checksum verified and writes OBJ files equal byte for byte to the run's; over CURVE, with
normals and colours, its files equal streamrecon's writer's; it refuses a corrupted buffer and a
message of another wire version, and goes on."""
import json
import shutil
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from streamrecon.mesh.io import obj_bytes
from streamrecon.transport import wire
from streamrecon.types import Mesh
from paths import ROOT

CLI = [sys.executable, "-m", "streamrecon.cli"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build examples/client.c")
    exe = tmp_path_factory.mktemp("client") / "client"
    r = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(ROOT / "examples" / "client.c"), "-lzmq"],
                       capture_output=True, text=True)
    if r.returncode != 0 and "zmq.h" in r.stderr:
        pytest.skip("libzmq's C headers are not installed (apt-get install libzmq3-dev; ./setup.sh test does it)")
    assert r.returncode == 0, r.stderr  # any other compiler message is a finding
    return exe


def free_addr():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def start(client, addr, out, *extra):
    out.mkdir()
    return subprocess.Popen([str(client), addr, str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_c_client_decodes_a_run_equal_to_its_obj_files(client, tmp_path):
    addr = free_addr()
    proc = start(client, addr, tmp_path / "c")
    try:
        r = subprocess.run([*CLI, "run", "synthetic:frames=8,size=64x48", "--model", "synthetic", "--resolution", "64",
                            "--out", str(tmp_path / "run"), "--no-progress", "--publish", addr, "--wait-subscribers", "1"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    meshes = [x for x in lines if x.startswith("mesh ")]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    files = [p["file"] for f in manifest["frames"] for p in f["persons"]]
    assert len(meshes) == len(files) == 8 and lines[-2] == "end seq=8 frames=8" and lines[-1] == "received 8 missed 0 rejected 0"
    for name in files:  # byte for byte: every float, index and line of the run's OBJ
        assert (tmp_path / "c" / name.split("/")[-1]).read_bytes() == (tmp_path / "run" / name).read_bytes(), name


def test_c_client_over_curve_with_normals_and_colours(client, tmp_path):
    from streamrecon.testing.sphere_model import uv_sphere
    from streamrecon.transport.curve import generate
    from streamrecon.transport.publisher import MeshPublisher

    keys = tmp_path / "keys"
    generate(str(keys))
    addr = free_addr()
    rng = np.random.default_rng(3)
    v, f = uv_sphere(20, 40)
    sent = [Mesh(v * (i + 1), f, normals=v, colors=rng.integers(0, 256, v.shape).astype(np.uint8), frame="image",
                 rect=(1, 2, 30, 30)) for i in range(5)]
    with MeshPublisher(addr, sndhwm=100, curve_keys=str(keys)) as pub:
        proc = start(client, addr, tmp_path / "c", str(keys))
        try:
            assert pub.wait_for_subscribers(1, 30)
            time.sleep(0.1)
            for i, mesh in enumerate(sent):
                pub.send_mesh(mesh, frame_index=i, person_id=2)
            pub.end(len(sent))
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "received 5 missed 0 rejected 0"
    for i, mesh in enumerate(sent):
        assert (tmp_path / "c" / f"frame_{i:06d}_p2.obj").read_bytes() == obj_bytes(mesh)


def test_c_client_refuses_a_corrupted_buffer_and_another_version(client, tmp_path):
    """Raw messages through plain pyzmq: one with a flipped byte in its vertices (plausible values:
    only the checksum can tell), one of wire version 1, then a good mesh and the end of stream."""
    import zmq

    addr = free_addr()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(addr)
    proc = start(client, addr, tmp_path / "c")
    try:
        time.sleep(0.5)  # the subscription reaches the publisher
        mesh = Mesh(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]]))
        good = [bytes(p) for p in wire.encode_mesh(mesh, seq=0, frame_index=0)]
        corrupt = [good[0], bytearray(good[1]), good[2]]
        corrupt[1][4] ^= 0x01
        old = [bytearray(good[0]), good[1], good[2]]
        struct.pack_into("<H", old[0], 4, 1)
        for parts in (corrupt, old, good, [bytes(p) for p in wire.encode_end(seq=1, frames=1)]):
            pub.send_multipart([wire.TOPIC, *[bytes(p) for p in parts]])
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        pub.close(0)
        ctx.term()
    assert proc.returncode == 0, err
    assert "rejected: checksum" in err and "wire version 1, this client speaks 2: upgrade the publisher" in err
    assert out.splitlines()[-1] == "received 1 missed 0 rejected 2"
    assert (tmp_path / "c" / "frame_000000_p0.obj").read_bytes() == obj_bytes(mesh)
