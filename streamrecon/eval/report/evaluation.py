"""Evaluate a run directory in image space: render every mesh with the camera of its crop and
compare it with the frame and person mask it came from.

``person_metrics`` is the pure per-person core; ``evaluate_run`` loops over the manifest (one
frame in memory at a time) and returns the ``metrics.json`` document; ``frame_panels`` re-renders
the few frames the report shows (input | overlay | render)."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ...errors import StreamreconError, UserInputError
from ..metrics import (boundary, boundary_fscore, default_tolerance, depth_change, iou, psnr,
                       silhouette_change, ssim, stability_summary, to_gray)
from ...mesh.io import atomic_write_bytes
from ..render import CropCamera, Render, render_mesh
from .body3d import Body3D
from .config import CROP_RENDER_SIZE, EvaluateConfig
from .run_dir import FrameEntry, RunManifest, read_mask, read_mesh, read_rgb, resolve
from .stats import stats as _stats

log = logging.getLogger(__name__)

METRICS_VERSION = 1


def person_metrics(render: Render, mask: Optional[np.ndarray], gray: Optional[np.ndarray],
                   rect: tuple, tolerance: float) -> dict:
    """Metrics of one person in one frame. ``render``: the image-view render ([H, W]); ``mask``:
    [H, W] bool person mask or None; ``gray``: [H, W] float luma (0..255) of the frame or None;
    ``rect``: the crop (x, y, w, h) in frame pixels, where SSIM/PSNR are measured (clipped to the
    frame). SSIM/PSNR compare the shaded render (0..255, black background) with the input luma
    inside the mask (black outside), so both pictures show only the person."""
    sil = render.silhouette
    out = {"render_px": int(sil.sum()), "mask_px": None, "iou": None, "boundary_f": None,
           "boundary_precision": None, "boundary_recall": None, "ssim": None, "psnr": None}
    if mask is None:
        return out
    if mask.shape != sil.shape:
        raise ValueError(f"mask: expected the render's shape {list(sil.shape)}, got {list(mask.shape)}")
    out["mask_px"] = int(mask.sum())
    out["iou"] = iou(sil, mask)
    bf = boundary_fscore(sil, mask, tolerance)
    out.update(boundary_f=bf["f"], boundary_precision=bf["precision"], boundary_recall=bf["recall"])
    if gray is not None:
        h, w = sil.shape
        x, y, rw, rh = rect
        c0, c1 = max(0, int(math.floor(x))), min(w, int(math.ceil(x + rw)))
        r0, r1 = max(0, int(math.floor(y))), min(h, int(math.ceil(y + rh)))
        if r1 - r0 >= 7 and c1 - c0 >= 7:
            target = np.where(mask, gray, 0.0)[r0:r1, c0:c1]
            pred = (render.shaded.astype(np.float64) * 255.0)[r0:r1, c0:c1]
            out["ssim"] = ssim(pred, target, data_range=255.0)
            out["psnr"] = psnr(pred, target, data_range=255.0)
    return out


def _load_frame(manifest: RunManifest, fr: FrameEntry) -> Optional[np.ndarray]:
    path = resolve(manifest, fr.frame_file)
    if path is None or not path.is_file():
        return None
    img = read_rgb(path)
    if img.shape[:2] != (fr.height, fr.width):
        raise UserInputError(f"{path}: image is {img.shape[1]} x {img.shape[0]}, the manifest says "
                             f"{fr.width} x {fr.height}")
    return img


def _load_person(manifest: RunManifest, fr: FrameEntry, p) -> tuple:
    """(Mesh or None, mask or None, status). Status 'ok' or why there is no mesh to render."""
    mask = None
    mpath = resolve(manifest, p.mask_file)
    if mpath is not None and mpath.is_file():
        mask = read_mask(mpath)
        if mask.shape != (fr.height, fr.width):
            raise UserInputError(f"{mpath}: mask is {mask.shape[1]} x {mask.shape[0]}, the manifest says "
                                 f"{fr.width} x {fr.height}")
    path = resolve(manifest, p.file)
    if not path.is_file():
        return None, mask, "missing_mesh"
    try:
        mesh = read_mesh(path, manifest.mesh_frame)
    except (StreamreconError, ValueError, OSError) as exc:
        log.warning("frame %d person %d: %s", fr.index, p.person, exc)
        return None, mask, "unreadable_mesh"
    return mesh, mask, "ok"


def _render_person(manifest: RunManifest, fr: FrameEntry, p) -> tuple:
    """(image-view Render or None, mask or None, status, Mesh or None)."""
    mesh, mask, status = _load_person(manifest, fr, p)
    if mesh is None:
        return None, mask, status, None
    return render_mesh(mesh, CropCamera(p.rect, (fr.height, fr.width)), "image"), mask, status, mesh


def save_render(render: Render, stem: Path) -> None:
    """Write ``stem``.npz (``silhouette`` [H, W] bool, ``depth`` [H, W] float32 NaN = background, in
    the view's frame, ``normals`` [H, W, 3] float16 raster-frame normals) and ``stem``.png (the
    shaded normal map, RGB)."""
    import io

    import cv2

    buf = io.BytesIO()
    np.savez_compressed(buf, silhouette=render.silhouette, depth=render.depth,
                        normals=render.normals.astype(np.float16), view=np.array(render.view))
    atomic_write_bytes(stem.with_suffix(".npz"), buf.getvalue())
    rgb = np.clip(render.normals_rgb().astype(np.float32) * render.shaded[..., None], 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(stem.with_suffix(".png"), png.tobytes())


def evaluate_run(manifest: RunManifest, cfg: EvaluateConfig,
                 on_frame: Optional[Callable[[int, int], None]] = None,
                 renders_dir: Optional[Path] = None) -> dict:
    """The metrics document (``metrics.json``) of a run: per frame and person, the summary, the
    temporal stability per person and the failing list (IoU below the threshold, or no usable
    mesh), worst first. ``on_frame(done, total)`` reports progress. With ``cfg.save_renders`` set,
    every render is also written to ``renders_dir`` (see :func:`save_render`)."""
    if cfg.save_renders != "none":
        if renders_dir is None:
            raise ValueError("renders_dir: required when cfg.save_renders is set")
        renders_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    frames = manifest.frames[: cfg.max_frames] if cfg.max_frames else manifest.frames
    prev: dict = {}  # person id -> (silhouette, mask, depth) of its previous evaluated frame
    rows, temporal = [], {}
    body3d = Body3D(cfg)
    for k, fr in enumerate(frames):
        tol = cfg.boundary_tolerance or default_tolerance(fr.height, fr.width)
        image = _load_frame(manifest, fr)
        gray = to_gray(image) if image is not None else None
        persons = []
        for p in fr.persons:
            render, mask, status, mesh = _render_person(manifest, fr, p)
            row = {"person": p.person, "status": status, "rect": list(p.rect)}
            if render is not None and cfg.save_renders != "none":
                saved = render if cfg.save_renders == "image" else render_mesh(
                    mesh, CropCamera(p.rect, (fr.height, fr.width)), "crop", CROP_RENDER_SIZE)
                save_render(saved, renders_dir / f"frame_{fr.index:06d}_p{p.person}")
            if render is not None:
                row.update(person_metrics(render, mask, gray, p.rect, tol))
                before = prev.get(p.person)
                step = {"render_change": None, "mask_change": None, "depth_change_px": None}
                if before is not None and before[0].shape == render.silhouette.shape:
                    step["render_change"] = silhouette_change(before[0], render.silhouette)
                    if mask is not None and before[1] is not None:
                        step["mask_change"] = silhouette_change(before[1], mask)
                    step["depth_change_px"] = depth_change(before[2], render.depth)
                    temporal.setdefault(p.person, []).append(step)
                row.update(step)
                prev[p.person] = (render.silhouette, mask, render.depth)
            row.update(body3d.person(k, fr, p, mesh, mask))
            persons.append(row)
        rows.append({"index": fr.index, "time": fr.time, "width": fr.width, "height": fr.height,
                     "boundary_tolerance_px": tol, "has_input": image is not None, "persons": persons})
        if on_frame is not None:
            on_frame(k + 1, len(frames))
    depth_summary = body3d.finish(rows)
    failing = []
    for r in rows:
        for p in r["persons"]:
            bad_iou = p.get("iou") is not None and p["iou"] < cfg.iou_threshold
            reasons, kinds = [], []
            if p["status"] != "ok" or bad_iou:
                reason = p["status"] if p["status"] != "ok" else f"IoU {p['iou']:.3f} < {cfg.iou_threshold}"
                if p["status"] == "ok" and p["render_px"] == 0:
                    reason = "empty render: " + reason  # the mesh has no faces in view
                reasons.append(reason)
                kinds.append("image")
            if p.get("depth_failing"):
                reasons.append(p["depth_failing"])
                kinds.append("3d")
            if reasons:
                failing.append({"index": r["index"], "time": r["time"], "person": p["person"],
                                "iou": p.get("iou"), "body_covered": p.get("body_covered"),
                                "thickness_min_ratio": (p.get("thickness") or {}).get("min_ratio"),
                                "kinds": kinds, "reason": "; ".join(reasons)})
    # worst first: no usable mesh, then low IoU, then 3D failures by their covered share
    failing.sort(key=lambda f: (0 if "image" in f["kinds"] else 1,
                                -1.0 if f["iou"] is None else f["iou"] if "image" in f["kinds"] else
                                (f["body_covered"] if f["body_covered"] is not None else 1.0), f["index"]))
    doc = {
        "version": METRICS_VERSION,
        "run_dir": str(manifest.root),
        "run": {k: manifest.raw.get(k) for k in ("source", "source_kind", "model", "resolution", "mesh_frame")},
        "config": asdict(cfg),
        "summary": dict(_summary(rows, temporal, failing, time.perf_counter() - t0), depth=depth_summary,
                        not_made=body3d.not_made()),
        "failing": failing,
        "frames": rows,
    }
    return _json_safe(doc)


def _summary(rows, temporal, failing, wall_s) -> dict:
    persons = [p for r in rows for p in r["persons"]]
    out = {"frames": len(rows), "person_frames": len(persons),
           "rendered": sum(p["status"] == "ok" for p in persons), "failing": len(failing)}
    for key in ("iou", "boundary_f", "ssim", "psnr"):
        out[key] = _stats(p.get(key) for p in persons)
    out["temporal"] = {
        str(pid): dict(stability_summary(
            [np.nan if s["render_change"] is None else s["render_change"] for s in steps],
            [np.nan if s["mask_change"] is None else s["mask_change"] for s in steps]),
            depth_change_px=_stats(s["depth_change_px"] for s in steps))
        for pid, steps in sorted(temporal.items())
    }
    out["eval_s"] = wall_s
    return out


def _json_safe(x):
    """NaN/inf -> None and numpy scalars -> Python, so the document is strict JSON."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# Colours of the overlay panel (RGB).
RENDER_TINT = np.array([255, 140, 0], dtype=np.float64)
MASK_EDGE = np.array([0, 220, 90], dtype=np.uint8)
RENDER_EDGE = np.array([255, 60, 30], dtype=np.uint8)


def frame_panels(manifest: RunManifest, fr: FrameEntry) -> dict:
    """Full-resolution pictures of one frame for the report, [H, W, 3] uint8 RGB each: 'input' (the
    frame, grey when it was not saved), 'overlay' (the input with the render tinted orange, the
    mask outline green and the render outline red) and 'render' (normal map times shading, dark
    background); every person of the frame drawn."""
    image = _load_frame(manifest, fr)
    if image is None:
        image = np.full((fr.height, fr.width, 3), 96, dtype=np.uint8)
    overlay = image.astype(np.float64) * 0.6
    render_rgb = np.full_like(image, 24)
    mask_edges = np.zeros(image.shape[:2], bool)
    render_edges = np.zeros(image.shape[:2], bool)
    for p in fr.persons:
        render, mask, status, _ = _render_person(manifest, fr, p)
        if mask is not None:
            mask_edges |= boundary(mask)
        if render is None:
            continue
        sil = render.silhouette
        overlay[sil] = overlay[sil] * 0.55 + RENDER_TINT * 0.45
        shaded = render.normals_rgb().astype(np.float64) * render.shaded[..., None]
        render_rgb[sil] = np.clip(shaded[sil], 0, 255).astype(np.uint8)
        render_edges |= boundary(sil)
    overlay = np.clip(overlay, 0, 255).astype(np.uint8)
    overlay[_thicken(render_edges)] = RENDER_EDGE
    overlay[_thicken(mask_edges)] = MASK_EDGE
    return {"input": image, "overlay": overlay, "render": render_rgb}


def _thicken(edges: np.ndarray) -> np.ndarray:
    """Edges 2-3 px wide so they survive the report's downscaling."""
    scale = max(1, int(round(max(edges.shape) / 400)))
    if scale == 1:
        return edges
    from ..metrics.silhouette import dilate

    return dilate(edges, scale / 2 + 0.5)
