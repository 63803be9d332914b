"""``streamrecon reconstruct IMAGE --out mesh.obj``: one image, one person, one mesh (the classic
PIFuHD use). Heavy imports happen inside ``run``."""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, fields
from typing import Optional

from .help import field_docs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconstructArgs:
    """Options of ``streamrecon reconstruct`` (one CLI flag per field)."""

    image: str
    """input image (PNG/JPEG/...; RGBA is composited on grey, grey and 16-bit are accepted)."""
    out: str
    """output mesh file, .obj or .ply."""
    rect: Optional[str] = None
    """crop: a rect file with a line 'x y w h' (the reference's format) or 'x,y,w,h'; default: the whole image as a centred square."""
    person: int = 0
    """which line of a multi-person rect file to use (0 = first)."""
    checkpoint: Optional[str] = None
    """model checkpoint (e.g. the official pifuhd.pt); default: the embedded model."""
    resolution: int = 256
    """marching-cubes grid points per axis (the reference uses 512)."""
    frame: str = "image"
    """vertex frame: 'image' (input pixels, y down, z = depth in pixels) or 'crop' (the reference's normalised crop frame)."""
    octree: str = "auto"
    """'auto' (the fast reconstruction when available) or 'reference' (the reference's octree and marching cubes, step for step)."""
    device: str = "cpu"
    """torch device for the network."""
    mirror_average: bool = False
    """average the occupancy with that of the mirrored image (twice the network time; not with --octree reference)."""
    backend: str = "auto"
    """execution backend (streamrecon.backends.BackendConfig.backend): auto, eager, compile, onnxruntime, tensorrt."""
    precision: str = "fp32"
    """arithmetic precision: fp32; fp16/bf16 on CUDA only."""
    engines_dir: Optional[str] = None
    """compiled-engine cache folder (default ./engines, ~/.cache/streamrecon/engines or $STREAMRECON_ENGINES)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reconstruct",
        help="reconstruct the person in one image into a mesh file",
        description="Reconstruct the person in one image (PIFuHD) and write a mesh file.",
    )
    d = {f.name: f.default for f in fields(ReconstructArgs)}
    docs = field_docs(ReconstructArgs)
    p.add_argument("image", help=docs.get("image", ""))
    p.add_argument("--out", "-o", required=True, help=docs.get("out", ""))
    p.add_argument("--rect", default=d["rect"], metavar="RECT", help=docs.get("rect", ""))
    p.add_argument("--person", type=int, default=d["person"], help=docs.get("person", ""))
    p.add_argument("--checkpoint", default=d["checkpoint"], metavar="CKPT", help=docs.get("checkpoint", ""))
    p.add_argument("--resolution", type=int, default=d["resolution"], metavar="N", help=docs.get("resolution", ""))
    p.add_argument("--frame", choices=("image", "crop"), default=d["frame"], help=docs.get("frame", ""))
    p.add_argument("--octree", choices=("auto", "reference"), default=d["octree"], help=docs.get("octree", ""))
    p.add_argument("--device", default=d["device"], help=docs.get("device", ""))
    p.add_argument("--mirror-average", action="store_true", help=docs.get("mirror_average", ""))
    from ..backends.flags import add_backend_flags

    add_backend_flags(p)
    p.set_defaults(func=run)


def _parse_rect(value: Optional[str], person: int, height: int, width: int):
    import os

    from ..api import resolve_rect
    from ..errors import UserInputError
    from ..models.preprocess import parse_rects

    if value is None or os.path.exists(value):
        return resolve_rect(value, height, width, person)
    try:
        return parse_rects(value.replace(",", " "), source="--rect")[0]
    except UserInputError:
        raise UserInputError(f"--rect {value}: no such rect file, and not 'x,y,w,h' (four numbers)") from None


def run(args: argparse.Namespace) -> int:
    from ..api import load_model, reconstruct_image, resolve_image, write_mesh_file

    from ..errors import UserInputError

    a = ReconstructArgs(**{f.name: getattr(args, f.name) for f in fields(ReconstructArgs)})
    if not a.out.lower().endswith((".obj", ".ply")):
        raise UserInputError(f"--out {a.out}: use a .obj or .ply file name")
    if a.mirror_average and a.octree == "reference":
        raise UserInputError("--mirror-average works with --octree auto only (the reference path is the reference's, step for step)")
    t0 = time.perf_counter()
    image = resolve_image(a.image)
    rect = _parse_rect(a.rect, a.person, image.shape[0], image.shape[1])
    model = load_model(a.checkpoint, device=a.device)
    from ..backends.flags import apply_backend, backend_config

    cfg = backend_config(args, device=a.device)
    if a.octree == "reference" and cfg.backend == "auto":
        # The reference path reproduces the original mesh step for step, so it keeps the plain
        # PyTorch twin of every sub-network: the compiled/fused paths agree to ~1e-6, which is
        # enough to move the reference octree's branches (its 0.05 spread test) by a few cells.
        # An explicit --backend still wins.
        backend = "eager (reference twin)"
    else:
        backend = apply_backend(model, cfg, a.checkpoint)
    if a.mirror_average:
        from ..models.mirror_average import MirrorAveraged

        model = MirrorAveraged(model)
    t1 = time.perf_counter()
    mesh = reconstruct_image(image, rect=rect, model=model, resolution=a.resolution, frame=a.frame,
                             method="reference" if a.octree == "reference" else "auto")
    path = write_mesh_file(mesh, a.out)
    t2 = time.perf_counter()
    if mesh.num_faces == 0:
        log.warning("no surface found: the occupancy never crosses 0.5 inside the crop %s", rect)
    print(f"wrote {path}: {mesh.num_vertices} vertices, {mesh.num_faces} faces, frame {mesh.frame}, "
          f"rect {tuple(rect)} (backend {backend}, load {t1 - t0:.1f} s, reconstruct {t2 - t1:.1f} s)")
    return 0
