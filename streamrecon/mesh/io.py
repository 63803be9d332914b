"""Mesh files: OBJ and PLY (binary little-endian) writers and an OBJ reader, and the atomic writer
every output of streamrecon goes through. Writes are atomic (temp file in the same folder +
``os.replace``) so a crash never leaves a half-written file; new files get the mode the user's
umask gives (like any program's ``open``); a failure is one ``OutputError`` line naming the path,
the reason and what to do (read-only or full disk, no free inodes, a folder in the way)."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import OutputError
from ..types import Mesh

PathLike = Union[str, "os.PathLike[str]"]
FORMATS = ("obj", "ply")
NAME_MAX = 255
"""bytes in one file name (Linux, macOS and Windows file systems alike)."""
_TEMP_EXTRA = len(b"..") + 8 + len(b".tmp")  # ".NAME.xxxxxxxx.tmp" around the name


def temp_name(name: str, token: str) -> str:
    """The temp file name ``.NAME.TOKEN.tmp`` of ``name``, with NAME cut (at a character boundary)
    so that the whole stays within ``NAME_MAX`` bytes: a legal 250-byte output name must not get
    an illegal temp name. ``token``: 8 characters."""
    raw = os.fsencode(name)
    keep = NAME_MAX - _TEMP_EXTRA
    if len(raw) > keep:
        cut = raw[:keep]
        try:
            raw.decode("utf-8")
            name = cut.decode("utf-8", "ignore")  # drops a character the cut split in two
        except UnicodeDecodeError:  # not UTF-8: keep the bytes as the file system has them
            name = os.fsdecode(cut)
    return f".{name}.{token}.tmp"


def output_error(path: PathLike, exc: OSError, action: str = "write") -> OutputError:
    """``exc`` (an ``OSError`` of writing ``path``) as a one-line ``OutputError``: the path, the
    reason in words and what to do. ``action``: the verb of the message (write, create)."""
    why, fix = output_error_reason(path, exc)
    return OutputError(f"cannot {action} {os.fspath(path)}: {why}; {fix}", errno=exc.errno, path=os.fspath(path))


def output_error_reason(path: PathLike, exc: OSError) -> tuple:
    """(why, what to do) in words for ``exc``, an ``OSError`` of writing ``path``."""
    path = os.fspath(path)
    code = exc.errno
    parent = os.path.dirname(os.path.abspath(path))
    if code == errno.ENOSPC:
        if _no_free_inodes(parent):
            why = "no free inodes left on the device (its file system holds as many files as it can)"
        else:
            why = "no space left on the device"
        fix = "free some space there (or write to another disk) and run again"
    elif code == errno.EDQUOT:
        why, fix = "disk quota exceeded", "free some space in your quota (or write to another disk) and run again"
    elif code == errno.EROFS:
        why, fix = "the file system is mounted read-only", "write to a writable folder"
    elif code in (errno.EACCES, errno.EPERM):
        why, fix = "permission denied", "write to a folder you may write to (or change its permissions)"
    elif code == errno.EISDIR:
        why, fix = "it is a folder", "give the name of a file, not of a folder"
    elif code == errno.ENOTDIR:
        why, fix = "a part of the path is a file, not a folder", "check the path"
    elif code == errno.ENOENT and os.path.isdir(parent):
        why, fix = f"the folder {parent} does not accept new files (a virtual file system such as /proc?)", "write to a normal folder"
    elif code == errno.ENOENT:
        why, fix = "its folder does not exist", "check the path"
    elif code == errno.ENAMETOOLONG:
        why, fix = f"the name is too long (at most {NAME_MAX} bytes a name)", "use a shorter name"
    elif code in (errno.EMFILE, errno.ENFILE):
        why, fix = "too many open files", "raise the open-file limit (ulimit -n) or close other programs"
    elif code == errno.EIO:
        why, fix = "input/output error", "check the disk (dmesg) or write to another one"
    else:
        why, fix = (exc.strerror or str(exc)).rstrip(".").lower() or type(exc).__name__, "check the path and the disk"
    return why, fix


def _no_free_inodes(folder: str) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_files > 0 and st.f_favail == 0


def _open_temp(path: Path) -> tuple:
    """Create ``path``'s temp file (see ``temp_name``) for writing: (fd, temp path). Mode 0o666
    before the umask, as ``open`` gives, so the final file gets the user's usual mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / temp_name(path.name, os.urandom(4).hex())
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path))


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the whole new one. The
    new file's mode follows the umask. Raises ``OutputError`` (one line) when it cannot be written;
    nothing is left behind then."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = _open_temp(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise output_error(path, exc) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def make_output_dir(path: PathLike) -> Path:
    """Create the folder ``path`` (and its parents) for output; ``OutputError`` when that fails or a
    file is in the way."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise OutputError(f"cannot write into {path}: it is a file, not a folder; give a folder name",
                              errno=errno.ENOTDIR, path=os.fspath(path))
        path.mkdir(parents=True, exist_ok=True)
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(path, exc, "create") from exc
    return path


def check_output_file(path: PathLike) -> Path:
    """Make sure a file can be written at ``path`` before the work that produces it, creating
    nothing: not a folder, a name of at most ``NAME_MAX`` bytes, and a temp file can be made (and
    is removed again) in its folder or, when that does not exist yet, the nearest existing parent;
    this finds read-only mounts, missing permissions, full disks and virtual file systems. Raises
    ``OutputError``."""
    path = Path(path)
    try:
        is_dir = path.is_dir()
    except OSError as exc:  # a name too long, a path through a file ...
        raise output_error(path, exc) from exc
    if is_dir:
        raise output_error(path, OSError(errno.EISDIR, "Is a directory"))
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise output_error(path, OSError(errno.ENAMETOOLONG, "File name too long"))
    check_output_dir(path.parent, target=path)
    return path


def check_output_dir(path: PathLike, target: PathLike = None) -> Path:
    """Make sure the folder ``path`` can be created and written, creating nothing: a file in the
    way is refused, and a temp file is made and removed in ``path`` or, when it does not exist
    yet, in its nearest existing parent. Raises ``OutputError`` naming ``target`` (default
    ``path``)."""
    path = Path(os.path.abspath(path))
    probe = path
    try:
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            what = "it is a file" if probe == path else f"{probe} is a file"
            raise OutputError(f"cannot write into {path}: {what}, not a folder; give a folder name",
                              errno=errno.ENOTDIR, path=os.fspath(path))
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(path, exc, "create") from exc
    _probe(probe, Path(target) if target is not None else path)
    return path


def _probe(folder: Path, target: Path) -> None:
    """Create and remove a temp file in ``folder``; ``OutputError`` naming ``target`` if it fails."""
    try:
        fd, tmp = _open_temp(folder / target.name)
    except OSError as exc:
        raise output_error(target, exc) from exc
    os.close(fd)
    _unlink_quietly(tmp)


def obj_bytes(mesh: Mesh, native: bool = True) -> bytes:
    """OBJ text: ``v x y z [r g b]`` (colours as 0..1 floats), ``vn`` when normals exist, and
    1-based ``f`` lines (``f a//a ...`` when normals exist). Formatted by the native kernel when
    built (byte-identical, ~10x faster and without the GIL, which the streaming threads need),
    else by ``obj_bytes_py``, its twin."""
    nat = None
    if native:
        from ..native import native_or_none

        nat = native_or_none("OBJ writing")
    if nat is None:
        return obj_bytes_py(mesh)
    return nat.obj_text(mesh.vertices, mesh.faces.astype(np.int64, copy=False), mesh.normals, mesh.colors)


def obj_bytes_py(mesh: Mesh) -> bytes:
    """``obj_bytes`` in numpy and Python string formatting (the reference for the native one)."""
    v = mesh.vertices
    parts = []
    if mesh.colors is not None:
        c = mesh.colors.astype(np.float32) / 255.0
        vc = np.concatenate([v, c], axis=1)
        parts.append(_format_rows("v", vc, "%.6f %.6f %.6f %.4f %.4f %.4f"))
    else:
        parts.append(_format_rows("v", v, "%.6f %.6f %.6f"))
    f1 = mesh.faces.astype(np.int64) + 1
    if mesh.normals is not None:
        parts.append(_format_rows("vn", mesh.normals, "%.5f %.5f %.5f"))
        ff = np.repeat(f1, 2, axis=1)
        parts.append(_format_rows("f", ff, "%d//%d %d//%d %d//%d"))
    else:
        parts.append(_format_rows("f", f1, "%d %d %d"))
    return "".join(parts).encode("ascii")


def _format_rows(tag: str, a: np.ndarray, fmt: str) -> str:
    if len(a) == 0:
        return ""
    line = f"{tag} {fmt}\n"
    return (line * len(a)) % tuple(a.ravel().tolist())


def ply_bytes(mesh: Mesh) -> bytes:
    """Binary little-endian PLY with float32 xyz, optional float32 normals and uint8 colours."""
    nv, nf = mesh.num_vertices, mesh.num_faces
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {nv}",
              "property float x", "property float y", "property float z"]
    if mesh.normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        header += ["property float nx", "property float ny", "property float nz"]
    if mesh.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {nf}", "property list uchar int vertex_indices", "end_header"]
    vert = np.empty(nv, dtype=fields)
    vert["x"], vert["y"], vert["z"] = mesh.vertices.T
    if mesh.normals is not None:
        vert["nx"], vert["ny"], vert["nz"] = mesh.normals.T
    if mesh.colors is not None:
        vert["red"], vert["green"], vert["blue"] = mesh.colors.T
    face = np.empty(nf, dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"] = 3
    face["idx"] = mesh.faces
    return ("\n".join(header) + "\n").encode("ascii") + vert.tobytes() + face.tobytes()


def write_mesh(mesh: Mesh, path: PathLike, fmt: str | None = None) -> Path:
    """Write ``mesh`` atomically as OBJ or PLY (``fmt`` or the file suffix). Returns the path."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS} (or a .obj/.ply path), got {fmt!r}")
    data = obj_bytes(mesh) if fmt == "obj" else ply_bytes(mesh)
    atomic_write_bytes(path, data)
    return path


def read_obj(path: PathLike) -> Mesh:
    """Read the vertices (first 3 numbers, colours when 6) and triangle faces of an OBJ file."""
    verts, cols, faces = [], [], []
    with open(path, "r", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                vals = line.split()[1:]
                verts.append([float(x) for x in vals[:3]])
                if len(vals) >= 6:
                    cols.append([float(x) for x in vals[3:6]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:4]]
                faces.append(idx)
    v = np.asarray(verts, dtype=np.float32).reshape(-1, 3)
    fc = np.asarray(faces, dtype=np.int64).reshape(-1, 3) - 1
    colors = None
    if cols and len(cols) == len(verts):
        colors = np.clip(np.rint(np.asarray(cols) * 255), 0, 255).astype(np.uint8)
    return Mesh(v, fc, colors=colors)
