"""Open3D viewer of a mesh stream (``streamrecon view --connect ADDR``).

Everything here runs on the **main thread**: Open3D windows may only be touched from it, so
instead of a receiver thread posting to the window, the main loop alternates ``poll_events`` /
``update_renderer`` (draw, input) with a non-blocking ``recv_latest`` on the subscriber (which keeps
only the newest mesh, so latency stays bounded however slow drawing is). One window and one camera
live for the whole session; each person's ``TriangleMesh`` is updated in place (vertex and
triangle buffers swapped, ``update_geometry``). A status line drawn in the scene (a text mesh above
the people) shows the receive rate, the capture-to-display latency, the frame and lost meshes.

Why the classic OpenGL ``Visualizer`` and not the newer Filament GUI (which has real 2D labels):
on Mesa's software Vulkan driver (Xvfb, CI, machines without a GPU) the Filament window stalled
the main thread intermittently for tens of seconds; the OpenGL path runs anywhere GLX does.

Display frame: x right, y up, the camera on +z looking at -z. Image-frame meshes (y down, z away
from the camera) map by (x, -y, -z); crop-frame meshes (y up, z away) by (x, y, -z) with their
winding reversed so normals stay outward.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from dataclasses import dataclass
from typing import Deque, Dict, Optional

import numpy as np

from .errors import BackendUnavailableError
from .types import Mesh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewerConfig:
    """Viewer options (mirrored by ``streamrecon view`` flags)."""

    address: str = "tcp://127.0.0.1:5555"
    """Publisher to connect to."""
    width: int = 960
    """Window width in pixels."""
    height: int = 720
    """Window height in pixels."""
    screenshot: Optional[str] = None
    """Save a PNG of the window here when the viewer exits."""
    exit_after: Optional[int] = None
    """Close after this many meshes were shown (None = keep running)."""
    timeout: Optional[float] = None
    """Close after this many seconds (None = until the window is closed)."""
    exit_on_end: bool = True
    """Close when the publisher sends end-of-stream."""
    curve_keys: Optional[str] = None
    """Key folder to authenticate to a CURVE publisher (``streamrecon keys generate``)."""


class RateMeter:
    """Events per second over the last ``window`` events; pure (times passed in)."""

    def __init__(self, window: int = 30) -> None:
        self.times: Deque[float] = collections.deque(maxlen=window)

    def tick(self, t: float) -> None:
        self.times.append(t)

    @property
    def rate(self) -> float:
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def display_arrays(mesh: Mesh):
    """Vertices [V, 3] float64 and faces [F, 3] int32 in the display frame (module docstring)."""
    v = mesh.vertices.astype(np.float64)
    if mesh.frame == "image":
        return v * np.array([1.0, -1.0, -1.0]), mesh.faces
    return v * np.array([1.0, 1.0, -1.0]), mesh.faces[:, ::-1].copy()


def status_text(fps: float, latency_s: float, frame: int, missed: int, skipped: int) -> str:
    """The status line: receive rate, capture-to-display latency (median of the last 30), frame,
    and meshes lost on the way (``missed``) or passed over to stay current (``skipped``)."""
    return f"{fps:.1f} fps | latency {latency_s * 1e3:.0f} ms | frame {frame} | lost {missed}+{skipped}"


def check_can_view() -> None:
    """Raise ``BackendUnavailableError`` (one line, with the fix) when no window can be opened:
    no display, or no Open3D. Cheap: imports nothing."""
    import importlib.util

    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise BackendUnavailableError("the viewer needs a display: set DISPLAY, or run it under `xvfb-run -a`")
    if importlib.util.find_spec("open3d") is None:
        raise BackendUnavailableError("the viewer needs Open3D; install it with `pip install 'streamrecon[view]'`")


def _import_open3d():
    try:
        import open3d as o3d
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the viewer needs Open3D ({exc}); install it with `pip install 'streamrecon[view]'`"
        ) from None
    return o3d


class MeshViewer:
    """The window and its geometry. Main thread only (construct, ``run`` and close there)."""

    TITLE = "streamrecon view"
    COLORS = [(0.85, 0.55, 0.45), (0.45, 0.65, 0.85), (0.55, 0.8, 0.5), (0.85, 0.75, 0.4)]
    STATUS_EVERY_S = 0.5

    def __init__(self, cfg: ViewerConfig) -> None:
        check_can_view()
        self.cfg = cfg
        self.o3d = _import_open3d()
        from .transport.subscriber import MeshSubscriber

        self.vis = self.o3d.visualization.Visualizer()
        if not self.vis.create_window(self.TITLE, cfg.width, cfg.height):
            raise BackendUnavailableError("Open3D could not open a window (no OpenGL/GLX on this display?)")
        opt = self.vis.get_render_option()
        opt.background_color = np.array([0.12, 0.12, 0.14])
        opt.mesh_show_back_face = True
        self.sub = MeshSubscriber(cfg.address, curve_keys=cfg.curve_keys)
        self.shown = 0
        self.meter = RateMeter()
        self.latencies: Deque[float] = collections.deque(maxlen=30)
        self._people: Dict[int, object] = {}
        self._last_frame: Dict[int, int] = {}
        self._status = None
        self._status_anchor = None
        self._status_time = 0.0
        self.status = f"waiting for meshes on {cfg.address}"

    def _set_buffers(self, tm, v: np.ndarray, f: np.ndarray) -> None:
        o3d = self.o3d
        tm.vertices = o3d.utility.Vector3dVector(v)
        tm.triangles = o3d.utility.Vector3iVector(np.ascontiguousarray(f, dtype=np.int32))
        tm.compute_vertex_normals()

    def show(self, mesh: Mesh, person_id: int, frame_index: int) -> None:
        """Update ``person_id``'s mesh in place (added on first sight); people unseen for 2
        frames are removed. The first mesh frames the camera."""
        v, f = display_arrays(mesh)
        tm = self._people.get(person_id)
        first_ever = not self._people and self._status is None
        if tm is None:
            tm = self.o3d.geometry.TriangleMesh()
            self._set_buffers(tm, v, f)
            tm.paint_uniform_color(self.COLORS[person_id % len(self.COLORS)])
            self.vis.add_geometry(tm, reset_bounding_box=first_ever)
            self._people[person_id] = tm
        else:
            self._set_buffers(tm, v, f)
            tm.paint_uniform_color(self.COLORS[person_id % len(self.COLORS)])
            self.vis.update_geometry(tm)
        self._last_frame[person_id] = frame_index
        for pid, last in list(self._last_frame.items()):
            if last < frame_index - 2:
                self.vis.remove_geometry(self._people.pop(pid), reset_bounding_box=False)
                del self._last_frame[pid]
        if self._status_anchor is None and len(v):
            lo, hi = v.min(axis=0), v.max(axis=0)
            # the status line goes just above the first mesh, as wide as it at most
            self._status_anchor = (np.array([lo[0] - 0.25 * (hi[0] - lo[0]), hi[1] + 0.04 * (hi[1] - lo[1]), (lo[2] + hi[2]) / 2]), hi - lo, (lo + hi) / 2)

    def _draw_status(self, text: str) -> None:
        """The status line as a flat text mesh in the scene, updated in place."""
        if self._status_anchor is None:
            return
        o3d = self.o3d
        glyphs = o3d.t.geometry.TriangleMesh.create_text(text, depth=0.0).to_legacy()
        gv = np.asarray(glyphs.vertices)
        if not len(gv):
            return
        anchor, size, center = self._status_anchor
        span = gv.max(axis=0) - gv.min(axis=0)
        scale = min(size[1] / 9.0 / max(span[1], 1e-6), 1.5 * size[0] / max(span[0], 1e-6))
        v = (gv - gv.min(axis=0)) * scale + anchor
        first = self._status is None
        if first:
            self._status = o3d.geometry.TriangleMesh()
        self._set_buffers(self._status, v, np.asarray(glyphs.triangles))
        self._status.paint_uniform_color([0.95, 0.95, 0.95])
        if first:
            self.vis.add_geometry(self._status, reset_bounding_box=False)
            # frame the first mesh and the status line above it
            vc = self.vis.get_view_control()
            vc.set_lookat(center + np.array([0.0, 0.1 * size[1], 0.0]))
            vc.set_front([0.0, 0.0, 1.0])
            vc.set_up([0.0, 1.0, 0.0])
            vc.set_zoom(0.9)
        else:
            self.vis.update_geometry(self._status)

    def _tick(self) -> bool:
        alive = self.vis.poll_events()
        self.vis.update_renderer()
        return alive

    def run(self) -> int:
        """The main loop; returns the number of meshes shown."""
        cfg = self.cfg
        t_end = None if cfg.timeout is None else time.monotonic() + cfg.timeout
        try:
            while self._tick():
                msg = self.sub.recv_latest(timeout=0.01)
                if msg is not None and msg.header.is_end and cfg.exit_on_end:
                    break
                if msg is not None and msg.mesh is not None:
                    h = msg.header
                    self.show(msg.mesh, h.person_id, h.frame_index)
                    self.shown += 1
                    now = time.time()
                    self.meter.tick(now)
                    self.latencies.append(now - h.capture_time)
                    self.status = status_text(self.meter.rate, float(np.median(self.latencies)), h.frame_index,
                                              self.sub.missed, self.sub.skipped)
                    if time.monotonic() - self._status_time > self.STATUS_EVERY_S or self._status is None:
                        self._draw_status(self.status)
                        self._status_time = time.monotonic()
                if cfg.exit_after is not None and self.shown >= cfg.exit_after:
                    self._draw_status(self.status)
                    break
                if t_end is not None and time.monotonic() > t_end:
                    break
            if cfg.screenshot:
                self.save_screenshot(cfg.screenshot)
        finally:
            self.sub.close()
        return self.shown

    def save_screenshot(self, path: str) -> None:
        """The window as PNG (rendered once more first, so it shows the newest mesh)."""
        self._tick()
        self.vis.capture_screen_image(path, do_render=True)
        log.info("screenshot saved to %s", path)

    def close(self) -> None:
        self.sub.close()
        self.vis.destroy_window()
