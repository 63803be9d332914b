"""On-disk cache of compiled engines (ONNX files, TensorRT programs).

Each engine is two files in the cache folder: ``<key>.<ext>`` (the artefact) and ``<key>.json``
(its metadata: every field the key was made from plus the artefact's sha256), and sometimes
sidecars ``<key>.<ext><suffix>`` with their own sha256 in the metadata (large ONNX models keep
their weights in ``<key>.onnx.data``: ONNX Runtime then loads them without a second copy). ``key`` is a hash of
those fields — the model's identity (checkpoint hash and sub-network), input shapes, precision,
backend and its version, torch version and device — so a change to any of them gives a new key.
``lookup`` re-checks the metadata and the artefact hash: a stale or foreign engine is reported and
rebuilt, never silently used.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import UserInputError
from ..mesh.io import atomic_write_bytes

log = logging.getLogger(__name__)
METADATA_VERSION = 2
"""2: sidecar files and the engine format in the key; entries written with 1 are stale."""
_ENGINE_FILE = re.compile(r"^[0-9a-f]{24}\.")


def default_cache_dir() -> Path:
    """$STREAMRECON_ENGINES, else ./engines when it exists and is writable (the project layout),
    else ~/.cache/streamrecon/engines."""
    env = os.environ.get("STREAMRECON_ENGINES")
    if env:
        return Path(env)
    local = Path("engines")
    if local.is_dir() and os.access(local, os.W_OK):
        return local
    return Path.home() / ".cache" / "streamrecon" / "engines"


def engine_key(fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class EngineCache:
    """Engines under ``root``. Used from one thread at a time (build happens before streaming)."""

    def __init__(self, root: Optional[Path] = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def paths(self, fields: dict, ext: str) -> tuple[Path, Path]:
        key = engine_key(fields)
        return self.root / f"{key}.{ext}", self.root / f"{key}.json"

    def lookup(self, fields: dict, ext: str) -> Optional[Path]:
        """The artefact for ``fields`` if present and verified; None (with a log line saying why)
        when missing, stale or foreign."""
        artefact, meta_path = self.paths(fields, ext)
        if not artefact.exists():
            return None
        problem = self._verify(artefact, meta_path, fields)
        if problem:
            log.warning("engine %s ignored and rebuilt: %s", artefact.name, problem)
            return None
        return artefact

    def _verify(self, artefact: Path, meta_path: Path, fields: dict) -> Optional[str]:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            return f"metadata unreadable ({exc})"
        if meta.get("fields") != fields:
            return "metadata does not describe this model/shape/precision/backend version"
        if meta.get("sha256") != file_sha256(artefact):
            return "artefact content does not match its recorded hash"
        return _sidecar_problem(self.root, meta)

    def store(self, fields: dict, ext: str, build: Callable[[Path], None], sidecars: Sequence[str] = ()) -> Path:
        """Build the artefact with ``build(path)`` and publish it with its metadata.

        ``build`` writes ``path`` (the artefact's final file name, inside a private build folder)
        and may write sidecar files named ``path.name + s`` for ``s`` in ``sidecars`` (an ONNX
        model's external weights: the model refers to them by that name). Sidecars are published
        first and the metadata last, so an interrupted store is never taken for a valid engine."""
        artefact, meta_path = self.paths(fields, ext)
        tmp_dir = self.root / f".build-{artefact.stem}-{os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise UserInputError(f"engine cache {self.root}: cannot write there ({exc.strerror or exc}); pass "
                                 "--engines-dir DIR (or set STREAMRECON_ENGINES) to a writable folder") from None
        extra = {}
        try:
            build(tmp_dir / artefact.name)
            for suffix in sidecars:
                built = tmp_dir / (artefact.name + suffix)
                if built.exists():
                    extra[built.name] = file_sha256(built)
                    os.replace(built, self.root / built.name)
            os.replace(tmp_dir / artefact.name, artefact)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        meta = {
            "metadata_version": METADATA_VERSION,
            "fields": fields,
            "sha256": file_sha256(artefact),
            "file": artefact.name,
            "bytes": artefact.stat().st_size + sum((self.root / n).stat().st_size for n in extra),
            "sidecars": extra,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
        return artefact

    def entries(self) -> list[dict]:
        """Metadata of every engine in the cache, with ``status``: ok | stale | foreign."""
        out = []
        if not self.root.is_dir():
            return out
        for meta_path in sorted(self.root.glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
                artefact = self.root / meta["file"]
                fields = meta["fields"]
            except (OSError, ValueError, KeyError, TypeError):
                out.append({"file": meta_path.name, "status": "foreign"})
                continue
            status = "ok"
            if not artefact.exists() or meta.get("sha256") != file_sha256(artefact) or _sidecar_problem(self.root, meta):
                status = "foreign"
            elif (engine_key(fields) != meta_path.stem or _versions_changed(fields)
                  or meta.get("metadata_version") != METADATA_VERSION):
                status = "stale"
            out.append({**meta, "status": status})
        return out

    def clean(self, stale_only: bool = False) -> list[str]:
        """Remove engines (all, or only stale/foreign ones); returns the removed file names."""
        removed = []
        if not self.root.is_dir():
            return removed
        keep = set()
        if stale_only:
            for e in self.entries():
                if e["status"] == "ok":
                    keep.update({e["file"], Path(e["file"]).stem + ".json", *e.get("sidecars", {})})
        for path in sorted(self.root.iterdir()):
            if path.name in keep:
                continue
            if path.is_dir():
                if _abandoned_build(path.name):  # left by a killed build (never a running one)
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path.name)
                continue
            if not _ENGINE_FILE.match(path.name):  # only engine files: never a user's file
                continue
            path.unlink()
            removed.append(path.name)
        return removed


def _abandoned_build(name: str) -> bool:
    """True for a ``.build-<key>-<pid>`` folder whose process no longer runs."""
    m = re.fullmatch(r"\.build-[0-9a-f]{24}-(\d+)", name)
    if not m:
        return False
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _sidecar_problem(root: Path, meta: dict) -> Optional[str]:
    """Why the sidecar files recorded in ``meta`` do not check out, or None."""
    sidecars = meta.get("sidecars", {})
    if not isinstance(sidecars, dict):
        return "metadata lists its sidecar files wrongly"
    for name, digest in sidecars.items():
        path = root / str(name)
        if Path(str(name)).name != str(name) or not path.is_file():
            return f"sidecar file {name} is missing"
        if file_sha256(path) != digest:
            return f"sidecar file {name} does not match its recorded hash"
    return None


def backend_version(name: str) -> str:
    """The installed version of backend ``name`` (part of every engine's cache key)."""
    import torch

    if name in ("eager", "compile"):
        return torch.__version__
    if name == "onnxruntime":
        return importlib.import_module("onnxruntime").__version__
    if name == "tensorrt":
        return importlib.import_module("torch_tensorrt").__version__
    raise ValueError(f"backend: unknown {name!r}")


def _versions_changed(fields: dict) -> bool:
    """True when the engine was built with another torch or backend version than installed now."""
    import torch

    if fields.get("torch") != torch.__version__:
        return True
    try:
        return fields.get("backend_version") != backend_version(fields.get("backend", ""))
    except Exception:  # backend no longer installed
        return True
