"""The Open3D viewer under Xvfb: meshes published by a test publisher appear in the window with the
rate/latency label, the --screenshot shows the mesh, and the viewer exits on end of stream.
Skips with the reason when Xvfb or Open3D (with a Vulkan/GL driver) is absent."""
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from streamrecon.viewer import RateMeter, display_arrays, status_text

BG = np.array([31, 31, 36])  # the viewer's background colour (0.12, 0.12, 0.14)


def test_rate_meter_and_status_text():
    m = RateMeter(window=5)
    assert m.rate == 0.0
    for i in range(10):
        m.tick(i * 0.05)
    assert m.rate == pytest.approx(20.0)
    text = status_text(m.rate, 0.0123, 7, 1, 2)
    assert "20.0 fps" in text and "latency 12 ms" in text and "frame 7" in text and "lost 1+2" in text


def test_display_frame_keeps_faces_outward():
    """Both source frames map to a right-handed display frame with outward normals (positive
    signed volume for a closed sphere) and image y-down becomes display y-up."""
    from streamrecon.types import Mesh
    from streamrecon.mesh.coords import mesh_to_frame
    from streamrecon.testing.sphere_model import uv_sphere

    v, f = uv_sphere(12, 24)
    crop = Mesh(v * 0.5 + np.array([0.2, 0.3, 0.0], np.float32), f, frame="crop")
    image = mesh_to_frame(crop, "image", (10, 20, 100, 100))
    for mesh in (crop, image):
        dv, df = display_arrays(mesh)
        tri = dv[df]
        vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert vol > 0
    # crop centre y=+0.3 (up) and image centre y = 20 + 0.35 * 100 = 55 px (down) both map to y up
    assert display_arrays(crop)[0][:, 1].mean() > 0
    assert display_arrays(image)[0][:, 1].mean() == pytest.approx(-55, abs=0.5)


def read_xwd(path):
    """The Xvfb framebuffer file (XWD, 32 bpp, LSB first) as an RGB array."""
    b = open(path, "rb").read()
    h = struct.unpack(">25I", b[:100])
    header_size, width, height, bytes_per_line, ncolors = h[0], h[4], h[5], h[12], h[19]
    px = np.frombuffer(b, np.uint8, count=height * bytes_per_line, offset=header_size + 12 * ncolors)
    return px.reshape(height, bytes_per_line // 4, 4)[:, :width, 2::-1]


@pytest.fixture
def xvfb(tmp_path):
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb mesa-vulkan-drivers)")
    if importlib.util.find_spec("open3d") is None:
        pytest.skip("open3d is not installed (pip install 'streamrecon[view]')")
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "800x600x24", "-fbdir", str(fbdir), "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    display = proc.stdout.readline().strip()
    if not display:
        proc.kill()
        pytest.skip("Xvfb did not start")
    yield f":{display}", fbdir / "Xvfb_screen0"
    proc.terminate()
    proc.wait(5)


def mesh_pixels(img):
    """Warm pixels far from the background: the lit mesh (the status text is grey-white)."""
    diff = np.abs(img.astype(int) - BG).sum(axis=-1)
    warm = img[..., 0].astype(int) - img[..., 2].astype(int) > 15  # the skin-coloured material
    return (diff > 60) & warm


def test_viewer_under_xvfb_shows_mesh_and_label(xvfb, tmp_path):
    from streamrecon.types import Mesh
    from streamrecon.transport.publisher import MeshPublisher
    from streamrecon.testing.sphere_model import uv_sphere

    display, fb = xvfb
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    pub = MeshPublisher(addr)
    shot = tmp_path / "view.png"
    env = {**os.environ, "DISPLAY": display}
    viewer = subprocess.Popen([sys.executable, "-m", "streamrecon.cli", "view", "--connect", addr, "--width", "640",
                               "--height", "480", "--screenshot", str(shot), "--timeout", "90"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    v, f = uv_sphere(32, 64)

    def publish():
        i = 0
        while not stop.is_set():
            # an image-frame sphere of radius 100 px around (320, 240), drifting right
            mesh = Mesh(v * 100 + np.array([320 + i % 20, 240, 0], np.float32), f, frame="image")
            pub.send_mesh(mesh, frame_index=i, capture_time=time.time())
            i += 1
            time.sleep(0.05)

    try:
        if not pub.wait_for_subscribers(1, 60):
            out, err = viewer.communicate(timeout=10)
            pytest.skip(f"viewer did not start under Xvfb: {err.strip().splitlines()[-1:]}")
        t = threading.Thread(target=publish)
        t.start()
        window = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            img = read_xwd(fb)
            if mesh_pixels(img).sum() > 2000:
                window = img
                break
            time.sleep(0.25)
        if window is not None:
            time.sleep(1.0)  # a few more frames for the label's fps/latency
            window = read_xwd(fb)
        stop.set()
        t.join()
        pub.end(0)
        out, err = viewer.communicate(timeout=30)
    finally:
        stop.set()
        viewer.kill()
        pub.close()
    assert window is not None, "the mesh never appeared in the Xvfb framebuffer"
    if os.environ.get("STREAMRECON_SAVE_SCREENSHOTS"):  # to refresh docs/viewer_*.png
        import cv2

        cv2.imwrite(os.path.join(os.environ["STREAMRECON_SAVE_SCREENSHOTS"], "viewer_window.png"), window[:, :, ::-1])
    assert viewer.returncode == 0, err
    assert "showed" in err
    # the status line (fps, latency) is drawn as light text just above the mesh
    rows = np.nonzero(mesh_pixels(window).any(axis=1))[0]
    above = window[max(0, rows.min() - 80):rows.min()]
    assert (above.min(axis=-1) > 150).sum() > 40, "no status text above the mesh"
    # the saved screenshot shows the mesh: a large lit blob near the centre
    import cv2

    png = cv2.imread(str(shot))[:, :, ::-1]
    m = mesh_pixels(png)
    assert m.mean() > 0.05
    cy, cx = np.argwhere(m).mean(axis=0)
    assert abs(cx - png.shape[1] / 2) < png.shape[1] / 4 and abs(cy - png.shape[0] / 2) < png.shape[0] / 4
    if os.environ.get("STREAMRECON_SAVE_SCREENSHOTS"):
        shutil.copy(shot, os.path.join(os.environ["STREAMRECON_SAVE_SCREENSHOTS"], "viewer_screenshot.png"))


def _processes_with(text):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append((int(pid), cmd))
    return found


def test_live_view_opens_viewer_and_leaves_no_process(xvfb, tmp_path):
    """`live --view` starts the viewer on its stream; at the end both are gone."""
    import socket

    display, _ = xvfb
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "DISPLAY": display}
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "live", "synthetic:frames=0,size=96x96,fps=30",
                        "--model", "synthetic", "--view", "--duration", "6", "--publish", addr],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "showed" in r.stderr  # the viewer's own summary: it received meshes and left on end of stream
    shown = int(r.stderr.split("showed ")[1].split()[0])
    assert shown > 0
    time.sleep(0.2)
    assert _processes_with(f"--connect {addr}") == []
