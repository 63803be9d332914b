"""Summary statistics of a metric over person-frames (``metrics.json``'s ``summary``)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np


def stats(values) -> Optional[dict]:
    """mean, median, min, max, p10 and n of the finite numbers among ``values`` (None and NaN
    left out); None when there are none."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return None
    return {"mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()),
            "max": float(v.max()), "p10": float(np.percentile(v, 10)), "n": int(v.size)}
