"""``streamrecon reconstruct IMAGE --out mesh.obj``: one image, a mesh per person (the classic
PIFuHD use). The people are found as ``streamrecon run`` finds them (``api.find_people``: the same
crops and masks); ``--rect`` names the crop instead. Heavy imports happen inside ``run``."""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, fields
from typing import Optional

from ..models.load import NAMED
from .help import field_docs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconstructArgs:
    """Options of ``streamrecon reconstruct`` (one CLI flag per field)."""

    image: str
    """input image (PNG/JPEG/...; RGBA is composited on grey, grey and 16-bit are accepted)."""
    out: str
    """output mesh file, .obj or .ply; with several people, one file per person: NAME_p<ID>.obj."""
    rect: Optional[str] = None
    """crop: a rect file with a line 'x y w h' (the reference's format) or 'x,y,w,h'; default: find the people in the image (as `streamrecon run` does: their crops and masks)."""
    person: Optional[int] = None
    """only this person: the id of a found person (0, 1, ... from the left), or the line of a multi-person --rect file (default: every person found; the first line of a rect file)."""
    checkpoint: Optional[str] = None
    """model checkpoint (e.g. the official pifuhd.pt); default: the embedded model."""
    model: str = "default"
    """without --checkpoint: default (the embedded model shipped as default.pt, which reads the person mask alone: the body model does not yet beat it on held-out bodies), mask-only (the embedded model that reads the person mask alone) or body (the embedded model that reads the mask and the person's fitted body)."""
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
    body: bool = True
    """fit the body to each person found (BlazePose's landmarks; the body-reading model reads it); --no-body skips it."""
    save_body: bool = False
    """also write each person's fitted body as a mesh beside theirs: NAME_body.obj (same frame)."""
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
    p.add_argument("--person", type=int, default=d["person"], metavar="N", help=docs.get("person", ""))
    p.add_argument("--checkpoint", default=d["checkpoint"], metavar="CKPT", help=docs.get("checkpoint", ""))
    p.add_argument("--model", choices=NAMED, default=d["model"], help=docs.get("model", ""))
    p.add_argument("--resolution", type=int, default=d["resolution"], metavar="N", help=docs.get("resolution", ""))
    p.add_argument("--frame", choices=("image", "crop"), default=d["frame"], help=docs.get("frame", ""))
    p.add_argument("--octree", choices=("auto", "reference"), default=d["octree"], help=docs.get("octree", ""))
    p.add_argument("--device", default=d["device"], help=docs.get("device", ""))
    p.add_argument("--mirror-average", action="store_true", help=docs.get("mirror_average", ""))
    p.add_argument("--no-body", dest="body", action="store_false", help=docs.get("body", ""))
    p.add_argument("--save-body", action="store_true", help=docs.get("save_body", ""))
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
    from ..mesh.io import check_output_file

    check_output_file(a.out)  # a read-only disk or a folder in the way is said before the work, not after
    if a.mirror_average and a.octree == "reference":
        raise UserInputError("--mirror-average works with --octree auto only (the reference path is the reference's, step for step)")
    if a.person is not None and a.person < 0:
        raise UserInputError(f"--person {a.person}: expected a person id >= 0")
    t0 = time.perf_counter()
    image = resolve_image(a.image)
    if a.model != "default" and a.checkpoint is not None:
        raise UserInputError(f"--model {a.model} is a model shipped in the package: drop --checkpoint")
    if a.model != "default":
        from ..models.load import load_named

        model = load_named(a.model, device=a.device)
    else:
        model = load_model(a.checkpoint, device=a.device)  # a bad checkpoint is said before the people are looked for
    if a.rect is not None:
        jobs = [(None, _parse_rect(a.rect, a.person or 0, image.shape[0], image.shape[1]), None, None)]
    else:
        from ..api import find_people

        people = find_people(image, a.person, body=a.body)
        if not people:
            raise UserInputError(f"no person found in {a.image}; give the crop with --rect x,y,w,h to reconstruct it anyway")
        jobs = [(p.person_id, p.rect, p.mask, p.body) for p in people]
    if a.save_body and a.rect is not None:
        raise UserInputError("--save-body: a --rect crop has no fitted body (it comes with the people found); drop --rect")
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
    for pid, rect, mask, body in jobs:
        t1 = time.perf_counter()
        mesh = reconstruct_image(image, rect=rect, model=model, resolution=a.resolution, frame=a.frame,
                                 method="reference" if a.octree == "reference" else "auto", mask=mask, body=body)
        path = write_mesh_file(mesh, person_path(a.out, pid) if len(jobs) > 1 else a.out)
        if a.save_body and body is not None:
            from ..body.params import body_mesh
            from ..mesh.coords import mesh_to_frame

            write_mesh_file(mesh_to_frame(body_mesh(body, rect), a.frame, rect), body_path(path))
        t2 = time.perf_counter()
        if mesh.num_faces == 0:
            log.warning("no surface found: the occupancy never crosses 0.5 inside the crop %s", rect)
        who = "" if pid is None else f"person {pid}, "
        print(f"wrote {path}: {who}{mesh.num_vertices} vertices, {mesh.num_faces} faces, frame {mesh.frame}, "
              f"rect {tuple(round(float(v), 1) for v in rect)} (backend {backend}, load {t1 - t0:.1f} s, "
              f"reconstruct {t2 - t1:.1f} s)")
        t0 = t2
    return 0


def body_path(mesh_path) -> str:
    """``NAME.obj`` -> ``NAME_body.obj``: the fitted body written beside a person's mesh."""
    import os

    root, ext = os.path.splitext(str(mesh_path))
    return f"{root}_body{ext}"


def person_path(out: str, person_id: int) -> str:
    """``NAME.obj`` -> ``NAME_p<ID>.obj``: the file of one person when an image holds several."""
    import os

    root, ext = os.path.splitext(out)
    return f"{root}_p{person_id}{ext}"
