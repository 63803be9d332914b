"""Small inline-SVG line charts for the HTML report (no plotting dependency): metrics over time,
NaN values leave gaps, an optional horizontal threshold line and highlighted points."""
from __future__ import annotations

import math
from html import escape
from typing import Optional, Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def line_chart(x: Sequence[float], series: Sequence[tuple], title: str, y_range: Optional[tuple] = None,
               threshold: Optional[float] = None, highlight: Sequence[int] = (), x_label: str = "frame",
               width: int = 720, height: int = 220) -> str:
    """An SVG chart. ``series``: (name, values) pairs, values aligned with ``x`` (None/NaN = gap);
    ``y_range``: (lo, hi) or None to fit the data; ``threshold``: a dashed red horizontal line;
    ``highlight``: positions in ``x`` drawn as red dots on the first series."""
    left, right, top, bottom = 52, 12, 26, 34
    pw, ph = width - left - right, height - top - bottom
    xs = [float(v) for v in x]
    vals = [[float("nan") if v is None else float(v) for v in s[1]] for s in series]
    finite = [v for s in vals for v in s if math.isfinite(v)]
    if y_range is None:
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if threshold is not None:
            lo, hi = min(lo, threshold), max(hi, threshold)
        pad = (hi - lo) * 0.08 or 1.0
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = y_range
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1

    def sx(v):
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v):
        return top + (1 - (min(max(v, lo), hi) - lo) / (hi - lo)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="16" font-size="13" font-family="sans-serif" font-weight="bold">{escape(title)}</text>']
    for t in _nice_ticks(lo, hi):
        y = sy(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" font-family="sans-serif" '
                   f'text-anchor="end">{_fmt(t)}</text>')
    for t in _nice_ticks(x0, x1, 8):
        xv = sx(t)
        out.append(f'<line x1="{xv:.1f}" x2="{xv:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#888"/>')
        out.append(f'<text x="{xv:.1f}" y="{top + ph + 16}" font-size="11" font-family="sans-serif" '
                   f'text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 4}" font-size="11" font-family="sans-serif" '
               f'text-anchor="middle" fill="#555">{escape(x_label)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    if threshold is not None and lo <= threshold <= hi:
        y = sy(threshold)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d62728" '
                   f'stroke-dasharray="5,4"/>')
    for k, ((name, _), v) in enumerate(zip(series, vals)):
        color = PALETTE[k % len(PALETTE)]
        runs, cur = [], []
        for xv, yv in zip(xs, v):
            if math.isfinite(yv):
                cur.append(f"{sx(xv):.1f},{sy(yv):.1f}")
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            else:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{" ".join(run)}"/>')
        # Legend in the title row, right-aligned, so it never hides the data.
        lx = width - right - 120 * (len(series) - k)
        out.append(f'<line x1="{lx}" x2="{lx + 16}" y1="12" y2="12" stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{lx + 20}" y="16" font-size="11" font-family="sans-serif">{escape(name)}</text>')
    if series:
        first = vals[0]
        for i in highlight:
            if 0 <= i < len(xs) and math.isfinite(first[i]):
                out.append(f'<circle cx="{sx(xs[i]):.1f}" cy="{sy(first[i]):.1f}" r="3.2" fill="#d62728"/>')
    out.append("</svg>")
    return "\n".join(out)
