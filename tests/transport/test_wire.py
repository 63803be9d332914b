"""Wire format v2: round trips, the byte layout docs/protocol.md gives (its worked example decoded
here), the CRC-32C against its plain-Python twin, and every malformed, corrupted or non-finite
message refused before allocation."""
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
    """Pin the byte layout docs/protocol.md describes (offsets of magic, version, counts, checksum)."""
    mesh = make_mesh(4, 2, rect=None)
    parts = as_bytes(wire.encode_mesh(mesh, seq=7, frame_index=3, capture_time=1.5))
    hdr = parts[0]
    assert hdr[:4] == b"SRM1" and len(hdr) == wire.HEADER_SIZE == 96
    assert struct.unpack_from("<HHHH", hdr, 4) == (2, 96, wire.KIND_MESH, 0)
    assert struct.unpack_from("<Qq", hdr, 12) == (7, 3)
    assert struct.unpack_from("<d", hdr, 36)[0] == 1.5
    assert struct.unpack_from("<II", hdr, 52) == (4, 2)
    assert all(math.isnan(v) for v in struct.unpack_from("<4f", hdr, 60))
    assert hdr[85:92] == bytes([1, 2, 0, 0, 0, 0, 0])
    zeroed = hdr[:92] + b"\0\0\0\0"
    assert struct.unpack_from("<I", hdr, 92)[0] == wire.crc32c_py(zeroed + parts[1] + parts[2])
    assert wire.decode(parts).header.rect is None


def test_end_and_heartbeat_messages_carry_no_buffers():
    for parts, kind, seq, fi in ((wire.encode_end(seq=9, frames=120), wire.KIND_END, 9, 120),
                                 (wire.encode_heartbeat(next_seq=4), wire.KIND_HEARTBEAT, 4, 0)):
        parts = as_bytes(parts)
        assert len(parts) == 1
        hdr = parts[0]
        assert struct.unpack_from("<H", hdr, 8)[0] == kind and struct.unpack_from("<H", hdr, 10)[0] == 0
        assert struct.unpack_from("<II", hdr, 52) == (0, 0) and hdr[85:89] == bytes(4)  # V = F = 0, no dtypes
        assert all(math.isnan(v) for v in struct.unpack_from("<4f", hdr, 60))
        msg = wire.decode(parts)
        assert msg.mesh is None and msg.header.kind == kind and (msg.header.seq, msg.header.frame_index) == (seq, fi)
    assert wire.decode(as_bytes(wire.encode_end(seq=9, frames=120))).header.is_end
    assert wire.decode(as_bytes(wire.encode_heartbeat(next_seq=4))).header.is_heartbeat


def resign(parts):
    """``parts`` with the header's checksum recomputed, so a test reaches the checks after it."""
    hdr = bytearray(parts[0])
    struct.pack_into("<I", hdr, wire.CHECKSUM_OFFSET, wire.message_checksum(hdr, parts[1:]))
    return [bytes(hdr), *parts[1:]]


def _header_with(field_offset, fmt, value, parts=None):
    parts = parts or as_bytes(wire.encode_mesh(make_mesh(4, 2), seq=0, frame_index=0))
    hdr = bytearray(parts[0])
    struct.pack_into(fmt, hdr, field_offset, value)
    return resign([bytes(hdr), *parts[1:]])[0]


@pytest.mark.parametrize("bad, match", [
    (lambda p: [b"XXXX" + p[0][4:], *p[1:]], "magic"),
    (lambda p: [_header_with(4, "<H", 7), *p[1:]], "version 7"),
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
    (lambda p: resign([p[0], p[1], np.full((2, 3), 99, "<i4").tobytes()]), "indices"),
    (lambda p: [p[0], p[1], np.full((2, 3), 1, "<i4").tobytes()], "checksum"),
    (lambda p: [_header_with(8, "<H", wire.KIND_END), *p[1:]], "carries no buffers|parts"),
    (lambda p: [_header_with(36, "<d", math.inf), *p[1:]], "non-finite time"),
    (lambda p: [_header_with(44, "<d", math.nan), *p[1:]], "non-finite time"),
    (lambda p: [_header_with(60, "<f", math.nan), *p[1:]], "rect"),
    (lambda p: [_header_with(68, "<f", -math.inf), *p[1:]], "rect"),
    (lambda p: resign([p[0], np.full((4, 3), np.nan, "<f4").tobytes(), p[2]]), "non-finite"),
    (lambda p: resign([p[0], np.array([[0, 0, np.inf]] * 4, "<f4").tobytes(), p[2]]), "non-finite"),
    (lambda p: [_header_with(84, "<B", 7), *p[1:]], "coordinate frame"),
    (lambda p: [_header_with(85, "<B", 2), *p[1:]], "dtype"),
    (lambda p: [], "no parts"),
])
def test_malformed_refused(bad, match):
    parts = as_bytes(wire.encode_mesh(make_mesh(4, 2), seq=0, frame_index=0))
    with pytest.raises(ProtocolError, match=match):
        wire.decode(bad(parts))


def test_non_finite_normals_refused():
    parts = as_bytes(wire.encode_mesh(make_mesh(4, 2, normals=True), seq=0, frame_index=0))
    parts[3] = np.full((4, 3), np.nan, "<f4").tobytes()
    with pytest.raises(ProtocolError, match="normals hold non-finite"):
        wire.decode(resign(parts))


def test_plausible_corruption_is_caught_by_the_checksum():
    """A buffer changed to other valid-looking values (what freed memory sent at exit would be)
    passes every size and range check; only the checksum catches it. Any header byte counts too."""
    parts = as_bytes(wire.encode_mesh(make_mesh(6, 4, normals=True, colors=True), seq=3, frame_index=3))
    for i, pos in ((1, 5), (2, 0), (3, 11), (4, 2), (0, 21), (0, 95)):
        bad = [bytearray(p) for p in parts]
        bad[i][pos] ^= 0x01
        with pytest.raises(ProtocolError, match="checksum"):
            wire.decode([bytes(p) for p in bad])
    assert wire.decode(parts).header.checksum == struct.unpack_from("<I", parts[0], 92)[0]


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_crc32c_matches_its_plain_python_twin(data, start):
    assert wire.crc32c(data, start) == wire.crc32c_py(data, start)
    cut = len(data) // 3  # continuing from a partial CRC is the CRC of the whole
    assert wire.crc32c(data[cut:], wire.crc32c(data[:cut])) == wire.crc32c(data)


def test_crc32c_check_value():
    assert wire.crc32c(b"123456789") == wire.crc32c_py(b"123456789") == 0xE3069283  # CRC-32C's catalogued check


@pytest.mark.parametrize("version, words", [
    (1, "wire version 1 is older than this subscriber's 2: .*upgrade streamrecon on the publisher's side"),
    (3, "wire version 3 is newer than this subscriber's 2: .*upgrade streamrecon on the subscriber's side"),
])
def test_version_refusal_says_which_side_is_older(version, words):
    parts = as_bytes(wire.encode_mesh(make_mesh(4, 2), seq=0, frame_index=0))
    with pytest.raises(ProtocolError, match=words):
        wire.decode([_header_with(4, "<H", version, parts), *parts[1:]])


def _doc_example():
    """The hex parts of docs/protocol.md's worked example (between its example markers)."""
    import re

    from paths import ROOT

    text = (ROOT / "docs" / "protocol.md").read_text()
    block = text.split("<!-- example: begin -->")[1].split("<!-- example: end -->")[0]
    parts, cur = [], None
    for line in block.splitlines():
        if re.match(r"^part \d+", line):
            cur = bytearray()
            parts.append(cur)
        elif cur is not None and re.match(r"^[0-9a-f]{4}  ", line):
            cur.extend(bytes.fromhex(line[6:54]))
    return [bytes(p) for p in parts]


def test_protocol_doc_worked_example_decodes():
    """The byte-level example in docs/protocol.md is a valid message: it decodes to the mesh the
    doc describes, its checksum checks (fast and plain CRC alike), and the encoder gives it byte
    for byte."""
    parts = _doc_example()
    assert parts[0] == wire.TOPIC and len(parts) == 4
    msg = wire.decode(parts[1:])
    h = msg.header
    assert (h.kind, h.seq, h.frame_index, h.person_id, h.persons_in_frame) == (wire.KIND_MESH, 5, 3, 1, 1)
    assert (h.capture_time, h.publish_time, h.image_width, h.image_height) == (1700000000.0, 1700000000.25, 640, 480)
    assert h.rect == (10.0, 20.0, 100.0, 100.0) and h.coord_frame == "crop"
    np.testing.assert_array_equal(msg.mesh.vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(msg.mesh.faces, [[0, 1, 2]])
    assert h.checksum == wire.message_checksum(parts[1], parts[2:], crc_fn=wire.crc32c_py)
    again = wire.encode_mesh(msg.mesh, seq=5, frame_index=3, person_id=1, capture_time=1700000000.0,
                             publish_time=1700000000.25, image_size=(640, 480))
    assert as_bytes(again) == parts[1:]


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
