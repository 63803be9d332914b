"""Reading a run directory (``docs/run_dir.md``, manifest version 1) for evaluation: the manifest
as typed entries, and the frame, mask and mesh files it names. Paths in the manifest are relative to
the run directory and must stay inside it."""
from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import UserInputError
from ...types import Mesh

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = (1,)
# Renders allocate a few float arrays per frame pixel: refuse absurd sizes up front.
MAX_FRAME_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class PersonEntry:
    """One person of one frame: ``rect`` (x, y, w, h) frame pixels; files relative to the run dir;
    ``body`` their fitted body as the manifest holds it (``body.params.to_params``'s dict, read
    by ``eval.metrics.depth.body_from_params``, which refuses a malformed one) or None when the
    run fitted none."""

    person: int
    file: str
    rect: tuple
    mask_file: Optional[str] = None
    body: Optional[object] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FrameEntry:
    """One processed frame: ``index`` in the source, ``time`` (s), frame size in pixels."""

    index: int
    time: Optional[float]
    width: int
    height: int
    frame_file: Optional[str]
    persons: tuple = ()


@dataclass(frozen=True)
class RunManifest:
    """The parts of ``manifest.json`` evaluation uses; ``raw`` keeps the whole document."""

    root: Path
    mesh_frame: str
    frames: tuple
    raw: dict = field(repr=False, default_factory=dict)


def _bad(path: Path, what: str) -> UserInputError:
    return UserInputError(f"{path}: {what} (expected a manifest written by `streamrecon run`, see docs/run_dir.md)")


def load_manifest(run_dir) -> RunManifest:
    """Parse and validate ``RUN_DIR/manifest.json``. Raises ``UserInputError`` naming the problem."""
    root = Path(run_dir)
    if not root.is_dir():
        raise UserInputError(f"{root}: not a directory; pass the --out folder of `streamrecon run`")
    path = root / "manifest.json"
    if not path.is_file():
        raise UserInputError(f"{path} not found; pass the --out folder of `streamrecon run`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"unreadable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _bad(path, "top level is not an object")
    if doc.get("version") not in SUPPORTED_VERSIONS:
        raise _bad(path, f"manifest version {doc.get('version')!r} is not supported (this streamrecon reads {SUPPORTED_VERSIONS})")
    mesh_frame = doc.get("mesh_frame", "image")
    if mesh_frame not in ("image", "crop"):
        raise _bad(path, f"mesh_frame must be 'image' or 'crop', got {mesh_frame!r}")
    frames_doc = doc.get("frames")
    if not isinstance(frames_doc, list):
        raise _bad(path, "'frames' must be a list")
    frames = []
    for k, fr in enumerate(frames_doc):
        try:
            persons = tuple(
                PersonEntry(person=int(p["person"]), file=str(p["file"]),
                            rect=_rect(p["rect"]), mask_file=p.get("mask_file") or None,
                            body=p.get("body"))
                for p in fr.get("persons", [])
            )
            frames.append(FrameEntry(index=int(fr["index"]), time=_opt_float(fr.get("time")),
                                     width=int(fr["width"]), height=int(fr["height"]),
                                     frame_file=fr.get("frame_file") or None, persons=persons))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _bad(path, f"frames[{k}] is malformed ({type(exc).__name__}: {exc})") from None
        fw, fh = frames[-1].width, frames[-1].height
        if fw <= 0 or fh <= 0 or fw * fh > MAX_FRAME_PIXELS:
            raise _bad(path, f"frames[{k}] has a size {fw} x {fh} outside 1..{MAX_FRAME_PIXELS} pixels")
    frames.sort(key=lambda f: f.index)
    return RunManifest(root=root, mesh_frame=mesh_frame, frames=tuple(frames), raw=doc)


def _rect(r) -> tuple:
    if not isinstance(r, (list, tuple)) or len(r) != 4:
        raise ValueError(f"rect must be [x, y, w, h], got {r!r}")
    x, y, w, h = (float(v) for v in r)
    if not (w > 0 and h > 0):
        raise ValueError(f"rect width and height must be > 0, got {r!r}")
    return (x, y, w, h)


def _opt_float(v) -> Optional[float]:
    return None if v is None else float(v)


def resolve(manifest: RunManifest, rel: Optional[str]) -> Optional[Path]:
    """The file ``rel`` names inside the run directory, or None when ``rel`` is None. A path that
    leaves the run directory (absolute, or with ``..``) is refused with ``UserInputError``."""
    if rel is None:
        return None
    root = manifest.root.resolve()
    p = (root / rel).resolve()
    if not p.is_relative_to(root):
        raise UserInputError(f"{manifest.root / 'manifest.json'}: file {rel!r} lies outside the run directory")
    return p


def read_rgb(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB image."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserInputError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """[H, W] bool person mask from an 8-bit PNG (255 = person; anything > 127 counts)."""
    import cv2

    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise UserInputError(f"{path}: not a readable mask image")
    return m > 127


def read_mesh(path: Path, frame: str) -> Mesh:
    """An OBJ (``mesh.io.read_obj``) or binary little-endian PLY as written by ``mesh.io``."""
    from ...mesh.io import read_obj

    suffix = path.suffix.lower()
    if suffix == ".obj":
        fast = read_obj_fast(path)
        if fast is not None:
            return Mesh(fast[0], fast[1], frame=frame)
        m = read_obj(path)  # layouts the fast path does not take (quads, ragged vertex lines)
        return Mesh(m.vertices, m.faces, frame=frame)
    if suffix == ".ply":
        v, f = read_ply(path)
        return Mesh(v, f, frame=frame)
    raise UserInputError(f"{path}: unknown mesh format {suffix!r} (expected .obj or .ply)")


_SLASH_TAIL = re.compile(rb"/\S*")


def read_obj_fast(path: Path) -> Optional[tuple]:
    """Vertices [V, 3] float32 and faces [F, 3] int64 (0-based) of an OBJ laid out as ``mesh.io``
    writes it: first a block of ``v`` lines (all with the same number of values), then any other
    lines (``vn``), then only triangle ``f`` lines. Parsed block-wise by numpy, several times
    faster than ``mesh.io.read_obj`` (its slow twin, used by the caller when this returns None)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"v "):
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    f_at = data.find(b"\nf ") + 1  # start of the first face line; 0 when there is none
    head, tail = (data[:f_at], data[f_at:]) if f_at else (data, b"")
    last_v = head.rfind(b"\nv ")
    v_block = head[: head.find(b"\n", last_v + 1) + 1]
    n_v = v_block.count(b"\n")
    n_f = tail.count(b"\n")
    # Contiguous blocks: every line of v_block is a "v " line, every line of tail an "f " line.
    if v_block.count(b"\nv ") + 1 != n_v or (n_f and tail.count(b"\nf ") + 1 != n_f):
        return None
    try:
        # numpy's C text parser; it raises on ragged rows, so a quad among triangles is refused.
        v = np.loadtxt(io.BytesIO(v_block.replace(b"v ", b"")), dtype=np.float64, ndmin=2)
        if b"/" in tail:
            tail = _SLASH_TAIL.sub(b"", tail)  # "a/b/c" and "a//c" -> "a"
        f = np.loadtxt(io.BytesIO(tail.replace(b"f ", b"")), dtype=np.int64, ndmin=2) if n_f else np.zeros((0, 3), np.int64)
    except ValueError:
        return None
    if v.shape[0] != n_v or v.shape[1] < 3 or f.shape != (n_f, 3) or (f < 1).any():
        return None
    return v[:, :3].astype(np.float32), f - 1


_PLY_TYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8", "uchar": "u1",
              "uint8": "u1", "char": "i1", "int8": "i1", "ushort": "<u2", "short": "<i2",
              "uint": "<u4", "int": "<i4", "int32": "<i4", "uint32": "<u4"}


def read_ply(path: Path) -> tuple:
    """Vertices [V, 3] float32 and triangles [F, 3] of a binary little-endian PLY whose faces are
    all triangles (the files ``mesh.io.write_mesh`` writes). Sizes are checked against the file
    length before anything is allocated."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise UserInputError(f"{path}: not a PLY file")
    header = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise UserInputError(f"{path}: only binary little-endian PLY is supported")
    elements, current = [], None
    for line in header:
        tok = line.split()
        if tok[:1] == ["element"] and len(tok) == 3:
            current = [tok[1], int(tok[2]), []]
            elements.append(current)
        elif tok[:1] == ["property"] and current is not None:
            current[2].append(tok[1:])
    body = memoryview(data)[end + len(b"end_header\n"):]
    offset, verts, faces = 0, None, None
    try:
        for name, count, props in elements:
            if props and props[0][0] == "list":
                _, ctype, itype, _pname = props[0]
                rec = np.dtype([("n", _PLY_TYPES[ctype]), ("idx", _PLY_TYPES[itype], (3,))])
            else:
                rec = np.dtype([(p[1], _PLY_TYPES[p[0]]) for p in props])
            if count < 0 or offset + count * rec.itemsize > len(body):
                raise UserInputError(f"{path}: truncated PLY ({name} x {count} does not fit the file)")
            arr = np.frombuffer(body, dtype=rec, count=count, offset=offset)
            offset += count * rec.itemsize
            if name == "vertex":
                verts = np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float32)
            elif name == "face":
                if count and not (arr["n"] == 3).all():
                    raise UserInputError(f"{path}: only triangle faces are supported")
                faces = arr["idx"].astype(np.int64)
    except (KeyError, ValueError) as exc:
        raise UserInputError(f"{path}: unsupported PLY layout ({exc})") from None
    if verts is None:
        raise UserInputError(f"{path}: PLY without a vertex element")
    return verts, faces if faces is not None else np.zeros((0, 3), np.int64)
