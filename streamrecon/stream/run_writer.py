"""Writes the run directory of ``docs/run_dir.md``: meshes, input frames, masks and
``manifest.json``. Every file is written atomically (temp file + rename); the manifest is rewritten
after the files it names exist, so it only ever names files that are on disk. It is rewritten at
most every ``manifest_interval_s`` (and always at the end): rewriting it after every frame made a
long run O(N^2) in bytes written and fsynced. After a crash (SIGKILL, power loss) the files of the
last frames may be on disk without being in the manifest; the next run into the same folder removes
stale temp files.

A folder that already holds something is refused unless the mode says what to do with it
(``overwrite``: delete what a run wrote there; ``resume``: keep the frames its manifest lists and
go on). When the disk fills up (or runs out of inodes) the frame being written is removed again
and ``finish`` still records the summary: the writer keeps a reserve file as large as the final
manifest will be, and the last manifest is written into it. Owned by the consumer thread.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import List, Optional, Set

from ..errors import OutputError, UserInputError
from ..mesh.io import FORMATS, atomic_write_bytes, check_output_dir, make_output_dir, output_error, write_mesh

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MODES = ("new", "overwrite", "resume")
SUBFOLDERS = ("meshes", "frames", "masks", "bodies")
RESERVE = ".manifest.json.reserve.tmp"
"""the reserve file (a temp-file name, so the next run removes one a killed run left)."""
# what a run writes into its subfolders (and nothing else is deleted by ``overwrite``)
_RUN_FILE = re.compile(r"^frame_\d{6,}(_p\d+)?\.(obj|ply|jpg|png)$")
_RESERVE_STEP = 64 << 10
_SUMMARY_BYTES = 24 << 10  # the summary and the list of skipped inputs (``MAX_SKIPPED_LISTED``), at most
_ENTRY_BYTES = 2048  # one frame's entry before its persons (timings included)
_PERSON_BYTES = 3072  # rect, counts, files, world landmarks (~0.6 KB) and the fitted body (~0.8 KB)
# manifest fields that must match for ``resume`` (the meshes would not belong together otherwise)
_RESUME_KEYS = ("source", "model", "resolution", "mesh_format", "mesh_frame")


def mesh_name(frame_index: int, person: int, fmt: str) -> str:
    return f"meshes/frame_{frame_index:06d}_p{person}.{fmt}"


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def run_dir_contents(root: Path) -> List[str]:
    """What makes ``root`` non-empty for a new run: every entry but temp files (a killed run's) and
    empty ``meshes``/``frames``/``masks`` folders (a start-up that wrote nothing)."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise output_error(root, exc, "read") from exc
    found = []
    for name in names:
        if _is_temp(name):
            continue
        if name in SUBFOLDERS and (root / name).is_dir() and not [n for n in os.listdir(root / name) if not _is_temp(n)]:
            continue
        found.append(name + ("/" if (root / name).is_dir() else ""))
    return found


def check_run_dir(out: str, mode: str = "new") -> None:
    """The cheap checks of a run directory, made before the source opens and the model loads: a
    non-empty folder is refused unless ``mode`` is ``overwrite`` or ``resume`` (which needs its
    manifest), and the folder must be creatable and writable (nothing is created here). Raises
    ``UserInputError`` or ``OutputError``."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    root = Path(out)
    check_output_dir(root)
    contents = run_dir_contents(root)
    if not contents:
        return
    if mode == "new":
        shown = ", ".join(contents[:4]) + (f" and {len(contents) - 4} more" if len(contents) > 4 else "")
        raise UserInputError(f"--out {out} is not empty ({shown}); add --overwrite to replace the run written there, "
                             "--resume to finish it, or choose another folder")
    if mode == "resume":
        read_manifest(root)


def read_manifest(root: Path) -> dict:
    """``root/manifest.json`` for ``resume``; ``UserInputError`` when missing or not a manifest."""
    path = root / "manifest.json"
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"--resume: {root} has no manifest.json, so there is no run to resume; "
                             "use --overwrite to start again there, or choose another folder") from None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"--resume: {path} is not readable JSON ({exc}); use --overwrite to start again") from None
    if not isinstance(m, dict) or m.get("version") != MANIFEST_VERSION or not isinstance(m.get("frames"), list):
        raise UserInputError(f"--resume: {path} is not a version {MANIFEST_VERSION} streamrecon manifest; "
                             "use --overwrite to start again")
    return m


def clear_run_dir(root: Path) -> int:
    """Delete what a run wrote in ``root`` (``manifest.json``, temp files, and the frame files in
    ``meshes``/``frames``/``masks``, whose folders go when empty); any other file stays. Returns
    how many files were deleted."""
    n = 0
    for folder in (root, *(root / s for s in SUBFOLDERS)):
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            ours = _is_temp(name) or (name == "manifest.json" if folder == root else bool(_RUN_FILE.match(name)))
            if ours:
                try:
                    os.unlink(folder / name)
                    n += 1
                except OSError as exc:
                    raise output_error(folder / name, exc, "delete") from exc
        if folder != root:
            try:
                os.rmdir(folder)
            except OSError:
                pass  # holds files streamrecon did not write: kept
    kept = run_dir_contents(root)
    log.info("--overwrite: deleted %d file(s) of the earlier run in %s%s", n, root,
             f"; kept {', '.join(kept)}" if kept else "")
    return n


class RunWriter:
    """``write(result, timings)`` per ``FrameResult``; ``finish(summary)`` at the end. ``mode``:
    ``new`` (the folder must be empty), ``overwrite`` (the earlier run's files are deleted first)
    or ``resume`` (the frames the manifest lists, with their files on disk, are kept: ``done``
    holds their indices and ``write`` appends the others)."""

    def __init__(
        self,
        out_dir: str,
        *,
        source: str,
        source_kind: str,
        model: str,
        resolution: int,
        mesh_format: str = "obj",
        mesh_frame: str = "image",
        save_inputs: bool = True,
        manifest_interval_s: float = 0.5,
        mode: str = "new",
        save_body: bool = False,
    ) -> None:
        if mesh_format not in FORMATS:
            raise UserInputError(f"--format: expected one of {FORMATS}, got {mesh_format!r}")
        self.root = Path(out_dir)
        check_run_dir(out_dir, mode)
        self.created_root = not self.root.exists()
        self.fmt = mesh_format
        self.save_inputs = save_inputs
        self.save_body = save_body
        self.mesh_frame = mesh_frame
        self.manifest_interval_s = manifest_interval_s
        self.manifest_writes = 0
        self._last_flush = -float("inf")
        self.manifest = {
            "version": MANIFEST_VERSION,
            "source": source,
            "source_kind": source_kind,
            "model": model,
            "resolution": resolution,
            "mesh_format": mesh_format,
            "mesh_frame": mesh_frame,
            "frames": [],
            "summary": None,
        }
        kept: List[str] = []
        self.done: Set[int] = set()
        """indices of the frames kept from the run being resumed (``write`` is not called for them)"""
        if mode == "overwrite":
            clear_run_dir(self.root)
        elif mode == "resume" and run_dir_contents(self.root):
            kept, self.done = self._resumable(read_manifest(self.root))
        self._created: List[Path] = []
        try:
            for sub in ("", *SUBFOLDERS):
                if sub == "bodies" and not save_body:
                    continue
                if not (self.root / sub).is_dir():
                    make_output_dir(self.root / sub)
                    self._created.append(self.root / sub)
        except OutputError:
            self.discard()
            raise
        self.removed_temps = remove_stale_temps(self.root)
        self.manifest["frames"] = kept
        self._bytes = len(self._head()) + sum(len(f) + 2 for f in kept)
        self._reserve_size = 0
        self._reserve_used = False
        self._sorted = True
        try:
            self._ensure_reserve(0)
            if mode == "resume" and kept:
                self._flush()  # the earlier summary goes: the run is under way again
        except OutputError:
            self.discard()
            raise

    # -- resume -----------------------------------------------------------------------------
    def _resumable(self, old: dict):
        """The earlier manifest's frame entries whose files are all on disk (as compact JSON) and
        their indices; ``UserInputError`` when it was written for another source or settings."""
        diff = [f"{k} {old.get(k)!r} (now {self.manifest[k]!r})" for k in _RESUME_KEYS if old.get(k) != self.manifest[k]]
        if diff and diff[0].startswith("source ") and _same_file(old.get("source"), self.manifest["source"]):
            diff = diff[1:]
        if diff:
            raise UserInputError(f"--resume: {self.root} holds a run with another {'; '.join(diff)}; resume with the "
                                 "same source and settings, or use --overwrite")
        kept, done, lost = [], set(), 0
        for f in old["frames"]:
            try:
                files = [f["frame_file"]] if "frame_file" in f else []
                files += [x for p in f["persons"] for x in (p["file"], p.get("mask_file")) if x]
                index = int(f["index"])
            except (KeyError, TypeError, ValueError):
                raise UserInputError(f"--resume: {self.root / 'manifest.json'} has a malformed frame entry; "
                                     "use --overwrite to start again") from None
            if index in done or not all((self.root / x).is_file() for x in files):
                lost += 1
                continue
            kept.append(json.dumps(f, allow_nan=False, separators=(",", ":")))
            done.add(index)
        if lost:
            log.warning("--resume: %d frame(s) of the manifest have files missing; they are made again", lost)
        log.info("--resume: keeping %d frame(s) of %s", len(kept), self.root)
        return kept, done

    # -- frames -----------------------------------------------------------------------------
    def write(self, result, timings: Optional[dict] = None) -> dict:
        """Write one frame's files, then (when due) the manifest. Returns the frame's manifest
        entry. On ``OutputError`` (disk full, ...) the frame's files written so far are removed:
        the folder holds only complete, listed frames (and those written since the last
        manifest rewrite)."""
        import cv2

        frame = result.frame
        self._ensure_reserve(_ENTRY_BYTES + _PERSON_BYTES * len(result.persons))
        entry = {
            "index": frame.index,
            "time": frame.pts,
            "width": frame.width,
            "height": frame.height,
            "persons": [],
            "timings": dict(timings or result.timings),
        }
        written: List[Path] = []
        try:
            if self.save_inputs:
                name = f"frames/frame_{frame.index:06d}.jpg"
                # cvtColor, not image[:, :, ::-1]: the strided view made imencode copy it pixel by
                # pixel (4.0 -> 1.7 ms CPU per 640x480 frame, same bytes)
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                if ok:
                    atomic_write_bytes(self.root / name, buf.tobytes())
                    written.append(self.root / name)
                    entry["frame_file"] = name
            for p in result.persons:
                pid = p.crop.person_id
                name = mesh_name(frame.index, pid, self.fmt)
                write_mesh(p.mesh, self.root / name, self.fmt)
                written.append(self.root / name)
                person = {"person": pid, "file": name, "rect": [float(v) for v in p.crop.rect],
                          "vertices": p.mesh.num_vertices, "faces": p.mesh.num_faces}
                person.update(person_fields(p.crop))
                if self.save_body and p.crop.body is not None:
                    bname = f"bodies/frame_{frame.index:06d}_p{pid}.{self.fmt}"
                    write_mesh(body_file_mesh(p.crop, self.mesh_frame), self.root / bname, self.fmt)
                    written.append(self.root / bname)
                    person["body_file"] = bname
                if p.crop.mask is not None:
                    mname = f"masks/frame_{frame.index:06d}_p{pid}.png"
                    ok, buf = cv2.imencode(".png", p.crop.mask.astype("uint8") * 255)
                    if ok:
                        atomic_write_bytes(self.root / mname, buf.tobytes())
                        written.append(self.root / mname)
                        person["mask_file"] = mname
                entry["persons"].append(person)
        except BaseException:
            for path in written:  # not listed: gone, and their space and inodes free again
                _unlink(path)
            raise
        frames = self.manifest["frames"]
        self._seal_last()
        if frames and self._index_of(frames[-1]) > frame.index:
            self._sorted = False  # a resumed run that makes an earlier frame again
        frames.append(entry)
        if time.monotonic() - self._last_flush >= self.manifest_interval_s:
            self._flush()
        return entry

    def _seal_last(self) -> None:
        frames = self.manifest["frames"]
        if frames and isinstance(frames[-1], dict):
            # earlier entries are final: keep them as compact JSON text (~0.4 KB instead of ~1.3 KB
            # of dicts a frame), so a long run's memory stays flat; only the newest stays a dict
            # (the session adds its timings after ``write``)
            frames[-1] = json.dumps(frames[-1], allow_nan=False, separators=(",", ":"))
            self._bytes += len(frames[-1]) + 2

    @staticmethod
    def _index_of(entry) -> int:
        if isinstance(entry, dict):
            return int(entry["index"])
        return int(entry[len('{"index":'):entry.index(",")])  # compact entries start with their index

    # -- manifest ---------------------------------------------------------------------------
    def finish(self, summary: dict) -> Path:
        """Record ``summary`` and write the manifest a last time. When the disk is full (or out of
        inodes) the manifest is written into the reserve file instead. Raises ``OutputError`` only
        when neither works (the manifest on disk is then the last one written: still valid)."""
        self.manifest["summary"] = summary
        try:
            self._flush()
        except OutputError as exc:
            if exc.errno not in _FULL or self._reserve_used:
                raise
            self._flush_into_reserve()
        self._drop_reserve()
        return self.root / "manifest.json"

    def flush(self) -> None:
        """Rewrite the manifest now (the end of a run, or a caller that wants it current)."""
        self._flush()

    def frames(self) -> list:
        """The manifest's frame entries as dicts (what ``manifest.json`` holds)."""
        return [json.loads(f) if isinstance(f, str) else f for f in self.manifest["frames"]]

    def discard(self) -> None:
        """Undo a start-up that wrote no frame: the reserve and the folders this writer created
        (when still empty) are removed."""
        self._drop_reserve()
        for folder in reversed(getattr(self, "_created", [])):
            try:
                os.rmdir(folder)
            except OSError:
                pass

    def _head(self) -> str:
        return json.dumps({**self.manifest, "frames": []}, indent=1, allow_nan=False)

    def _manifest_bytes(self) -> bytes:
        if not self._sorted:
            self.manifest["frames"].sort(key=self._index_of)
            self._sorted = True
        head = self._head()
        frames = ",\n".join(f if isinstance(f, str) else json.dumps(f, allow_nan=False, separators=(",", ":"))
                            for f in self.manifest["frames"])
        marker = '"frames": []'
        assert head.count(marker) == 1
        return head.replace(marker, '"frames": [\n' + frames + "\n]").encode()

    def _flush(self) -> None:
        atomic_write_bytes(self.root / "manifest.json", self._manifest_bytes())
        self.manifest_writes += 1
        self._last_flush = time.monotonic()

    # -- the reserve ----------------------------------------------------------------------------
    def _ensure_reserve(self, entry_bytes: int) -> None:
        """Grow the reserve file to hold the manifest with one more entry of ``entry_bytes`` and the
        summary. Called before a frame's files are written: when even the reserve cannot grow, the
        disk is full and the frame is not started (``OutputError``)."""
        pending = self.manifest["frames"][-1] if self.manifest["frames"] else None
        need = self._bytes + entry_bytes + _SUMMARY_BYTES
        if isinstance(pending, dict):
            need += _ENTRY_BYTES + _PERSON_BYTES * len(pending.get("persons", ()))
        if need <= self._reserve_size or self._reserve_used:
            return
        size = -(-max(need + need // 4, need + _RESERVE_STEP) // _RESERVE_STEP) * _RESERVE_STEP
        path = self.root / RESERVE
        try:
            # 0o666 before the umask: the reserve may become manifest.json, which gets the usual mode
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                _allocate(fd, size)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._reserve_size:
                _unlink(path)  # a reserve that never was: nothing left behind
            # named as the manifest: the reserve is an internal file the user does not know
            raise output_error(self.root / "manifest.json", exc) from exc
        self._reserve_size = size

    def _flush_into_reserve(self) -> None:
        """Write the manifest into the reserve (its blocks and inode are allocated already) and
        rename it over ``manifest.json``."""
        data = self._manifest_bytes()
        path = self.root / RESERVE
        try:
            if len(data) > self._reserve_size:
                raise OSError(errno.ENOSPC, "the reserve is smaller than the manifest")
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.ftruncate(fd, len(data))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(path, self.root / "manifest.json")
        except OSError as exc:
            raise output_error(self.root / "manifest.json", exc) from exc
        self._reserve_used = True
        self.manifest_writes += 1
        log.info("disk full: the last manifest of %s was written into its reserve", self.root)

    def _drop_reserve(self) -> None:
        if not getattr(self, "_reserve_used", True):
            _unlink(self.root / RESERVE)
            self._reserve_size = 0


_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space (or no inodes), quota exceeded


def _allocate(fd: int, size: int) -> None:
    """Allocate ``size`` bytes of blocks to ``fd`` (blocks written later need no free space)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # not supported here: write zeros instead
                raise
    have = os.fstat(fd).st_size
    if have < size:
        os.lseek(fd, have, os.SEEK_SET)
        zeros = bytes(min(size - have, 1 << 20))
        while have < size:
            have += os.write(fd, zeros[: size - have])
        os.fsync(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _same_file(a, b) -> bool:
    try:
        return bool(a) and bool(b) and os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False


def person_fields(crop) -> dict:
    """A person's found-people fields of the manifest: ``height_px`` (their body's height in frame
    pixels, to filter small people by) and ``world_landmarks`` (BlazePose's 33 world landmarks,
    metres rounded to mm, hips at the origin; see ``streamrecon.types.PersonCrop``), when known."""
    out = {}
    h = crop.meta.get("height_px")
    if h is not None:
        out["height_px"] = round(float(h), 1)
    if crop.world_landmarks is not None:
        out["world_landmarks"] = [[round(float(v), 3) for v in row] for row in crop.world_landmarks]
    if getattr(crop, "body", None) is not None:
        from ..body.params import to_params

        out["body"] = to_params(crop.body)
    return out


def remove_stale_temps(root: Path) -> int:
    """Delete the temp files (``.NAME.*.tmp``, see ``meshio.atomic_write_bytes``) a killed run left
    in ``root`` and its ``meshes``/``frames``/``masks`` folders. Returns how many were removed."""
    n = 0
    for folder in (root, root / "meshes", root / "frames", root / "masks"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if _is_temp(name):
                try:
                    os.unlink(folder / name)
                    n += 1
                except OSError:
                    pass
    if n:
        log.warning("removed %d temp file(s) left by an interrupted run in %s", n, root)
    return n


def body_file_mesh(crop, mesh_frame: str):
    """The person's fitted body as the mesh ``--save-body`` writes: the clothed meshes' frame and
    depth origin (``body.params.body_mesh``)."""
    from ..body.params import body_mesh
    from ..mesh.coords import mesh_to_frame

    return mesh_to_frame(body_mesh(crop.body, crop.rect), mesh_frame, crop.rect)
