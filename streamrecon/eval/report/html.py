"""The evaluation report: one self-contained HTML page (inline SVG charts, pictures as JPEG files
next to it) a person reads at a glance: summary, failing frames first, metrics over time, then
input | overlay | render for sampled frames."""
from __future__ import annotations

import logging
from html import escape
from pathlib import Path

import numpy as np

from ...mesh.io import atomic_write_bytes
from .config import EvaluateConfig
from . import html3d
from .cells import fmt as _f, stat_row
from .evaluation import frame_panels
from .run_dir import RunManifest
from .svg import line_chart

log = logging.getLogger(__name__)

PANELS = ("input", "overlay", "render")

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; }
.meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.bad { color: #c0392b; font-weight: 600; } .ok { color: #1e8449; font-weight: 600; }
.note { color: #8a5a00; font-size: 13px; }
.frame { margin: 14px 0 22px; } .frame h3 { font-size: 14px; margin: 4px 0; }
.row { display: flex; gap: 6px; align-items: flex-start; }
.row img { flex: 1 1 0; min-width: 0; max-width: %dpx; border: 1px solid #ccc; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }
.charts svg { margin: 6px 8px 6px 0; border: 1px solid #eee; }
img.strip { max-width: 100%%; border: 1px solid #ccc; }
"""


def sample_frames(n_frames: int, samples: int) -> list:
    """Positions of ``samples`` frames spread evenly over ``n_frames`` (first and last included)."""
    if n_frames == 0 or samples == 0:
        return []
    if samples >= n_frames:
        return list(range(n_frames))
    return sorted(set(np.linspace(0, n_frames - 1, samples).round().astype(int).tolist()))


def person_box(fr, margin: float = 0.05) -> tuple:
    """(row0, row1, col0, col1): the union of the frame's person rects grown by ``margin`` of its
    size and clipped to the frame, so small people fill the report's pictures; the whole frame
    when there is no person."""
    if not fr.persons:
        return 0, fr.height, 0, fr.width
    x0 = min(p.rect[0] for p in fr.persons)
    y0 = min(p.rect[1] for p in fr.persons)
    x1 = max(p.rect[0] + p.rect[2] for p in fr.persons)
    y1 = max(p.rect[1] + p.rect[3] for p in fr.persons)
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    c0, c1 = max(0, int(x0 - mx)), min(fr.width, int(np.ceil(x1 + mx)))
    r0, r1 = max(0, int(y0 - my)), min(fr.height, int(np.ceil(y1 + my)))
    if c1 - c0 < 8 or r1 - r0 < 8:  # a rect (nearly) outside the frame: show the frame
        return 0, fr.height, 0, fr.width
    return r0, r1, c0, c1


def _write_panels(manifest: RunManifest, fr, out_dir: Path, width: int) -> list:
    import cv2

    pics = frame_panels(manifest, fr)
    r0, r1, c0, c1 = person_box(fr)
    names = []
    for key in PANELS:
        img = pics[key][r0:r1, c0:c1]
        h, w = img.shape[:2]
        if w > width:
            img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
            raise RuntimeError("JPEG encoding failed")
        name = f"images/frame_{fr.index:06d}_{key}.jpg"
        atomic_write_bytes(out_dir / name, buf.tobytes())
        names.append(name)
    return names


def _frame_block(fr_row: dict, names: list, title_extra: str = "", extra: str = "") -> str:
    cells = []
    for p in fr_row["persons"]:
        cls = "bad" if p["status"] != "ok" else ""
        cells.append(f'person {p["person"]}: <span class="{cls}">IoU {_f(p.get("iou"))}</span>, '
                     f'F {_f(p.get("boundary_f"))}, SSIM {_f(p.get("ssim"))}, PSNR {_f(p.get("psnr"), 1)} dB'
                     + ("" if p["status"] == "ok" else f' <span class="bad">({escape(p["status"])})</span>'))
    t = "" if fr_row["time"] is None else f' · t = {fr_row["time"]:.2f} s'
    imgs = "<div class='row'>" + "".join(
        f'<img src="{escape(n)}" alt="{escape(k)}" title="{escape(k)}">' for n, k in zip(names, PANELS)) + "</div>"
    return (f'<div class="frame" id="frame-{fr_row["index"]}"><h3>frame {fr_row["index"]}{t}{title_extra}</h3>'
            f'<div class="meta">{"; ".join(cells) or "no person"}</div>{imgs}{extra}</div>')


def _charts(doc: dict, cfg: EvaluateConfig) -> str:
    rows = doc["frames"]
    pids = sorted({p["person"] for r in rows for p in r["persons"]})
    x = [r["index"] for r in rows]
    out = []
    for pid in pids:
        def col(key):
            vals = []
            for r in rows:
                p = next((p for p in r["persons"] if p["person"] == pid), None)
                if p is not None and "." in key:  # a figure inside a nested dict (the thickness profile)
                    outer, inner = key.split(".", 1)
                    p = p.get(outer)
                    key_here = inner
                else:
                    key_here = key
                vals.append(None if p is None else p.get(key_here))
            return vals

        label = f" (person {pid})" if len(pids) > 1 else ""
        ious = col("iou")
        bad = [i for i, v in enumerate(ious) if v is not None and v < cfg.iou_threshold]
        if _any(ious):
            out.append(line_chart(x, [("IoU", ious), ("boundary F", col("boundary_f")), ("SSIM", col("ssim"))],
                                  f"Silhouette and image agreement{label}", y_range=(0.0, 1.0),
                                  threshold=cfg.iou_threshold, highlight=bad))
        if _any(col("psnr")):
            out.append(line_chart(x, [("PSNR dB", col("psnr"))], f"PSNR of the shaded render{label}"))
        change = col("render_change")
        if _any(change):
            # From 0, so that sub-percent noise is not blown up to fill the chart.
            top = max([0.1] + [v for v in change + col("mask_change") if v is not None])
            out.append(line_chart(x, [("render change", change), ("mask change", col("mask_change"))],
                                  f"Frame-to-frame change, 1 − IoU{label}", y_range=(0.0, top * 1.05)))
        out.append(html3d.charts(x, col, cfg, label))
    return "".join(out)


def _any(values) -> bool:
    return any(v is not None for v in values)


def write_report(doc: dict, manifest: RunManifest, cfg: EvaluateConfig, out_dir) -> Path:
    """Write ``out_dir/report.html`` and its pictures (``out_dir/images/``); returns the page path."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = doc["frames"]
    by_index = {fr.index: fr for fr in manifest.frames}
    row_by_index = {r["index"]: r for r in rows}
    s = doc["summary"]

    failing_frames = []
    for f in doc["failing"]:
        if f["index"] not in failing_frames:
            failing_frames.append(f["index"])
    shown_failing = failing_frames[: cfg.max_failing]
    sampled = [rows[i]["index"] for i in sample_frames(len(rows), cfg.samples)]

    written = {}

    def panels(idx):
        if idx not in written:
            written[idx] = _write_panels(manifest, by_index[idx], out_dir, cfg.thumb_width)
        return written[idx]

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>streamrecon evaluation · {escape(str(doc['run'].get('source') or manifest.root.name))}</title>"
             f"<style>{_CSS % cfg.thumb_width}</style></head><body>"]
    run = doc["run"]
    parts.append(f"<h1>Evaluation: the input view and the unseen ones</h1><div class='meta'>run <code>{escape(doc['run_dir'])}</code> · "
                 f"source {escape(str(run.get('source')))} · model {escape(str(run.get('model')))} · "
                 f"resolution {escape(str(run.get('resolution')))} · meshes in the {escape(str(run.get('mesh_frame')))} frame"
                 f" · evaluated in {s['eval_s']:.1f} s</div>")
    verdict = "bad" if s["failing"] else "ok"
    parts.append(f"<p class='{verdict}'>{s['failing']} failing of {s['person_frames']} person-frames "
                 f"(IoU &lt; {cfg.iou_threshold}, no usable mesh, or failing in 3D) in {s['frames']} frames.</p>")
    parts.append(html3d.verdict_line(s))
    parts.append(html3d.not_made_html(s))
    if s["iou"] is None:
        parts.append("<p class='bad'>This run has no person masks: silhouette IoU, boundary F, SSIM and PSNR "
                     "cannot be measured; only the renders and their temporal change are shown.</p>")
    parts.append("<table><tr><th>metric</th><th>mean</th><th>median</th><th>p10</th><th>min</th><th>max</th></tr>")
    for key, label, d in (("iou", "silhouette IoU", 3), ("boundary_f", "boundary F-score", 3),
                          ("ssim", "SSIM (shaded vs masked gray)", 3), ("psnr", "PSNR dB", 2)):
        parts.append(stat_row(label, s.get(key), d))
    for pid, t in s["temporal"].items():
        parts.append(f"<tr><td>temporal, person {escape(pid)}: render change / mask change / jitter (median)</td>"
                     f"<td colspan=5>{_f(t['render_change'], 4)} / {_f(t['mask_change'], 4)} / "
                     f"<b>{_f(t['jitter'], 4)}</b> ({_f(t['jitter_median'], 4)}) over {t['steps']} steps</td></tr>")
    parts.append(html3d.summary_rows(s))
    parts.append("</table>")

    parts.append(f"<h2>Failing frames ({len(failing_frames)})</h2>")
    if failing_frames:
        has3d = bool((s.get("depth") or {}).get("judged"))
        parts.append("<table><tr><th>frame</th><th>time s</th><th>person</th><th>IoU</th>"
                     + ("<th>body covered</th><th>thinnest band</th>" if has3d else "") + "<th>reason</th></tr>")
        for f in doc["failing"]:
            parts.append(f"<tr><td><a href='#frame-{f['index']}'>{f['index']}</a></td><td>{_f(f['time'], 2)}</td>"
                         f"<td>{f['person']}</td><td class='{'bad' if 'image' in f.get('kinds', ('image',)) else ''}'>"
                         f"{_f(f['iou'])}</td>"
                         + (f"<td>{_f(f.get('body_covered'))}</td><td>{_f(f.get('thickness_min_ratio'))}</td>" if has3d else "")
                         + f"<td>{escape(f['reason'])}</td></tr>")
        parts.append("</table>")
        if len(failing_frames) > len(shown_failing):
            parts.append(f"<p class='meta'>pictures of the worst {len(shown_failing)} shown; all are in metrics.json</p>")
        if any("3d" in f.get("kinds", ()) for f in doc["failing"] if f["index"] in shown_failing):
            parts.append(html3d.LEGEND)
        for idx in shown_failing:
            fr, extra = by_index[idx], ""
            for f in doc["failing"]:
                if f["index"] == idx and "3d" in f.get("kinds", ()):
                    p = next(q for q in fr.persons if q.person == f["person"])
                    extra += (html3d.person_line(html3d.person_row(row_by_index[idx], f["person"]))
                              + html3d.views_block(manifest, fr, p, html3d.person_row(row_by_index[idx], f["person"]),
                                                   out_dir, cfg.thumb_width))
            parts.append(_frame_block(row_by_index[idx], panels(idx), " · <span class='bad'>failing</span>", extra))
    else:
        parts.append("<p class='ok'>none</p>")

    parts.append("<h2>Metrics over time</h2><div class='charts'>" + _charts(doc, cfg) + "</div>")
    turn = [rows[i]["index"] for i in sample_frames(len(rows), cfg.turntable)]
    if turn:
        parts.append("<h2>Turntable</h2>" + (html3d.LEGEND if (s.get("depth") or {}).get("judged") else
                                              "<div class='legend meta'>the mesh turned about the vertical axis "
                                              "(no fitted body in this run)</div>"))
        for idx in turn:
            parts.append(html3d.turntable_block(manifest, by_index[idx], row_by_index[idx], out_dir))
    parts.append("<h2>Sampled frames</h2><div class='legend meta'>input | overlay | render"
                 "<span style='background:#ff8c00'></span>render silhouette"
                 "<span style='background:#00dc5a'></span>person mask outline"
                 "<span style='background:#ff3c1e'></span>render outline</div>")
    for idx in sampled:
        parts.append(_frame_block(row_by_index[idx], panels(idx)))
    parts.append("</body></html>")
    page = out_dir / "report.html"
    atomic_write_bytes(page, "\n".join(parts).encode("utf-8"))
    return page
