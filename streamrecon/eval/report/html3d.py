"""The 3D parts of the report page: pictures of the unseen views (front, side, back; a turntable
strip) with the fitted body seen through the mesh (``views3d``), the 3D charts and summary rows,
and what a run without fitted bodies could not show."""
from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Optional

import numpy as np

from ...mesh.io import atomic_write_bytes
from . import views3d
from .cells import fmt as _f, stat_row
from .config import EvaluateConfig
from .run_dir import FrameEntry, RunManifest
from .svg import line_chart

TURNTABLE_ANGLES = tuple(range(0, 360, 45))
"""angles (degrees) of the turntable strip"""
TURNTABLE_SIZE = 150
"""pixels across each picture of a turntable strip"""

LEGEND = ("<div class='legend meta'>3D views (the mesh turned about the vertical axis, orthographic): "
          "<span style='background:#c8c8c8'></span>mesh"
          "<span style='background:#a9bde9'></span>fitted body inside the mesh"
          "<span style='background:#e62828'></span>fitted body outside the mesh"
          " (the body is drawn where it lies inside the frame)</div>")


def _jpeg(out_dir: Path, name: str, rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("JPEG encoding failed")
    atomic_write_bytes(out_dir / name, buf.tobytes())
    return name


def _scene(manifest: RunManifest, fr: FrameEntry, p, prow: dict):
    """(mesh vertices [V, 3] image frame, faces, body vertices (depth shift applied) or None, body
    faces or None), or None when the person has no readable mesh."""
    from ...mesh.coords import mesh_to_frame
    from ..metrics.depth import body_from_params
    from .evaluation import _load_person

    mesh, _, status = _load_person(manifest, fr, p)
    if mesh is None:
        return None
    m = mesh_to_frame(mesh, "image", p.rect)
    body_v = body_f = None
    if prow.get("depth_status") == "ok" and p.body is not None:
        body = body_from_params(p.body)
        body_v = body.vertices.copy()
        body_v[:, 2] += float(prow.get("depth_shift_px") or 0.0)
        body_f = body.faces
    return m.vertices.astype(np.float64), m.faces, body_v, body_f


def _input_crop(manifest: RunManifest, fr: FrameEntry, window: tuple, size: int) -> np.ndarray:
    """[S, S, 3] the input under ``window`` (x0, y0, size: the pictures' square, so the input and
    the view from the camera line up; grey where it was not saved, background beyond the frame)."""
    from ..render import CropCamera
    from .evaluation import _load_frame

    image = _load_frame(manifest, fr)
    if image is None:
        return np.full((size, size, 3), 96, np.uint8)
    cam = CropCamera((window[0], window[1], window[2], window[2]), (fr.height, fr.width))
    out = cam.crop_image(image, size)
    out[~cam.crop_image(np.ones((fr.height, fr.width), bool), size)] = views3d.BACKGROUND  # beyond the frame
    return out


def views_block(manifest: RunManifest, fr: FrameEntry, p, prow: dict, out_dir: Path, size: int) -> str:
    """HTML of one person-frame from the input camera, the side and the back, the body through
    the mesh, beside the input; writes its pictures."""
    scene = _scene(manifest, fr, p, prow)
    if scene is None:
        return ""
    clip = (0, 0, fr.width, fr.height)
    pics = views3d.views(*scene, p.rect, size, [a for _, a in views3d.VIEWS], clip=clip)
    window = views3d.layout(*scene, p.rect, clip)[1]
    stem = f"images/frame_{fr.index:06d}_p{p.person}_3d"
    names = [_jpeg(out_dir, f"{stem}_input.jpg", _input_crop(manifest, fr, window, size))]
    names += [_jpeg(out_dir, f"{stem}_{label}.jpg", pic) for (label, _), pic in zip(views3d.VIEWS, pics)]
    labels = ["input"] + [label for label, _ in views3d.VIEWS]
    return ("<div class='row'>" + "".join(f'<img src="{escape(n)}" alt="{escape(k)}" title="{escape(k)}">'
                                          for n, k in zip(names, labels)) + "</div>")


def turntable_block(manifest: RunManifest, fr: FrameEntry, row: dict, out_dir: Path) -> str:
    """HTML of one frame's turntable strips (the input crop, then ``TURNTABLE_ANGLES``), a strip
    per person with a mesh; writes them."""
    parts = []
    for p in fr.persons:
        prow = next((q for q in row["persons"] if q["person"] == p.person), {})
        scene = _scene(manifest, fr, p, prow)
        if scene is None:
            continue
        clip = (0, 0, fr.width, fr.height)
        pics = views3d.views(*scene, p.rect, TURNTABLE_SIZE, TURNTABLE_ANGLES, clip=clip)
        window = views3d.layout(*scene, p.rect, clip)[1]
        strip = views3d.strip([_input_crop(manifest, fr, window, TURNTABLE_SIZE)] + pics)
        name = _jpeg(out_dir, f"images/frame_{fr.index:06d}_p{p.person}_turntable.jpg", strip)
        t = "" if row["time"] is None else f" · t = {row['time']:.2f} s"
        parts.append(f"<div class='frame'><h3>frame {fr.index}{t} · person {p.person}: "
                     f"input, then turned by {', '.join(str(a) for a in TURNTABLE_ANGLES)} degrees</h3>"
                     f'<img class="strip" src="{escape(name)}" alt="turntable"></div>')
    return "".join(parts)


def summary_rows(s: dict) -> str:
    """Rows of the summary table for the 3D figures (empty without them)."""
    d = s.get("depth") or {}
    if not d.get("judged"):
        return ""
    out = []
    for key, label, digits in (("body_covered", "3D: share of the fitted body covered by the mesh", 3),
                               ("body_inside", "3D: share of the fitted body inside the mesh", 3),
                               ("covered_min", "3D: share of the fitted body covered, worst height band", 3),
                               ("body_dist_mean_cm", "3D: body to mesh distance, mean (cm)", 2),
                               ("body_dist_p95_cm", "3D: body to mesh distance, p95 (cm)", 2),
                               ("thickness_min_ratio", "3D: thickness mesh / body, thinnest band", 3),
                               ("thickness_ratio", "3D: thickness mesh / body, all bands", 3)):
        out.append(stat_row(label, d.get(key), digits))
    for pid, t in (d.get("temporal") or {}).items():
        mc, raw, acc = t.get("mesh_change_cm"), t.get("mesh_change_raw_cm"), t.get("body_accel_mm")
        out.append(f"<tr><td>3D temporal, person {escape(pid)}: mesh change with the body's motion removed / raw "
                   f"(cm) / body joint acceleration (mm per frame²), means</td><td colspan=5><b>"
                   f"{_f(mc and mc['mean'], 2)}</b> / {_f(raw and raw['mean'], 2)} / {_f(acc and acc['mean'], 2)}</td></tr>")
    return "".join(out)


def verdict_line(s: dict) -> str:
    """One line on the 3D verdict, or on why there is none."""
    d = s.get("depth") or {}
    if d.get("judged"):
        cls = "bad" if d["failing"] else "ok"
        return (f"<p class='{cls}'>3D: {d['failing']} of {d['judged']} person-frames fail against the fitted body "
                f"(covered &lt; {d['covered_threshold']} or a height band thinner than "
                f"{d['thickness_threshold']} of the body; tolerance {d['tolerance_cm']} cm).</p>")
    return ""


def not_made_html(s: dict) -> str:
    """The figures this run could not make, and why (empty when all were made)."""
    items = s.get("not_made") or []
    if not items:
        return ""
    return "".join(f"<p class='note'>Not made: {escape(', '.join(i['figures']))}. Why: {escape(i['reason'])}.</p>"
                   for i in items)


def charts(x: list, col, cfg: EvaluateConfig, label: str) -> str:
    """The 3D charts of one person (``col(key)``: the key's values per frame; ``thickness.*`` reads
    into the profile)."""
    out = []
    covered = col("body_covered")
    if any(v is not None for v in covered):
        failing = col("depth_failing")
        bad = [i for i, v in enumerate(failing) if v]
        out.append(line_chart(x, [("covered", covered), ("inside", col("body_inside")), ("worst band", col("covered_min"))],
                              f"3D: body covered by the mesh{label}", y_range=(0.0, 1.0),
                              threshold=cfg.covered_threshold, highlight=bad))
        thin, overall = col("thickness.min_ratio"), col("thickness.overall")
        top = max([1.5] + [v for v in thin + overall if v is not None])
        out.append(line_chart(x, [("thinnest band", thin), ("all bands", overall)],
                              f"3D: thickness, mesh / body{label}", y_range=(0.0, top * 1.05),
                              threshold=cfg.thickness_threshold,
                              highlight=[i for i, v in enumerate(thin) if v is not None and v < cfg.thickness_threshold]))
        out.append(line_chart(x, [("mean", col("body_dist_mean_cm")), ("p95", col("body_dist_p95_cm"))],
                              f"3D: body to mesh distance, cm{label}"))
    change = col("mesh_change_cm")
    if any(v is not None for v in change):
        raw = col("mesh_change_raw_cm")
        top = max([0.5] + [v for v in change + raw if v is not None])
        out.append(line_chart(x, [("motion removed", change), ("raw", raw)],
                              f"3D: mesh change (Chamfer), cm{label}", y_range=(0.0, top * 1.05)))
    accel = col("body_accel_mm")
    if any(v is not None for v in accel):
        top = max([1.0] + [v for v in accel if v is not None])
        out.append(line_chart(x, [("joint acceleration", accel)],
                              f"3D: body joint acceleration, mm/frame²{label}", y_range=(0.0, top * 1.05)))
    return "".join(out)


def person_line(prow: dict) -> str:
    """One line of a failing person-frame's 3D figures: covered share and thickness per band."""
    th = prow.get("thickness") or {}
    bands = " ".join("–" if r is None else f"{r:.2f}" for r in th.get("ratio") or [])
    cov = " ".join("–" if c is None else f"{c:.2f}" for c in prow.get("covered_bands") or [])
    return (f"<div class='meta'>person {prow['person']} in 3D (input | from the camera | side | back): body covered "
            f"{_f(prow.get('body_covered'))}, per height band {cov}; thickness mesh / body per band {bands}; "
            f"body to mesh {_f(prow.get('body_dist_mean_cm'), 1)} cm mean, {_f(prow.get('body_dist_p95_cm'), 1)} cm p95</div>")


def person_row(row: dict, pid: int) -> Optional[dict]:
    return next((p for p in row["persons"] if p["person"] == pid), None)
