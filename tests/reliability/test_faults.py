"""Faults while running: a camera lost mid-stream (reconnect with back-off, then a clean stop),
a busy camera, a run killed with SIGKILL (the manifest names only complete files; temp files are
removed at the next start), the throttled manifest."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from streaming_helpers import sphere_stage

from streamrecon.stream.capture import ReconnectConfig, ReconnectingSource, Source, open_source
from streamrecon.testing.sources import disc_image
from streamrecon.errors import SourceError
from streamrecon.mesh.io import read_obj
from streamrecon.stream.pipeline import PipelineConfig
from streamrecon.stream.run_writer import RunWriter
from streamrecon.stream.session import run_session
from paths import ROOT  # noqa: E402

ROOT = ROOT


class FlakyCamera(Source):
    """A fake live source: ``good`` frames, then a read failure (``good=None``: ends normally)."""

    kind, live = "camera", True

    def __init__(self, good, size=(32, 24), start=0):
        self.good, self.size, self.start, self.name = good, size, start, "fake-camera"
        self.closed = False

    def frames(self):
        i = 0
        while self.good is None or i < self.good:
            if self.good is None and i >= 3:
                return
            yield disc_image(self.start + i, *self.size)[0], float(i)
            i += 1
        raise SourceError("fake-camera: reading a frame failed (camera unplugged?)")

    def close(self):
        self.closed = True


def opener(script):
    """open_fn over a script: an int/None -> a FlakyCamera(good), an exception -> raised."""
    opened = []

    def open_fn():
        item = script.pop(0)
        if isinstance(item, BaseException):
            raise item
        opened.append(FlakyCamera(item))
        return opened[-1]

    return open_fn, opened


def test_camera_lost_then_back_frames_continue_with_back_off():
    open_fn, opened = opener([5, SourceError("camera busy"), None])
    sleeps = []
    src = ReconnectingSource(open_fn, ReconnectConfig(attempts=4, backoff_s=0.5, max_backoff_s=4), sleep=sleeps.append)
    frames = list(src.frames())
    assert len(frames) == 5 + 3
    assert sleeps == [0.5, 1.0]  # exponential back-off: the first reopen failed (busy), the second worked
    assert src.reconnects == 1 and opened[0].closed


def test_camera_lost_for_good_stops_with_one_line_error():
    open_fn, _ = opener([4] + [SourceError("camera 0 not found")] * 10)
    sleeps = []
    src = ReconnectingSource(open_fn, ReconnectConfig(attempts=3, backoff_s=0.5, max_backoff_s=1.5), sleep=sleeps.append)
    got = []
    with pytest.raises(SourceError, match=r"lost after 4 frames .* 3 reconnect attempt\(s\) .* check the cable") as e:
        for item in src.frames():
            got.append(item)
    assert len(got) == 4 and sleeps == [0.5, 1.0, 1.5]
    assert "\n" not in str(e.value)


def test_reopen_that_fails_at_once_does_not_loop_forever():
    open_fn, opened = opener([2] + [0] * 10)  # every reopen works but yields nothing
    src = ReconnectingSource(open_fn, ReconnectConfig(attempts=3, backoff_s=0.01), sleep=lambda s: None)
    with pytest.raises(SourceError, match="lost after 2 frames"):
        list(src.frames())
    assert len(opened) == 4


def test_stop_during_back_off_ends_the_stream_promptly():
    open_fn, _ = opener([1] + [SourceError("gone")] * 5)
    src = ReconnectingSource(open_fn, ReconnectConfig(attempts=5, backoff_s=30.0))
    stop = threading.Event()
    src.watch(stop)
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    assert len(list(src.frames())) == 1
    assert time.monotonic() - t0 < 2.0


def test_camera_lost_mid_run_keeps_every_frame_read_and_writes_the_summary(tmp_path):
    open_fn, _ = opener([6] + [SourceError("camera 0 not found")] * 10)
    src = ReconnectingSource(open_fn, ReconnectConfig(attempts=2, backoff_s=0.01))
    writer = RunWriter(str(tmp_path / "run"), source="camera:0", source_kind="camera", model="synthetic", resolution=16)
    with pytest.raises(SourceError, match="lost after 6 frames"):
        run_session(src, sphere_stage(), PipelineConfig(policy="block"), writer=writer)
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [f["index"] for f in m["frames"]] == list(range(6))
    assert m["summary"]["frames_done"] == 6
    for f in m["frames"]:
        assert (tmp_path / "run" / f["persons"][0]["file"]).is_file()


def test_busy_camera_is_a_one_line_source_error(monkeypatch):
    import cv2

    import streamrecon.stream.capture as capture

    class Busy:
        def __init__(self, *a):
            self.released = False

        def isOpened(self):
            return False

        def release(self):
            self.released = True

    real_exists = os.path.exists
    monkeypatch.setattr(capture.os.path, "exists", lambda p: p == "/dev/video7" or real_exists(p))
    monkeypatch.setattr(cv2, "VideoCapture", Busy)
    with pytest.raises(SourceError, match=r"camera 7 cannot be opened .* is it in use"):
        open_source(camera=7)


# ---- run directory -----------------------------------------------------------------------------
def _result(i):
    from streamrecon.types import Frame

    stage = sphere_stage()
    return stage(Frame(index=i, image=disc_image(i, 32, 24)[0], timestamp=time.monotonic(), pts=float(i)))


def test_manifest_throttled_but_always_names_existing_files(tmp_path):
    w = RunWriter(str(tmp_path / "a"), source="s", source_kind="synthetic", model="synthetic", resolution=16,
                  manifest_interval_s=3600.0)
    for i in range(30):
        w.write(_result(i))
    assert w.manifest_writes == 1  # the first frame only; a per-frame rewrite would be 30
    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert len(on_disk["frames"]) == 1 and len(os.listdir(tmp_path / "a" / "meshes")) == 30
    w.finish({"frames_done": 30})
    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert len(on_disk["frames"]) == 30 and w.manifest_writes == 2
    w0 = RunWriter(str(tmp_path / "b"), source="s", source_kind="synthetic", model="synthetic", resolution=16,
                   manifest_interval_s=0.0)
    for i in range(5):
        w0.write(_result(i))
    assert w0.manifest_writes == 5


def test_saved_input_frames_keep_their_colours(tmp_path):
    """The run directory's frame JPEGs hold the RGB input as a viewer shows it (OpenCV writes BGR:
    a missed channel swap would turn a red picture blue)."""
    import cv2

    from streamrecon.types import Frame

    img = np.zeros((24, 32, 3), np.uint8)
    img[:, :16] = (220, 30, 10)  # red left half (RGB)
    img[:, 16:] = (10, 40, 200)  # blue right half
    res = sphere_stage()(Frame(index=0, image=img, timestamp=time.monotonic(), pts=0.0))
    w = RunWriter(str(tmp_path / "r"), source="s", source_kind="synthetic", model="synthetic", resolution=16)
    w.write(res)
    w.finish({"frames_done": 1})
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "r" / "frames" / "frame_000000.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(back[4:20, 2:12].astype(int) - (220, 30, 10)).max() <= 12
    assert np.abs(back[4:20, 20:30].astype(int) - (10, 40, 200)).max() <= 12


def test_sigkill_mid_run_leaves_only_complete_files_and_temps_are_cleaned(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "streamrecon.cli", "run", "synthetic:frames=0,size=64x48",
                             "--out", str(out), "--model", "synthetic", "--resolution", "24", "--no-progress"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if len(json.loads((out / "manifest.json").read_text())["frames"]) >= 20:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            pytest.fail("the run wrote no manifest with 20 frames within 60 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    m = json.loads((out / "manifest.json").read_text())  # parses: it was replaced atomically
    assert m["summary"] is None  # killed: never finished
    listed = set()
    for f in m["frames"]:
        listed.add(f["frame_file"])
        img = __import__("cv2").imread(str(out / f["frame_file"]))
        assert img is not None and img.shape == (48, 64, 3)
        for p in f["persons"]:
            listed.add(p["file"])
            mesh = read_obj(out / p["file"])
            assert (mesh.num_vertices, mesh.num_faces) == (p["vertices"], p["faces"])
    last = max(f["index"] for f in m["frames"])
    for sub in ("meshes", "frames", "masks"):
        for name in os.listdir(out / sub):
            rel = f"{sub}/{name}"
            if rel in listed or name.endswith(".tmp"):
                continue
            # written after the last manifest rewrite (< 0.5 s before the kill): later frames only,
            # and complete (atomic rename)
            assert int(name.split("_")[1].split(".")[0]) > last, rel
            if name.endswith(".obj"):
                text = (out / rel).read_text()
                assert text.endswith("\n") and read_obj(out / rel).num_faces > 0
    (out / "meshes" / ".frame_999999_p0.obj.abc123.tmp").write_bytes(b"v 0 0")  # as a kill mid-write leaves
    w = RunWriter(str(out), source="synthetic:frames=0,size=64x48", source_kind="synthetic", model="synthetic",
                  resolution=24, mode="resume")
    assert w.removed_temps >= 1 and w.done == {f["index"] for f in m["frames"]}
    assert not [n for sub in ("meshes", "frames", "masks") for n in os.listdir(out / sub) if n.endswith(".tmp")]


def test_reconnect_flags_are_checked_up_front():
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "live", "synthetic:", "--model", "synthetic",
                        "--reconnect-attempts", "-1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().startswith("streamrecon: error: --reconnect-attempts"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---- --resume after SIGKILL --------------------------------------------------------------------
def _kill_when_listed(cmd, out, frames):
    """Start ``cmd``, SIGKILL it once its manifest lists ``frames`` frames; the manifest then."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(json.loads((out / "manifest.json").read_text())["frames"]) >= frames:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        else:
            pytest.fail(f"the run listed no {frames} frames before it ended or 120 s passed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return json.loads((out / "manifest.json").read_text())


def _same_run(a, b):
    """Two run folders hold the same frames: manifest indices, persons and rects, and byte-identical
    meshes, masks and input frames."""
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert [f["index"] for f in mb["frames"]] == [f["index"] for f in ma["frames"]]
    assert [f["persons"] for f in mb["frames"]] == [f["persons"] for f in ma["frames"]]
    for sub in ("meshes", "frames", "masks"):
        names = sorted(os.listdir(a / sub))
        assert sorted(os.listdir(b / sub)) == names, sub
        for n in names:
            assert (a / sub / n).read_bytes() == (b / sub / n).read_bytes(), f"{sub}/{n}"
    return ma, mb


def test_resume_after_sigkill_writes_exactly_the_meshes_of_an_uninterrupted_run(tmp_path):
    from streaming_helpers import write_video

    # long enough to outlast several manifest rewrites (every 0.5 s) on a fast CPU: the kill must
    # land mid-run
    n = 2000
    video = write_video(tmp_path / "in.mp4", n, (64, 48))
    cmd = [sys.executable, "-m", "streamrecon.cli", "run", str(video), "--model", "synthetic", "--resolution", "24",
           "--no-progress", "--out"]
    r = subprocess.run(cmd + [str(tmp_path / "whole")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    killed = _kill_when_listed(cmd + [str(out)], out, 30)
    assert killed["summary"] is None and 30 <= len(killed["frames"]) < n
    r = subprocess.run(cmd + [str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr  # not without saying so
    r = subprocess.run(cmd + [str(out), "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    whole, resumed = _same_run(tmp_path / "whole", out)
    assert len(resumed["frames"]) == n
    s = resumed["summary"]
    assert s["resumed"] == len(killed["frames"]) and s["frames_done"] == s["frames_in"] == n - s["resumed"]


@pytest.mark.slow
def test_resume_with_the_embedded_model_and_people_tracking_is_exact(tmp_path):
    """People tracking is stateful: the frames a resumed run skips still pass through the people
    step, so the crops (and meshes) after the resume point are those of the uninterrupted run."""
    video = ROOT.parent / "shared" / "media" / "carphone_pristine.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not present")
    cmd = [sys.executable, "-m", "streamrecon.cli", "run", str(video), "--resolution", "32", "--max-frames", "40",
           "--no-progress", "--out"]
    r = subprocess.run(cmd + [str(tmp_path / "whole")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    killed = _kill_when_listed(cmd + [str(out)], out, 8)
    assert len(killed["frames"]) < 40
    r = subprocess.run(cmd + [str(out), "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _same_run(tmp_path / "whole", out)


# ---- Ctrl-C at start-up ------------------------------------------------------------------------
def test_ctrl_c_while_the_cli_starts_is_one_line_not_a_traceback(monkeypatch, capsys):
    import streamrecon.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)  # where the first ~0.3 s go (imports)
    assert cli.main(["run", "x", "--out", "y"]) == 130
    assert capsys.readouterr().err == "streamrecon: interrupted\n"


@pytest.mark.parametrize("delay", [0.02, 0.05, 0.15, 0.3])
def test_ctrl_c_in_the_first_moments_of_a_run(tmp_path, delay):
    code = ("import sys; from streamrecon.cli import main; sys.stderr.write('ready\\n'); sys.stderr.flush(); "
            f"sys.exit(main(['run', 'synthetic:frames=0,size=64x48', '--out', {str(tmp_path / 'o')!r}, '--model', "
            "'synthetic', '--no-progress']))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted" in err
