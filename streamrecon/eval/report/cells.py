"""Table cells of the HTML report, shared by its image-space (``html``) and 3D (``html3d``) parts."""
from __future__ import annotations

from html import escape

STAT_KEYS = ("mean", "median", "p10", "min", "max")
"""the columns of a summary row, in order (``metrics.json``'s summary statistics)"""


def fmt(v, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or a dash for a missing one."""
    return "–" if v is None else f"{v:.{digits}f}"


def stat_row(label: str, st, digits: int) -> str:
    """One summary row: ``label`` then ``st``'s statistics (``STAT_KEYS``), or a dash across when
    the metric was not measured (``st`` None)."""
    if st is None:
        return f"<tr><td>{escape(label)}</td><td colspan=5>–</td></tr>"
    return f"<tr><td>{escape(label)}</td>" + "".join(f"<td>{fmt(st[k], digits)}</td>" for k in STAT_KEYS) + "</tr>"
