"""atheris harness: the mesh stream decoder (``streamrecon.transport.wire.decode``) on arbitrary messages.

Input framing: the first byte chooses whether the header's checksum is recomputed over the parts
(odd: yes, so the checks after the checksum get fuzzed too; even: the bytes are taken as they
are); the rest is split into ZeroMQ parts, each prefixed by a little-endian u16 length (the last
part takes what is left). The decoder must return a consistent message (finite vertices and
normals, face indices in range) or raise ``ProtocolError``; anything else (another exception, a
crash, a huge allocation) is a finding.

    .venv/bin/python tests/reliability/fuzz/fuzz_wire.py -runs=100000            # or -max_total_time=60
    .venv/bin/python tests/reliability/fuzz/fuzz_wire.py --write-seeds DIR       # seed corpus of valid messages
"""
import struct
import sys

import os
import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _instrument import instrument_modules  # noqa: E402

from streamrecon import types as mesh_types  # noqa: E402
from streamrecon.transport import wire  # noqa: E402
from streamrecon.errors import ProtocolError  # noqa: E402

instrument_modules(atheris, wire, mesh_types)


def split_parts(data: bytes) -> list:
    parts, i = [], 0
    while i + 2 <= len(data) and len(parts) < 8:
        (n,) = struct.unpack_from("<H", data, i)
        i += 2
        parts.append(data[i:i + n])
        i += n
    if i < len(data):
        parts.append(data[i:])
    return parts


def join_parts(parts) -> bytes:
    return b"".join(struct.pack("<H", len(p)) + bytes(p) for p in parts)


def resign(parts: list) -> list:
    """``parts`` with the header's checksum field set to the checksum of the parts as they are."""
    if not parts or len(parts[0]) < wire.CHECKSUM_OFFSET + 4:
        return parts
    hdr = bytearray(parts[0])
    struct.pack_into("<I", hdr, wire.CHECKSUM_OFFSET, wire.message_checksum(hdr, parts[1:]))
    return [bytes(hdr), *parts[1:]]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    parts = split_parts(data[1:])
    if data[0] & 1:
        parts = resign(parts)
    try:
        msg = wire.decode(parts)
    except ProtocolError:
        return
    h = msg.header
    if msg.mesh is not None:
        import numpy as np

        assert msg.mesh.vertices.shape == (h.num_vertices, 3)
        assert msg.mesh.faces.shape == (h.num_faces, 3)
        assert np.isfinite(msg.mesh.vertices).all()
        assert msg.mesh.normals is None or np.isfinite(msg.mesh.normals).all()
        if h.num_faces:
            assert 0 <= int(msg.mesh.faces.min()) and int(msg.mesh.faces.max()) < h.num_vertices


def seeds() -> dict:
    import numpy as np

    from streamrecon.types import Mesh

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    full = Mesh(v, f, normals=v.copy(), colors=np.full((4, 3), 9, np.uint8), rect=(1, 2, 3, 3))
    seeds = {
        "mesh": join_parts(wire.encode_mesh(Mesh(v, f), seq=1, frame_index=2)),
        "mesh_full": join_parts(wire.encode_mesh(full, seq=5, frame_index=9)),
        "end": join_parts(wire.encode_end(seq=3, frames=10)),
        "heartbeat": join_parts(wire.encode_heartbeat(next_seq=4)),
    }
    # each as it is (first byte even) and with the checksum recomputed after mutation (odd)
    return {**{k: b"\0" + d for k, d in seeds.items()}, **{k + "_resign": b"\1" + d for k, d in seeds.items()}}


def main(argv) -> None:
    if len(argv) == 3 and argv[1] == "--write-seeds":
        import os

        os.makedirs(argv[2], exist_ok=True)
        for name, data in seeds().items():
            with open(os.path.join(argv[2], name), "wb") as fh:
                fh.write(data)
        return
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
