"""Sources: generated videos decode to the frames written, folders in name order, real-time
pacing, synthetic specs; the analytic test model's geometry."""
import os
import time

import numpy as np
import pytest
from streaming_helpers import write_video

from streamrecon.stream.capture import AVSource, ImageFolderSource, PacedSource, open_source
from streamrecon.testing.sources import SyntheticSource, disc_image, parse_synthetic
from streamrecon.errors import SourceError, UserInputError
from streamrecon.testing.sphere_model import bright_disc, uv_sphere


@pytest.mark.parametrize("ext", ["mp4", "mkv", "avi"])
def test_av_source_decodes_what_was_written(tmp_path, ext):
    n, size = 10, (96, 64)
    src = open_source(str(write_video(tmp_path / f"v.{ext}", n, size, fps=25)))
    assert isinstance(src, AVSource) and not src.live and src.kind == "file"
    assert src.num_frames == n and src.fps == pytest.approx(25)  # mkv: estimated from the duration
    frames = list(src.frames())
    src.close()
    assert len(frames) == n
    for i, (img, pts) in enumerate(frames):
        assert img.shape == (size[1], size[0], 3) and img.dtype == np.uint8
        assert np.abs(img.astype(int) - disc_image(i, *size)[0]).mean() < 6  # lossy codecs
        assert pts == pytest.approx(i / 25, abs=1e-3)


def test_image_folder_in_name_order_and_bad_image(tmp_path):
    import cv2

    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), disc_image(i, 40, 30)[0][:, :, ::-1])
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageFolderSource) and src.num_frames == 3
    imgs = [img for img, _ in src.frames()]
    assert all(np.array_equal(img, disc_image(i, 40, 30)[0]) for i, img in enumerate(imgs))
    (tmp_path / "f3.png").write_bytes(b"not a png")  # skipped, counted and named; the folder goes on
    src = ImageFolderSource(str(tmp_path))
    assert len(list(src.frames())) == 3 and src.skipped == 1
    assert src.skipped_entries == [{"file": "f3.png", "reason": "not a png, jpeg, bmp, gif, webp, tiff, pnm file "
                                                               "(unrecognised header); use PNG or JPEG"}]
    for i in range(3):
        (tmp_path / f"f{i}.png").write_bytes(b"")
    with pytest.raises(SourceError, match="none of its 4 image entries can be read"):
        list(ImageFolderSource(str(tmp_path)).frames())


def test_paced_source_plays_in_real_time(tmp_path):
    src = PacedSource(SyntheticSource(frames=6), fps=50)
    assert src.live
    t0 = time.monotonic()
    assert len(list(src.frames())) == 6
    assert time.monotonic() - t0 >= 5 / 50 - 0.01


def test_synthetic_specs():
    s = parse_synthetic("synthetic:frames=7,size=50x40,fps=0")
    assert s.num_frames == 7 and s.size == (50, 40) and not s.live
    assert parse_synthetic("synthetic:frames=0", live=True).num_frames is None
    for bad in ("synthetic:frames=x", "synthetic:size=10", "synthetic:color=red"):
        with pytest.raises(UserInputError, match="synthetic"):
            parse_synthetic(bad)


def test_missing_inputs_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(UserInputError, match="no input"):
        open_source(None)
    if not os.path.exists("/dev/video91"):
        with pytest.raises(SourceError, match="camera 91 not found"):
            open_source(camera=91)


@pytest.mark.parametrize("index", [0, 5, 17])
def test_bright_disc_recovers_the_drawn_disc(index):
    img, (cx, cy, r) = disc_image(index, 120, 90)
    rect = (-15.0, 0.0, 150.0, 150.0)  # a square crop wider than the image
    x, y, rad = bright_disc(img, rect)
    assert x == pytest.approx(2 * (cx + 15) / 150 - 1, abs=0.02)
    assert y == pytest.approx(1 - 2 * cy / 150, abs=0.02)
    assert rad == pytest.approx(2 * r / 150, rel=0.03)


def test_uv_sphere_is_closed_and_outward():
    v, f = uv_sphere(40, 80)
    tri = v[f].astype(np.float64)
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert volume == pytest.approx(4 / 3 * np.pi, rel=0.01)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # watertight: every edge shared by exactly two faces


@pytest.mark.camera
def test_real_camera_live(tmp_path):
    if not os.path.exists("/dev/video0"):
        pytest.skip("no camera at /dev/video0")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "live", "--camera", "0", "--model", "synthetic",
                        "--duration", "3", "--publish", "tcp://127.0.0.1:5581", "--out", str(tmp_path / "cam")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_live_plays_a_file_in_real_time(tmp_path):
    """``streamrecon live FILE`` paces the file at its frame rate (a file read as fast as it
    decodes would drop nearly every frame under the live policy)."""
    from streaming_helpers import write_video

    from streamrecon.stream.capture import open_source
    from streamrecon.stream.session import needs_pacing

    video = write_video(tmp_path / "clip.mp4", 10, fps=25)
    src = open_source(str(video), live=True)
    assert needs_pacing(src)
    assert not needs_pacing(SyntheticSource(frames=3, live=True))  # a live source paces itself
    paced = PacedSource(src)
    t0 = time.monotonic()
    n = sum(1 for _ in paced.frames())
    assert n == 10 and time.monotonic() - t0 >= 9 / 25 - 0.02
