"""One-Euro filter (Casiraghi, Roussel, Vogel, CHI 2012) for crop rectangles: strong smoothing
when a person stands still, little lag when they move. Vectorised over the components; a scalar
textbook twin (``OneEuroScalar``) is kept for the test that compares them."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

DEFAULT_DT = 1.0 / 30.0


def _alpha(cutoff, dt):
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters a vector signal x(t). ``__call__(x, t)`` -> filtered x (same shape). Timestamps in
    seconds; a non-increasing timestamp is treated as ``DEFAULT_DT`` later. ``min_cutoff`` and
    ``beta`` may be per-component arrays. Owned by one thread."""

    def __init__(self, min_cutoff: float = 0.3, beta: float = 0.05, d_cutoff: float = 1.0):
        # scalars, or arrays broadcasting against x (one cutoff per component)
        self.min_cutoff, self.beta = np.asarray(min_cutoff, np.float64), np.asarray(beta, np.float64)
        self.d_cutoff = float(d_cutoff)
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None
        self._t: Optional[float] = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            dt = DEFAULT_DT
        self._t = self._t + dt
        a_d = _alpha(self.d_cutoff, dt)
        dx = a_d * (x - self._x) / dt + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(dx)
        a = _alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        self._dx = dx
        return self._x.copy()


class OneEuroScalar:
    """Plain one-value One-Euro filter, written straight from the paper (slow twin)."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x_prev = None
        self.dx_prev = 0.0
        self.t_prev = None

    def __call__(self, x: float, t: float) -> float:
        if self.x_prev is None:
            self.x_prev, self.t_prev = x, t
            return x
        dt = t - self.t_prev
        if not dt > 0:
            dt = DEFAULT_DT
        self.t_prev += dt

        def alpha(cutoff):
            r = 2 * math.pi * cutoff * dt
            return r / (r + 1)

        dx = (x - self.x_prev) / dt
        dx_hat = alpha(self.d_cutoff) * dx + (1 - alpha(self.d_cutoff)) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * abs(dx_hat)
        x_hat = alpha(cutoff) * x + (1 - alpha(cutoff)) * self.x_prev
        self.x_prev, self.dx_prev = x_hat, dx_hat
        return x_hat


def rect_to_state(rect) -> np.ndarray:
    """(x, y, w, h) square rect -> (cx, cy, half side) — the quantities smoothed."""
    x, y, w, h = rect
    return np.array([x + w / 2.0, y + h / 2.0, max(w, h) / 2.0])


def state_to_rect(s) -> tuple:
    cx, cy, r = (float(v) for v in s)
    r = max(r, 0.5)
    return (cx - r, cy - r, 2 * r, 2 * r)
