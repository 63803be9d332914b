"""Network security: CURVE authentication on loopback (the right key gets meshes, a wrong or
missing key gets nothing), key generation, one-line key errors, the bind warning; the decoder
against mutated valid messages (only ProtocolError, nothing allocated beyond the message)."""
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
