"""The mesh stream's wire format, version 2: pure encode/decode, no sockets (spec:
``docs/protocol.md``).

A message is a list of byte parts (one ZeroMQ multipart message after the topic part)::

    [header, vertices, faces, (normals), (colors)]

``header`` is a fixed little-endian struct (``HEADER``); every buffer is raw little-endian data
whose exact size follows from the header's counts and dtypes. End-of-stream and heartbeat messages
are a header alone. Every header carries a CRC-32C of the whole message (``message_checksum``).
Nothing is ever pickled: the decoder checks the magic, version, header size, part count and every
buffer's size *before* it allocates anything, refuses counts above ``MAX_VERTICES`` /
``MAX_FACES``, verifies the checksum before it builds an array, and refuses non-finite values.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import ProtocolError
from ..types import Mesh

MAGIC = b"SRM1"
VERSION = 2
TOPIC = b"streamrecon.mesh"
BODY_TOPIC = b"streamrecon.body"
"""the topic of the fitted-body messages: a client subscribed to ``TOPIC`` never receives them"""
MAX_BODY_BYTES = 16384
"""largest body message accepted (refused before it is parsed)"""

KIND_MESH = 1
KIND_END = 2
KIND_HEARTBEAT = 3
KINDS = (KIND_MESH, KIND_END, KIND_HEARTBEAT)

FLAG_NORMALS = 1
FLAG_COLORS = 2

HEARTBEAT_S = 1.0
"""A publisher sends a heartbeat this often (seconds) for as long as it runs."""

# Upper bounds a decoder accepts; a 512^3 PIFuHD mesh has ~1M vertices.
MAX_VERTICES = 1 << 25
MAX_FACES = 1 << 26
MAX_HEADER_SIZE = 4096

# dtype codes of the header's dtype fields; the version fixes which code each buffer uses.
DTYPE_CODES = {1: np.dtype("<f4"), 2: np.dtype("<i4"), 3: np.dtype("u1")}
_CODE_OF = {"vertices": 1, "faces": 2, "normals": 1, "colors": 3}

COORD_FRAMES = ("crop", "image")

# magic, version, header_size, kind, flags, seq, frame_index, person_id, person_index,
# persons_in_frame, capture_time, publish_time, num_vertices, num_faces, rect[4],
# image_width, image_height, coord_frame, vertex/face/normal/color dtype codes, 3 pad bytes, checksum
HEADER = struct.Struct("<4sHHHHQqiHHddIIffffIIBBBBB3xI")
HEADER_SIZE = HEADER.size  # 96 bytes
CHECKSUM_OFFSET = HEADER_SIZE - 4  # the u32 CRC-32C, read as zero while it is computed

BytesLike = Union[bytes, bytearray, memoryview]


def _crc32c_table() -> list:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c_py(data: BytesLike, crc: int = 0) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI and ext4 use it), continuing
    from ``crc``: byte at a time in plain Python, the reference for ``crc32c`` (about 1 MB/s)."""
    c = crc ^ 0xFFFFFFFF
    for b in memoryview(data).cast("B"):
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32c(data: BytesLike, crc: int = 0) -> int:
    """``crc32c_py`` in hardware (the ``crc32c`` package: SSE4.2 / ARMv8 instructions, ~20 GB/s)."""
    from crc32c import crc32c as hw

    return hw(data, crc)


def message_checksum(header: BytesLike, buffers: Iterable[BytesLike], crc_fn=crc32c) -> int:
    """CRC-32C of one message: the header part with its checksum field (bytes 92..95) read as zero,
    then every buffer part in order, as one byte string."""
    mv = memoryview(header).cast("B")
    crc = crc_fn(mv[:CHECKSUM_OFFSET])
    crc = crc_fn(b"\0\0\0\0", crc)
    crc = crc_fn(mv[CHECKSUM_OFFSET + 4:], crc)
    for b in buffers:
        crc = crc_fn(b, crc)
    return crc


@dataclass(frozen=True)
class MeshHeader:
    """The decoded header. Times are wall-clock ``time.time()`` seconds (latency across hosts needs
    synchronised clocks); ``rect`` is the crop (x, y, w, h) in frame pixels or None. In a
    heartbeat, ``seq`` is the seq the publisher's next message will carry (docs/protocol.md)."""

    kind: int
    seq: int
    frame_index: int
    person_id: int = 0
    person_index: int = 0
    persons_in_frame: int = 1
    capture_time: float = 0.0
    publish_time: float = 0.0
    num_vertices: int = 0
    num_faces: int = 0
    rect: Optional[tuple] = None
    image_width: int = 0
    image_height: int = 0
    coord_frame: str = "crop"
    has_normals: bool = False
    has_colors: bool = False
    checksum: int = 0

    @property
    def is_end(self) -> bool:
        return self.kind == KIND_END

    @property
    def is_heartbeat(self) -> bool:
        return self.kind == KIND_HEARTBEAT


@dataclass
class MeshMessage:
    """One decoded message: the header and, for ``KIND_MESH``, the mesh (``mesh.frame`` and
    ``mesh.rect`` are filled from the header)."""

    header: MeshHeader
    mesh: Optional[Mesh]
    body: Optional[dict] = None
    """the person's fitted body (``streamrecon.body.params``) when the subscriber asked for bodies
    and its message arrived; not part of the mesh message itself"""


def _pack(h: MeshHeader, buffers: Sequence[BytesLike] = ()) -> bytes:
    """The header part, its checksum computed over itself and ``buffers``."""
    rect = h.rect if h.rect is not None else (math.nan,) * 4
    if h.coord_frame not in COORD_FRAMES:
        raise ValueError(f"coord_frame: expected one of {COORD_FRAMES}, got {h.coord_frame!r}")
    flags = (FLAG_NORMALS if h.has_normals else 0) | (FLAG_COLORS if h.has_colors else 0)
    mesh = h.kind == KIND_MESH  # only a mesh names buffer dtypes; the other kinds carry none
    hdr = bytearray(HEADER.pack(
        MAGIC, VERSION, HEADER_SIZE, h.kind, flags, h.seq, h.frame_index, h.person_id,
        h.person_index, h.persons_in_frame, h.capture_time, h.publish_time, h.num_vertices,
        h.num_faces, *(float(v) for v in rect), h.image_width, h.image_height,
        COORD_FRAMES.index(h.coord_frame), _CODE_OF["vertices"] if mesh else 0, _CODE_OF["faces"] if mesh else 0,
        _CODE_OF["normals"] if h.has_normals else 0, _CODE_OF["colors"] if h.has_colors else 0, 0,
    ))
    struct.pack_into("<I", hdr, CHECKSUM_OFFSET, message_checksum(hdr, buffers))
    return bytes(hdr)


def encode_mesh(
    mesh: Mesh,
    *,
    seq: int,
    frame_index: int,
    person_id: int = 0,
    person_index: int = 0,
    persons_in_frame: int = 1,
    capture_time: float = 0.0,
    publish_time: float = 0.0,
    image_size: tuple = (0, 0),
) -> list:
    """Encode ``mesh`` as ``[header, vertices, faces, (normals), (colors)]``. The buffer parts are
    memoryviews of the mesh's own arrays (no copy; keep the mesh alive until ZeroMQ has sent them).
    ``image_size`` = (width, height) of the source frame."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected streamrecon.types.Mesh, got {type(mesh).__name__}")
    if mesh.num_vertices > MAX_VERTICES or mesh.num_faces > MAX_FACES:
        raise ValueError(
            f"mesh: {mesh.num_vertices} vertices / {mesh.num_faces} faces exceed the wire limits "
            f"({MAX_VERTICES} / {MAX_FACES})"
        )
    header = MeshHeader(
        kind=KIND_MESH, seq=seq, frame_index=frame_index, person_id=person_id,
        person_index=person_index, persons_in_frame=persons_in_frame,
        capture_time=capture_time, publish_time=publish_time,
        num_vertices=mesh.num_vertices, num_faces=mesh.num_faces,
        rect=tuple(mesh.rect) if mesh.rect is not None else None,
        image_width=int(image_size[0]), image_height=int(image_size[1]), coord_frame=mesh.frame,
        has_normals=mesh.normals is not None, has_colors=mesh.colors is not None,
    )
    # Mesh already holds contiguous float32/int32/uint8; force little-endian for big-endian hosts.
    buffers: list = [_le(mesh.vertices, "<f4"), _le(mesh.faces, "<i4")]
    if mesh.normals is not None:
        buffers.append(_le(mesh.normals, "<f4"))
    if mesh.colors is not None:
        buffers.append(_le(mesh.colors, "u1"))
    return [_pack(header, buffers), *buffers]


def encode_end(*, seq: int, frames: int, publish_time: float = 0.0) -> list:
    """End-of-stream message: a header alone; ``frame_index`` carries the number of frames read."""
    return [_pack(MeshHeader(kind=KIND_END, seq=seq, frame_index=frames, publish_time=publish_time,
                             persons_in_frame=0))]


def encode_heartbeat(*, next_seq: int, publish_time: float = 0.0) -> list:
    """Heartbeat: a header alone whose ``seq`` is the seq the next mesh or end-of-stream will carry
    (it takes no seq of its own, so ``next_seq - 1`` is the last message sent)."""
    return [_pack(MeshHeader(kind=KIND_HEARTBEAT, seq=next_seq, frame_index=0, publish_time=publish_time,
                             persons_in_frame=0))]


def _le(a: np.ndarray, dtype: str) -> memoryview:
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype))
    return memoryview(a.reshape(-1).view(np.uint8))


def _version_refusal(version: int) -> str:
    if version > VERSION:
        return (f"mesh header: wire version {version} is newer than this subscriber's {VERSION}: "
                "the publisher runs a newer streamrecon; upgrade streamrecon on the subscriber's side")
    return (f"mesh header: wire version {version} is older than this subscriber's {VERSION}: "
            "the publisher runs an older streamrecon; upgrade streamrecon on the publisher's side")


def decode_header(buf: BytesLike) -> MeshHeader:
    """Decode and validate a header part (magic, version, header size, kind, counts, dtypes, finite
    times and rect). The checksum is checked by ``decode``, which holds the buffers."""
    n = _nbytes(buf)
    if n < 8:
        raise ProtocolError(f"mesh header: {n} bytes is too short for magic + version")
    mv = memoryview(buf).cast("B")
    if bytes(mv[:4]) != MAGIC:
        raise ProtocolError(f"mesh header: bad magic {bytes(mv[:4])!r}, expected {MAGIC!r} (not a streamrecon mesh stream?)")
    version, header_size = struct.unpack_from("<HH", mv, 4)
    if version != VERSION:
        raise ProtocolError(_version_refusal(version))
    # A larger header_size is allowed (same-version additive fields); the part must hold exactly it.
    if not HEADER_SIZE <= header_size <= MAX_HEADER_SIZE or n != header_size:
        raise ProtocolError(f"mesh header: header_size field {header_size}, part holds {n} bytes, expected {HEADER_SIZE}..{MAX_HEADER_SIZE} and equal")
    (_, _, _, kind, flags, seq, frame_index, person_id, person_index, persons_in_frame,
     capture_time, publish_time, nv, nf, rx, ry, rw, rh, iw, ih, cf, vd, fd, nd, cd, checksum) = HEADER.unpack_from(mv, 0)
    if kind not in KINDS:
        raise ProtocolError(f"mesh header: unknown message kind {kind}")
    if flags & ~(FLAG_NORMALS | FLAG_COLORS):
        raise ProtocolError(f"mesh header: unknown flags 0x{flags:x}")
    if nv > MAX_VERTICES or nf > MAX_FACES:
        raise ProtocolError(f"mesh header: {nv} vertices / {nf} faces exceed the limits ({MAX_VERTICES} / {MAX_FACES})")
    if cf >= len(COORD_FRAMES):
        raise ProtocolError(f"mesh header: unknown coordinate frame code {cf}")
    has_n, has_c = bool(flags & FLAG_NORMALS), bool(flags & FLAG_COLORS)
    if kind == KIND_MESH:
        want = (_CODE_OF["vertices"], _CODE_OF["faces"], _CODE_OF["normals"] if has_n else 0, _CODE_OF["colors"] if has_c else 0)
        if (vd, fd, nd, cd) != want:
            raise ProtocolError(f"mesh header: dtype codes {(vd, fd, nd, cd)} do not match version {VERSION}'s {want}")
    elif (nv, nf, flags, vd, fd, nd, cd) != (0, 0, 0, 0, 0, 0, 0):
        raise ProtocolError(f"mesh header: a kind {kind} message carries no buffers, but announces {nv} vertices, "
                            f"{nf} faces, flags 0x{flags:x}, dtype codes {(vd, fd, nd, cd)} (all must be 0)")
    if not (math.isfinite(capture_time) and math.isfinite(publish_time)):
        raise ProtocolError(f"mesh header: non-finite time (capture_time {capture_time}, publish_time {publish_time})")
    rect: Optional[tuple] = (rx, ry, rw, rh)
    if all(math.isnan(v) for v in rect):
        rect = None  # unknown
    elif not all(math.isfinite(v) for v in rect):
        raise ProtocolError(f"mesh header: rect {rect} must be four finite numbers, or all NaN when unknown")
    return MeshHeader(
        kind=kind, seq=seq, frame_index=frame_index, person_id=person_id, person_index=person_index,
        persons_in_frame=persons_in_frame, capture_time=capture_time, publish_time=publish_time,
        num_vertices=nv, num_faces=nf, rect=rect,
        image_width=iw, image_height=ih, coord_frame=COORD_FRAMES[cf], has_normals=has_n, has_colors=has_c,
        checksum=checksum,
    )


def expected_sizes(h: MeshHeader) -> list:
    """Byte size of each buffer part that must follow header ``h``, in order."""
    if h.kind != KIND_MESH:
        return []
    sizes = [h.num_vertices * 12, h.num_faces * 12]
    if h.has_normals:
        sizes.append(h.num_vertices * 12)
    if h.has_colors:
        sizes.append(h.num_vertices * 3)
    return sizes


def decode(parts: Sequence[BytesLike], copy: bool = True) -> MeshMessage:
    """Decode ``[header, buffers...]`` (the topic part already removed). Every size is checked
    before any array is made, then the checksum; vertices and normals must be finite and face
    indices lie in ``[0, V)``. With ``copy=False`` the arrays are read-only views of ``parts``."""
    if not parts:
        raise ProtocolError("mesh message: no parts")
    h = decode_header(parts[0])
    sizes = expected_sizes(h)
    if len(parts) != 1 + len(sizes):
        raise ProtocolError(f"mesh message: {len(parts)} parts, header announces {1 + len(sizes)}")
    for i, (part, size) in enumerate(zip(parts[1:], sizes)):
        if _nbytes(part) != size:
            raise ProtocolError(f"mesh message: buffer {i} holds {_nbytes(part)} bytes, header announces {size}")
    crc = message_checksum(parts[0], parts[1:])
    if crc != h.checksum:
        raise ProtocolError(f"mesh message: checksum 0x{crc:08x} of the received bytes differs from the header's "
                            f"0x{h.checksum:08x} (corrupted on the way)")
    if h.kind != KIND_MESH:
        return MeshMessage(h, None)

    def arr(i: int, dtype: str, name: str) -> np.ndarray:
        a = np.frombuffer(parts[i], dtype=np.dtype(dtype)).reshape(-1, 3)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ProtocolError(f"mesh message: {name} hold non-finite values (NaN or infinity)")
        return a.copy() if copy else a

    verts, faces = arr(1, "<f4", "vertices"), arr(2, "<i4", "faces")
    k = 3
    normals = colors = None
    if h.has_normals:
        normals, k = arr(k, "<f4", "normals"), k + 1
    if h.has_colors:
        colors = arr(k, "u1", "colors")
    try:
        mesh = Mesh(verts, faces, normals=normals, colors=colors, frame=h.coord_frame, rect=h.rect)
    except ValueError as exc:
        raise ProtocolError(f"mesh message: {exc}") from None
    return MeshMessage(h, mesh)


def _nbytes(buf: BytesLike) -> int:
    return memoryview(buf).nbytes


# ---- fitted bodies (their own topic; docs/protocol.md "Fitted bodies") -------------------------
def encode_body(params: dict, *, seq: int, frame_index: int, person_id: int) -> bytes:
    """The body message's payload: UTF-8 strict JSON ``{"seq", "frame_index", "person_id", "body"}``
    where ``body`` is ``streamrecon.body.params.to_params`` of the person's fit and ``seq`` the
    seq of the mesh message it belongs to (sent just before that mesh)."""
    import json

    out = json.dumps({"seq": int(seq), "frame_index": int(frame_index), "person_id": int(person_id), "body": params},
                     allow_nan=False, separators=(",", ":")).encode()
    if len(out) > MAX_BODY_BYTES:
        raise ValueError(f"body message: {len(out)} bytes, above {MAX_BODY_BYTES}")
    return out


def decode_body(payload: BytesLike) -> dict:
    """A body message's payload -> its dict; ``ProtocolError`` for an oversized, malformed or
    non-finite one (checked before anything else is trusted)."""
    import json

    n = _nbytes(payload)
    if n > MAX_BODY_BYTES:
        raise ProtocolError(f"body message: {n} bytes, above {MAX_BODY_BYTES}")

    def no_constants(name: str):
        raise ValueError(f"non-finite number {name}")

    try:
        d = json.loads(bytes(payload).decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"body message: not strict JSON ({exc})") from None
    if not (isinstance(d, dict) and isinstance(d.get("body"), dict)
            and all(isinstance(d.get(k), int) and not isinstance(d.get(k), bool) and d.get(k) >= 0
                    for k in ("seq", "frame_index", "person_id"))):
        raise ProtocolError("body message: expected {seq, frame_index, person_id: integers >= 0, body: {...}}")
    return d
