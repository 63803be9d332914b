"""Write run directories in the format of docs/run_dir.md (manifest version 1, with the fitted
bodies `streamrecon run` records: ``persons[i]["body"]`` = ``body.params.to_params(fit)``) from
arrays, for the evaluate tests and benchmarks."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np


@dataclass
class PersonRecord:
    """One person of one frame: ``mesh`` a ``types.Mesh`` (any frame; written in the run's
    ``mesh_frame``), ``rect`` (x, y, w, h) frame pixels, ``mask`` [H, W] bool or None, ``body``
    the ``to_params`` dict or None."""

    mesh: object
    rect: tuple
    mask: Optional[np.ndarray] = None
    body: Optional[dict] = None
    person: int = 0


@dataclass
class FrameRecord:
    """One frame: ``image`` [H, W, 3] uint8 RGB (None: not saved), its persons, ``time`` s."""

    index: int
    image: Optional[np.ndarray]
    persons: List[PersonRecord] = field(default_factory=list)
    time: Optional[float] = None
    size: Optional[tuple] = None  # (height, width) when image is None


def write_run_dir(root: Path, frames: List[FrameRecord], mesh_frame: str = "image", fmt: str = "obj",
                  model: str = "test", source: str = "test-clip") -> Path:
    """Write ``root/manifest.json`` and the files it names; returns ``root``."""
    import cv2

    from streamrecon.mesh.coords import mesh_to_frame
    from streamrecon.mesh.io import write_mesh

    root = Path(root)
    for d in ("frames", "masks", "meshes"):
        (root / d).mkdir(parents=True, exist_ok=True)
    entries = []
    for fr in frames:
        h, w = fr.image.shape[:2] if fr.image is not None else fr.size
        entry = {"index": fr.index, "time": fr.time, "width": int(w), "height": int(h), "persons": [],
                 "timings": {"capture_to_done_s": 0.0}}
        if fr.image is not None:
            name = f"frames/frame_{fr.index:06d}.jpg"
            cv2.imwrite(str(root / name), cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            entry["frame_file"] = name
        for p in fr.persons:
            name = f"meshes/frame_{fr.index:06d}_p{p.person}.{fmt}"
            mesh = mesh_to_frame(p.mesh, mesh_frame, p.rect)
            write_mesh(mesh, root / name)
            person = {"person": p.person, "file": name, "rect": [float(v) for v in p.rect],
                      "vertices": mesh.num_vertices, "faces": mesh.num_faces}
            if p.mask is not None:
                mname = f"masks/frame_{fr.index:06d}_p{p.person}.png"
                cv2.imwrite(str(root / mname), p.mask.astype(np.uint8) * 255)
                person["mask_file"] = mname
            if p.body is not None:
                person["body"] = p.body
            entry["persons"].append(person)
        entries.append(entry)
    manifest = {"version": 1, "source": source, "source_kind": "synthetic", "model": model, "resolution": 96,
                "mesh_format": fmt, "mesh_frame": mesh_frame, "frames": entries,
                "summary": {"frames_in": len(frames), "frames_done": len(frames)}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root
