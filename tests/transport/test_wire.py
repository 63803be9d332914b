"""Wire format v1: round trips, and every malformed message refused before allocation."""
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrecon.transport import wire
from streamrecon.errors import ProtocolError
from streamrecon.types import Mesh


def make_mesh(nv=10, nf=7, normals=False, colors=False, seed=0, frame="crop", rect=(1.0, 2.0, 30.0, 30.0)):
    rng = np.random.default_rng(seed)
    return Mesh(
        rng.normal(size=(nv, 3)).astype(np.float32),
        rng.integers(0, max(nv, 1), size=(nf, 3)) if nv else np.zeros((0, 3), np.int32),
        normals=rng.normal(size=(nv, 3)).astype(np.float32) if normals else None,
        colors=rng.integers(0, 256, size=(nv, 3)).astype(np.uint8) if colors else None,
        frame=frame, rect=rect,
    )


def as_bytes(parts):
    return [bytes(p) for p in parts]


@settings(max_examples=40, deadline=None)
@given(nv=st.integers(0, 50), nf=st.integers(0, 50), normals=st.booleans(), colors=st.booleans(),
       frame=st.sampled_from(["crop", "image"]), seq=st.integers(0, 2**40), fi=st.integers(-5, 2**40),
       pid=st.integers(-3, 1000), t=st.floats(0, 2e9))
def test_round_trip(nv, nf, normals, colors, frame, seq, fi, pid, t):
    if nv == 0:
        nf = 0
    mesh = make_mesh(nv, nf, normals, colors, seed=nv * 31 + nf, frame=frame)
    parts = as_bytes(wire.encode_mesh(mesh, seq=seq, frame_index=fi, person_id=pid, person_index=1,
                                      persons_in_frame=2, capture_time=t, publish_time=t + 0.5, image_size=(640, 480)))
    assert len(parts[0]) == wire.HEADER_SIZE
    msg = wire.decode(parts)
    h = msg.header
    assert (h.seq, h.frame_index, h.person_id, h.person_index, h.persons_in_frame) == (seq, fi, pid, 1, 2)
    assert h.capture_time == t and h.publish_time == t + 0.5
    assert (h.image_width, h.image_height, h.coord_frame) == (640, 480, frame)
    assert h.rect == (1.0, 2.0, 30.0, 30.0)
    np.testing.assert_array_equal(msg.mesh.vertices, mesh.vertices)
    np.testing.assert_array_equal(msg.mesh.faces, mesh.faces)
    for a, b in ((msg.mesh.normals, mesh.normals), (msg.mesh.colors, mesh.colors)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert msg.mesh.frame == frame


def test_layout_is_little_endian_and_documented():
    """Pin the byte layout docs/protocol.md describes (offsets of magic, version, counts)."""
    mesh = make_mesh(4, 2, rect=None)
    hdr = bytes(wire.encode_mesh(mesh, seq=7, frame_index=3, capture_time=1.5)[0])
    assert hdr[:4] == b"SRM1"
    assert struct.unpack_from("<HHHH", hdr, 4) == (1, wire.HEADER_SIZE, wire.KIND_MESH, 0)
    assert struct.unpack_from("<Qq", hdr, 12) == (7, 3)
    assert struct.unpack_from("<d", hdr, 36)[0] == 1.5
    assert struct.unpack_from("<II", hdr, 52) == (4, 2)
    assert all(math.isnan(v) for v in struct.unpack_from("<4f", hdr, 60))
    assert wire.decode(as_bytes(wire.encode_mesh(mesh, seq=0, frame_index=0))).header.rect is None


def test_end_message():
    msg = wire.decode(as_bytes(wire.encode_end(seq=9, frames=120)))
    assert msg.header.is_end and msg.mesh is None and msg.header.frame_index == 120


def _header_with(field_offset, fmt, value):
    hdr = bytearray(bytes(wire.encode_mesh(make_mesh(4, 2), seq=0, frame_index=0)[0]))
    struct.pack_into(fmt, hdr, field_offset, value)
    return bytes(hdr)


@pytest.mark.parametrize("bad, match", [
    (lambda p: [b"XXXX" + p[0][4:], *p[1:]], "magic"),
    (lambda p: [_header_with(4, "<H", 2), *p[1:]], "version 2"),
    (lambda p: [_header_with(6, "<H", 40), *p[1:]], "header_size"),
    (lambda p: [p[0] + b"\0" * 8, *p[1:]], "header_size"),
    (lambda p: [p[0][:6], *p[1:]], "header_size|too short"),
    (lambda p: [_header_with(8, "<H", 9), *p[1:]], "kind"),
    (lambda p: [_header_with(10, "<H", 0x80), *p[1:]], "flags"),
    (lambda p: [_header_with(52, "<I", 2**31), *p[1:]], "exceed"),
    (lambda p: [_header_with(52, "<I", 5), *p[1:]], "buffer 0"),
    (lambda p: [_header_with(56, "<I", 3), *p[1:]], "buffer 1"),
    (lambda p: [_header_with(10, "<H", 1), *p[1:]], "dtype|parts"),
    (lambda p: p[:2], "parts"),
    (lambda p: [*p, b"x"], "parts"),
    (lambda p: [p[0], p[1][:-1], p[2]], "buffer 0"),
    (lambda p: [p[0], p[1], p[2] + b"\0"], "buffer 1"),
    (lambda p: [p[0], p[1], np.full((2, 3), 99, "<i4").tobytes()], "indices"),
    (lambda p: [_header_with(84, "<B", 7), *p[1:]], "coordinate frame"),
    (lambda p: [_header_with(85, "<B", 2), *p[1:]], "dtype"),
    (lambda p: [], "no parts"),
])
def test_malformed_refused(bad, match):
    parts = as_bytes(wire.encode_mesh(make_mesh(4, 2), seq=0, frame_index=0))
    with pytest.raises(ProtocolError, match=match):
        wire.decode(bad(parts))


def test_huge_counts_refused_before_allocation(monkeypatch):
    """A header announcing 30M vertices is refused from the header alone: decode never builds an
    array (np.frombuffer is not reached)."""
    hdr = _header_with(52, "<I", 30_000_000)
    calls = []
    monkeypatch.setattr(wire.np, "frombuffer", lambda *a, **k: calls.append(1))
    with pytest.raises(ProtocolError):
        wire.decode([hdr, b"", b""])
    assert calls == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=5))
def test_random_bytes_never_crash(parts):
    """Arbitrary input gives a message or ProtocolError, never another exception."""
    try:
        wire.decode(parts)
    except ProtocolError:
        pass


def test_encode_is_zero_copy_and_refuses_non_mesh():
    mesh = make_mesh(5, 3)
    parts = wire.encode_mesh(mesh, seq=0, frame_index=0)
    assert np.shares_memory(np.frombuffer(parts[1], dtype="<f4"), mesh.vertices)
    with pytest.raises(TypeError, match="mesh"):
        wire.encode_mesh(object(), seq=0, frame_index=0)
