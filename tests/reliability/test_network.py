"""Network security and the subscriber's hostile conditions: CURVE authentication on loopback (the
right key gets meshes, a wrong or missing key gets nothing, a refused client is told apart from no
publisher), key generation, one-line key errors (a malformed authorised key before binding), the
bind warning; the decoder against mutated valid messages (only ProtocolError, nothing allocated
beyond the message); ``subscribe`` on a disk that fills (one line, what was written before intact
and listed)."""
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrecon.transport import wire
from streamrecon.errors import ProtocolError, UserInputError
from streamrecon.types import Mesh

zmq = pytest.importorskip("zmq")
if not zmq.has("curve"):
    pytest.skip("this libzmq has no CURVE support", allow_module_level=True)

from streamrecon.transport.curve import generate  # noqa: E402
from streamrecon.transport.publisher import MeshPublisher  # noqa: E402
from streamrecon.transport.subscriber import MeshSubscriber  # noqa: E402
from paths import ROOT  # noqa: E402

ROOT = ROOT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tetra():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    return Mesh(v, f)


def test_keys_generate_cli_layout_and_permissions(tmp_path):
    d = tmp_path / "keys"
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "keys", "generate", str(d)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret", "authorized_clients/client.key"):
        assert (d / name).is_file(), name
    for name in ("server.key_secret", "client.key_secret"):
        assert stat.S_IMODE(os.stat(d / name).st_mode) == 0o600
    assert (d / "client.key").read_bytes() == (d / "authorized_clients" / "client.key").read_bytes()
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "keys", "generate", str(d)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().startswith("streamrecon: error:") and "--force" in r.stderr


def test_curve_right_key_receives_wrong_or_no_key_receives_nothing(tmp_path):
    keys, rogue = tmp_path / "keys", tmp_path / "rogue"
    generate(str(keys))
    generate(str(rogue))  # a client key pair the publisher never authorised...
    (rogue / "server.key").write_bytes((keys / "server.key").read_bytes())  # ...that knows the server's key
    addr = f"tcp://127.0.0.1:{free_port()}"
    pub = MeshPublisher(addr, curve_keys=str(keys))
    good = MeshSubscriber(addr, curve_keys=str(keys))
    bad = MeshSubscriber(addr, curve_keys=str(rogue))
    plain = MeshSubscriber(addr)
    try:
        assert pub.wait_for_subscribers(1, 10.0)
        time.sleep(0.5)  # give the refused ones every chance to subscribe too
        assert pub.subscriptions == 1  # only the authorised client got through the handshake
        mesh = tetra()
        for i in range(20):
            pub.send_mesh(mesh, frame_index=i)
            time.sleep(0.01)
        got = []
        while True:
            msg = good.recv(timeout=1.0)
            if msg is None:
                break
            got.append(msg)
        assert len(got) >= 1 and np.array_equal(got[0].mesh.vertices, mesh.vertices)
        assert bad.recv(timeout=0.3) is None and plain.recv(timeout=0.3) is None
        assert bad.received == plain.received == 0
    finally:
        for s in (good, bad, plain):
            s.close()
        pub.close()


def test_curve_key_errors_are_one_line(tmp_path):
    with pytest.raises(UserInputError, match=r"server.key_secret not found; make keys with 'streamrecon keys generate DIR'"):
        MeshPublisher(f"tcp://127.0.0.1:{free_port()}", curve_keys=str(tmp_path / "none"))
    d = tmp_path / "k"
    generate(str(d))
    (d / "client.key_secret").write_text("garbage")
    with pytest.raises(UserInputError, match="client.key_secret"):
        MeshSubscriber("tcp://127.0.0.1:5555", curve_keys=str(d))
    for p in (d / "authorized_clients").iterdir():
        p.unlink()
    with pytest.raises(UserInputError, match="holds no client public keys"):
        MeshPublisher(f"tcp://127.0.0.1:{free_port()}", curve_keys=str(d))
    out = tmp_path / "rec"
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "subscribe", "--curve-keys", str(tmp_path / "none"),
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr
    assert not out.exists()


def test_remote_bind_warns_unless_curve(tmp_path, caplog):
    d = tmp_path / "k"
    generate(str(d))
    with caplog.at_level(logging.WARNING, logger="streamrecon.transport.publisher"):
        MeshPublisher(f"tcp://0.0.0.0:{free_port()}").close()
    assert "unauthenticated" in caplog.text and "--curve-keys" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamrecon.transport.publisher"):
        MeshPublisher(f"tcp://0.0.0.0:{free_port()}", curve_keys=str(d)).close()
    assert "unauthenticated" not in caplog.text
    assert MeshPublisher.__init__.__defaults__[0] == "tcp://127.0.0.1:5555"


# ---- decoder against mutated valid messages ----------------------------------------------------
def _valid_parts(nv=5, normals=True, colors=True):
    rng = np.random.default_rng(nv)
    v = rng.normal(size=(nv, 3)).astype(np.float32)
    f = rng.integers(0, nv, (2 * nv, 3)).astype(np.int32)
    m = Mesh(v, f, normals=v / np.linalg.norm(v, axis=1, keepdims=True) if normals else None,
             colors=rng.integers(0, 255, (nv, 3), dtype=np.uint8) if colors else None)
    return [bytes(p) for p in wire.encode_mesh(m, seq=3, frame_index=7)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nv=st.integers(3, 40), flips=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(0, 64))), drop=st.one_of(st.none(), st.integers(0, 4)))
def test_mutated_messages_decode_or_raise_protocol_error(nv, flips, cut, drop):
    parts = [bytearray(p) for p in _valid_parts(nv)]
    for part, pos, val in flips:
        p = parts[part % len(parts)]
        if p:
            p[pos % len(p)] = val
    if cut is not None:
        p = parts[cut[0] % len(parts)]
        del p[len(p) - min(cut[1], len(p)):]
    if drop is not None and len(parts) > 1:
        del parts[drop % len(parts)]
    try:
        msg = wire.decode([bytes(p) for p in parts])
    except ProtocolError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    if msg.mesh is not None:  # accepted: then it is self-consistent
        h = msg.header
        assert msg.mesh.vertices.shape == (h.num_vertices, 3) and msg.mesh.faces.shape == (h.num_faces, 3)
        assert msg.mesh.num_faces == 0 or (0 <= msg.mesh.faces.min() and msg.mesh.faces.max() < h.num_vertices)


def test_lying_header_allocates_nothing_before_refusal():
    import tracemalloc

    parts = _valid_parts(4, normals=False, colors=False)
    hdr = bytearray(parts[0])
    hdr[52:56] = (wire.MAX_VERTICES).to_bytes(4, "little")  # 2^25 vertices, 384 MiB if trusted
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="buffer 0 holds"):
            wire.decode([bytes(hdr), parts[1], parts[2]])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# ---- key files checked before binding; refused versus no publisher ---------------------------
@pytest.mark.parametrize("content", ['metadata\ncurve\n    public-key = "not a key"\n', "garbage\n",
                                     'curve\n    public-key = "' + "~" * 40 + '"\n'])
def test_malformed_authorized_key_is_one_line_before_binding(tmp_path, content):
    d = tmp_path / "k"
    generate(str(d))
    (d / "authorized_clients" / "laptop.key").write_text(content)
    port = free_port()
    with pytest.raises(UserInputError, match="laptop.key"):
        MeshPublisher(f"tcp://127.0.0.1:{port}", curve_keys=str(d))
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "run", "synthetic:frames=3", "--model", "synthetic",
                        "--out", str(tmp_path / "run"), "--publish", f"tcp://127.0.0.1:{port}", "--curve-keys", str(d)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("streamrecon: error: --curve-keys:"), r.stderr
    assert "laptop.key" in lines[0] and "Traceback" not in r.stderr
    with socket.socket() as s:  # never bound
        s.bind(("127.0.0.1", port))


def test_refused_client_is_told_apart_from_no_publisher(tmp_path):
    keys, rogue = tmp_path / "keys", tmp_path / "rogue"
    generate(str(keys))
    generate(str(rogue))
    (rogue / "server.key").write_bytes((keys / "server.key").read_bytes())
    addr = f"tcp://127.0.0.1:{free_port()}"
    nobody = MeshSubscriber(f"tcp://127.0.0.1:{free_port()}")
    pub = MeshPublisher(addr, curve_keys=str(keys))
    bad = MeshSubscriber(addr, curve_keys=str(rogue))
    plain = MeshSubscriber(addr)
    good = MeshSubscriber(addr, curve_keys=str(keys))
    try:
        assert pub.wait_for_subscribers(1, 10)
        assert good.recv(timeout=2) is None and good.heartbeats >= 1  # an admitted client hears heartbeats
        for s in (bad, plain, nobody):
            assert s.recv(timeout=0.5) is None and s.heartbeats == 0
        assert good.connection_state() == "connected"
        assert bad.connection_state() == "refused by the publisher (CURVE key not authorised)"
        assert plain.connection_state().startswith("handshake failed")
        assert nobody.connection_state() == "no publisher answered"
    finally:
        for s in (good, bad, plain, nobody):
            s.close()
        pub.close()
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "subscribe", "--connect", f"tcp://127.0.0.1:{free_port()}",
                        "--out", str(tmp_path / "rec"), "--idle-timeout", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "received 0 meshes (idle timeout; no publisher answered at tcp://127.0.0.1:" in r.stderr


# ---- subscribe on a full disk ----------------------------------------------------------------
SUB_CLI = [sys.executable, "-m", "streamrecon.cli", "subscribe"]


def _record_until_it_stops(argv, addr, meshes, env=None):
    """Run ``subscribe`` (``argv``) against a publisher of ``meshes`` (frame i = meshes[i]) until it
    exits; (returncode, stderr)."""
    pub = MeshPublisher(addr)
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert pub.wait_for_subscribers(1, 60)
        time.sleep(0.2)
        for i, m in enumerate(meshes):
            if proc.poll() is not None:
                break
            pub.send_mesh(m, frame_index=i)
            time.sleep(0.05)
        pub.end(len(meshes))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        pub.close()
    return proc.returncode, err


def _check_recording(rec, meshes, line):
    """Every line of messages.jsonl is strict JSON naming a mesh file equal to the one sent; no
    other mesh or temp file; the error line counts them."""
    from streamrecon.mesh.io import obj_bytes

    entries = [json.loads(x, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
               for x in (rec / "messages.jsonl").read_text().splitlines()]
    assert entries and f"the {len(entries)} mesh(es) received before are intact" in line
    for e in entries:
        assert (rec / e["file"]).read_bytes() == obj_bytes(meshes[e["frame"]])
    assert sorted(p.name for p in (rec / "meshes").iterdir()) == sorted(e["file"].split("/")[-1] for e in entries)


def _meshes(n=60):
    from streamrecon.testing.sphere_model import uv_sphere

    v, f = uv_sphere(30, 60)
    return [Mesh(v * (i + 1), f, frame="image") for i in range(n)]


def test_subscribe_on_a_full_disk_stops_in_one_line_keeping_what_it_wrote(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the fault-injected twin of this test runs anyway)")
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        meshes = _meshes()  # ~100 KB of OBJ each: the disk fills after about ten
        addr = f"tcp://127.0.0.1:{free_port()}"
        code, err = _record_until_it_stops([*SUB_CLI, "--connect", addr, "--out", str(disk / "rec")], addr, meshes)
        lines = err.strip().splitlines()
        assert code == 8 and len(lines) == 1 and lines[0].startswith("streamrecon: error: subscribe: cannot write"), err
        assert "no space left on the device" in lines[0]
        _check_recording(disk / "rec", meshes, lines[0])
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


INJECT = """
import errno, sys
from streamrecon.cli import subscribe

class FullAfter:  # messages.jsonl on a disk that fills after a few lines: part of a line, then ENOSPC
    def __init__(self, f, lines):
        self.f, self.lines = f, lines
    def write(self, b):
        if self.lines == 0:
            self.f.write(bytes(b[: len(b) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        self.lines -= 1
        return self.f.write(b)
    def __getattr__(self, name):
        return getattr(self.f, name)

init = subscribe._Recording.__init__
def patched(self, *a):
    init(self, *a)
    self._log = FullAfter(self._log, 3)
subscribe._Recording.__init__ = patched
from streamrecon.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_subscribe_disk_full_fault_injected_cuts_the_half_written_line(tmp_path):
    meshes = _meshes(20)
    addr = f"tcp://127.0.0.1:{free_port()}"
    rec = tmp_path / "rec"
    code, err = _record_until_it_stops([sys.executable, "-c", INJECT, "subscribe", "--connect", addr, "--out", str(rec)],
                                       addr, meshes)
    lines = err.strip().splitlines()
    assert code == 8 and len(lines) == 1 and "messages.jsonl: no space left on the device" in lines[0], err
    _check_recording(rec, meshes, lines[0])
    assert len((rec / "messages.jsonl").read_text().splitlines()) == 3 and (rec / "messages.jsonl").read_text().endswith("\n")


def test_non_finite_values_never_reach_messages_jsonl_or_a_mesh_file(tmp_path):
    """Hostile messages with a valid checksum: NaN / infinite header times or rect, NaN vertices,
    infinite normals. ``subscribe`` rejects each (counted, one warning) and records only the good
    mesh: messages.jsonl stays strict JSON, the OBJ holds finite numbers."""
    import struct

    zmq_ctx = zmq.Context()
    addr = f"tcp://127.0.0.1:{free_port()}"
    raw = zmq_ctx.socket(zmq.PUB)
    raw.bind(addr)
    rec = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-m", "streamrecon.cli", "subscribe", "--connect", addr, "--out", str(rec),
                             "--idle-timeout", "20"], cwd=ROOT, stderr=subprocess.PIPE, text=True)

    def signed(parts):
        hdr = bytearray(parts[0])
        struct.pack_into("<I", hdr, wire.CHECKSUM_OFFSET, wire.message_checksum(hdr, parts[1:]))
        return [bytes(hdr), *parts[1:]]

    def with_field(offset, fmt, value):
        m = Mesh(tetra().vertices, tetra().faces, rect=(1.0, 2.0, 3.0, 3.0))
        parts = [bytes(p) for p in wire.encode_mesh(m, seq=0, frame_index=0, capture_time=1.0)]
        hdr = bytearray(parts[0])
        struct.pack_into(fmt, hdr, offset, value)
        return signed([bytes(hdr), *parts[1:]])

    nan_verts = [bytes(p) for p in wire.encode_mesh(tetra(), seq=0, frame_index=0)]
    nan_verts[1] = np.full((4, 3), np.nan, np.float32).tobytes()
    inf_normals = [bytes(p) for p in wire.encode_mesh(Mesh(tetra().vertices, tetra().faces, normals=tetra().vertices), seq=0, frame_index=0)]
    inf_normals[3] = np.full((4, 3), np.inf, np.float32).tobytes()
    hostile = [with_field(36, "<d", float("nan")), with_field(44, "<d", float("inf")), with_field(60, "<f", float("nan")),
               with_field(64, "<f", float("-inf")), signed(nan_verts), signed(inf_normals)]
    try:
        time.sleep(1.0)  # the subscription reaches the raw publisher
        for parts in hostile + [[bytes(p) for p in wire.encode_mesh(tetra(), seq=1, frame_index=7, capture_time=time.time())],
                                [bytes(p) for p in wire.encode_end(seq=2, frames=8)]]:
            raw.send_multipart([wire.TOPIC, *parts])
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        raw.close(0)
        zmq_ctx.term()
    assert proc.returncode == 0, err
    assert "received 1 meshes (end of stream)" in err and f"rejected {len(hostile)}" in err
    assert err.count("WARNING") == 2  # the first rejection, then the count of the others
    lines = (rec / "messages.jsonl").read_text().splitlines()
    entry = json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert len(lines) == 1 and entry["frame"] == 7
    text = (rec / entry["file"]).read_text().lower()
    assert "nan" not in text and "inf" not in text
