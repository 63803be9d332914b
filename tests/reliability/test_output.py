"""Outputs that cannot be written: a read-only disk, /proc, a folder where a file should go, a disk
that fills up (bytes or inodes) during a run. Each is one line (``OutputError``, exit 8) naming the
path, the reason and what to do; what was written before the fault stays, complete, and is listed
in a valid manifest whose summary is recorded. Also: a legal 250-byte output name, file modes that
follow the umask, a run folder that is not empty (refused, ``--overwrite``, ``--resume``), and a
failed start-up that leaves no run folder behind.

The disk-full cases mount a small tmpfs (root only; skipped with the reason otherwise); their
fault-injected twins run everywhere."""
import contextlib
import errno
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamrecon.errors import OutputError, UserInputError
from streamrecon.mesh import io as meshio
from streamrecon.mesh.io import atomic_write_bytes, read_obj, temp_name
from paths import MEDIA, ROOT  # noqa: E402

IMAGE = MEDIA / "astronaut.png"
SYNTH = ["--model", "synthetic", "--resolution", "16", "--no-progress"]


def cli(*argv, umask=None, timeout=120):
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "streamrecon.cli", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=pre)


def one_line_error(r, code, *words):
    assert r.returncode == code, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("[")]  # FFmpeg's own log
    assert len(lines) == 1 and lines[0].startswith("streamrecon: error:"), r.stderr
    for w in words:
        assert w in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", inodes=None, read_only: bool = False):
    """A small tmpfs mounted at ``path`` (skips the test where mounting is not possible)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the fault-injected twin of this test runs anyway)")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "") + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder nothing can be written to: a read-only tmpfs as root, else a 0555 folder."""
    if os.geteuid() == 0:
        with tmpfs(path, read_only=True):
            yield path, "read-only"
        return
    path.mkdir()
    path.chmod(0o555)
    try:
        yield path, "permission denied"
    finally:
        path.chmod(0o755)


def check_run_dir(out: Path, frames_expected=None) -> dict:
    """The run directory's invariant: a valid manifest with a summary; every listed file exists and
    is complete; no file streamrecon wrote is unlisted; no temp file left."""
    m = json.loads((out / "manifest.json").read_text())
    assert m["summary"] is not None
    listed = set()
    for f in m["frames"]:
        if "frame_file" in f:
            listed.add(f["frame_file"])
            import cv2

            assert cv2.imread(str(out / f["frame_file"])) is not None
        for p in f["persons"]:
            listed.add(p["file"])
            mesh = read_obj(out / p["file"])
            assert (mesh.num_vertices, mesh.num_faces) == (p["vertices"], p["faces"])
            if "mask_file" in p:
                listed.add(p["mask_file"])
    on_disk = {f"{sub}/{n}" for sub in ("meshes", "frames", "masks") if (out / sub).is_dir() for n in os.listdir(out / sub)}
    assert on_disk == listed, (sorted(on_disk - listed)[:5], sorted(listed - on_disk)[:5])
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert [f["index"] for f in m["frames"]] == list(range(len(m["frames"])))
    if frames_expected is not None:
        assert len(m["frames"]) == frames_expected
    return m


# ---- one line for every output that cannot be written ------------------------------------------
def test_reconstruct_out_on_read_only_disk_proc_and_a_folder(tmp_path):
    with read_only_folder(tmp_path / "ro") as (ro, why):
        r = cli("reconstruct", IMAGE, "--out", ro / "m.obj", "--resolution", "32")
        one_line_error(r, 8, f"cannot write {ro / 'm.obj'}: ", why, "write to a")
        assert os.listdir(ro) == []
    r = cli("reconstruct", IMAGE, "--out", "/proc/streamrecon_test.obj", "--resolution", "32")
    one_line_error(r, 8, "/proc/streamrecon_test.obj", "does not accept new files")
    folder = tmp_path / "mesh.obj"
    folder.mkdir()
    r = cli("reconstruct", IMAGE, "--out", folder, "--resolution", "32")
    one_line_error(r, 8, f"cannot write {folder}: it is a folder; give the name of a file")
    assert os.listdir(folder) == []


def test_detect_out_on_read_only_disk(tmp_path):
    import cv2

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.full((48, 64, 3), 128, np.uint8))
    with read_only_folder(tmp_path / "ro") as (ro, why):
        r = cli("detect", img, "--out", ro / "det")
        one_line_error(r, 8, f"{ro / 'det'}", why)
        assert os.listdir(ro) == []


def test_output_errors_name_path_reason_and_fix(tmp_path):
    """The reasons ``output_error`` gives for each errno a disk can return."""
    cases = {errno.ENOSPC: "no space left", errno.EROFS: "read-only", errno.EACCES: "permission denied",
             errno.EISDIR: "it is a folder", errno.ENAMETOOLONG: "too long", errno.EDQUOT: "quota"}
    for code, words in cases.items():
        e = meshio.output_error(tmp_path / "x.obj", OSError(code, os.strerror(code)))
        assert isinstance(e, OutputError) and isinstance(e, OSError) and e.errno == code and e.exit_code == 8
        assert str(e).startswith(f"cannot write {tmp_path / 'x.obj'}: ") and words in str(e) and "; " in str(e)
        assert "\n" not in str(e)


@pytest.mark.parametrize("case", ["bytes", "inodes"])
def test_disk_full_during_run_keeps_what_was_written_listed(tmp_path, case):
    """A tmpfs that fills up mid-run: exit 8, one line; every frame written before is complete and
    listed in a valid manifest with its summary (the frame being written when the disk filled is
    removed again). ``inodes`` without input frames: the failing file is the frame's first, so no
    inode is freed and the last manifest goes into the writer's reserve."""
    if case == "bytes":
        mount, extra = dict(size="400k"), []
    else:
        mount, extra = dict(size="50m", inodes=60), ["--no-save-inputs"]
    with tmpfs(tmp_path / "disk", **mount) as disk:
        out = disk / "run"
        r = cli("run", "synthetic:frames=2000,size=64x48", "--out", out, *SYNTH, *extra)
        line = one_line_error(r, 8, "cannot write", "no space left on the device" if case == "bytes" else "no free inodes",
                              "the run stopped there", "listed in")
        m = check_run_dir(out)
        n = len(m["frames"])
        assert 2 <= n < 2000 and f"the {n} frame(s) written before" in line
        assert m["summary"]["frames_done"] >= n and m["summary"]["error"].startswith("cannot write")


def test_disk_full_fault_injected_manifest_lands_in_the_reserve(tmp_path, monkeypatch):
    """The same without a mount: every write after the 12th fails with ENOSPC (the manifest's
    rewrites included), so the summary can only be recorded through the reserve file."""
    from streaming_helpers import sphere_stage

    import streamrecon.stream.run_writer as rw
    from streamrecon.stream.pipeline import PipelineConfig
    from streamrecon.stream.session import run_session
    from streamrecon.testing.sources import SyntheticSource

    writes = {"n": 0}

    def fault(path):
        writes["n"] += 1
        if writes["n"] > 12:
            raise meshio.output_error(path, OSError(errno.ENOSPC, "No space left on device"))

    out = tmp_path / "run"
    writer = rw.RunWriter(str(out), source="s", source_kind="synthetic", model="synthetic", resolution=16)
    real_bytes, real_mesh = rw.atomic_write_bytes, rw.write_mesh
    monkeypatch.setattr(rw, "atomic_write_bytes", lambda path, data: fault(path) or real_bytes(path, data))
    monkeypatch.setattr(rw, "write_mesh", lambda mesh, path, fmt: fault(path) or real_mesh(mesh, path, fmt))
    with pytest.raises(OutputError) as ei:
        run_session(SyntheticSource(frames=50, size=(32, 24)), sphere_stage(), PipelineConfig(policy="block"), writer=writer)
    msg = str(ei.value)
    assert "no space left" in msg and "the run stopped there" in msg and "\n" not in msg
    m = check_run_dir(out)
    assert 1 <= len(m["frames"]) <= 6 and m["summary"]["error"].startswith("cannot write")
    assert not (out / rw.RESERVE).exists()  # it became manifest.json


def test_reserve_that_cannot_grow_stops_before_the_frame_starts(tmp_path, monkeypatch):
    import streamrecon.stream.run_writer as rw
    from streaming_helpers import sphere_stage
    from streamrecon.types import Frame
    from streamrecon.testing.sources import disc_image

    w = rw.RunWriter(str(tmp_path / "run"), source="s", source_kind="synthetic", model="synthetic", resolution=16,
                     manifest_interval_s=0.0)
    stage = sphere_stage()
    w.write(stage(Frame(0, disc_image(0, 32, 24)[0], 0.0)))

    def no_space(fd, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rw, "_allocate", no_space)
    w._bytes += 10 << 20  # as if the manifest had grown past the reserve
    with pytest.raises(OutputError, match=r"manifest\.json: no space left"):
        w.write(stage(Frame(1, disc_image(1, 32, 24)[0], 0.0)))
    w._bytes -= 10 << 20
    assert sorted(os.listdir(tmp_path / "run" / "meshes")) == ["frame_000000_p0.obj"]  # frame 1 never started
    w.finish({"frames_done": 1})
    check_run_dir(tmp_path / "run", frames_expected=1)


# ---- names and modes ---------------------------------------------------------------------------
def test_a_legal_250_byte_name_is_written(tmp_path):
    name = "m" * 246 + ".obj"
    assert len(name.encode()) == 250
    tmp = temp_name(name, "abcd1234")
    assert len(tmp.encode()) <= 255 and tmp.startswith(".m") and tmp.endswith(".abcd1234.tmp")
    multi = "é" * 124 + ".obj"  # 252 bytes; the cut must not split a character
    assert len(temp_name(multi, "abcd1234").encode()) <= 255 and temp_name(multi, "abcd1234").encode().decode("utf-8")
    atomic_write_bytes(tmp_path / multi, b"x")
    assert (tmp_path / multi).read_bytes() == b"x"
    r = cli("reconstruct", IMAGE, "--out", tmp_path / name, "--resolution", "32")
    assert r.returncode == 0, r.stderr
    assert read_obj(tmp_path / name).num_faces > 0
    assert sorted(os.listdir(tmp_path)) == sorted([multi, name])  # no temp file left
    r = cli("reconstruct", IMAGE, "--out", tmp_path / ("m" * 260 + ".obj"), "--resolution", "32")
    one_line_error(r, 8, "the name is too long")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    want = 0o666 & ~umask
    out = tmp_path / "run"
    r = cli("run", "synthetic:frames=3,size=64x48", "--out", out, *SYNTH, umask=umask)
    assert r.returncode == 0, r.stderr
    files = [out / "manifest.json"] + [p for sub in ("meshes", "frames") for p in (out / sub).iterdir()]
    assert len(files) == 7
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(want)}
    before = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "one.bin", b"1")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "one.bin").stat().st_mode) == want


def test_detect_and_reconstruct_files_follow_the_umask(tmp_path):
    import cv2

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.full((48, 64, 3), 128, np.uint8))
    r = cli("detect", img, "--out", tmp_path / "det", umask=0o027)
    assert r.returncode == 0, r.stderr
    written = list((tmp_path / "det").iterdir())
    assert written and {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o640}
    r = cli("reconstruct", IMAGE, "--out", tmp_path / "m.obj", "--resolution", "32", umask=0o007)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "m.obj").stat().st_mode) == 0o660


# ---- a run folder that is not empty ----------------------------------------------------------
def test_non_empty_run_folder_refused_overwrite_clears_only_what_a_run_wrote(tmp_path):
    out = tmp_path / "run"
    r = cli("run", "synthetic:frames=6,size=64x48", "--out", out, *SYNTH)
    assert r.returncode == 0, r.stderr
    (out / "notes.txt").write_text("mine")
    (out / "meshes" / "keep_me.txt").write_text("mine too")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    r = cli("run", "synthetic:frames=3,size=64x48", "--out", out, *SYNTH)
    one_line_error(r, 2, f"--out {out} is not empty", "--overwrite", "--resume")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing touched
    r = cli("run", "synthetic:frames=3,size=64x48", "--out", out, "--overwrite", *SYNTH)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert [f["index"] for f in m["frames"]] == [0, 1, 2]
    assert sorted(os.listdir(out / "meshes")) == ["frame_000000_p0.obj", "frame_000001_p0.obj", "frame_000002_p0.obj", "keep_me.txt"]
    assert sorted(os.listdir(out / "frames")) == [f"frame_{i:06d}.jpg" for i in range(3)]
    assert (out / "notes.txt").read_text() == "mine" and (out / "meshes" / "keep_me.txt").read_text() == "mine too"
    r = cli("run", "synthetic:frames=3,size=64x48", "--out", out, "--overwrite", "--resume", *SYNTH)
    one_line_error(r, 2, "--overwrite and --resume")


def test_folder_with_only_empty_run_subfolders_or_temps_counts_as_empty(tmp_path):
    from streamrecon.stream.run_writer import RunWriter, run_dir_contents

    out = tmp_path / "run"
    for sub in ("meshes", "frames", "masks"):
        (out / sub).mkdir(parents=True)
    (out / "meshes" / ".frame_000001_p0.obj.1a2b3c4d.tmp").write_bytes(b"v 0 0")
    assert run_dir_contents(out) == []
    w = RunWriter(str(out), source="s", source_kind="synthetic", model="synthetic", resolution=16)
    assert w.removed_temps == 1
    (out / "meshes" / "frame_000000_p0.obj").write_text("v 0 0 0\n")
    with pytest.raises(UserInputError, match="not empty"):
        RunWriter(str(out), source="s", source_kind="synthetic", model="synthetic", resolution=16)


def test_resume_refuses_another_source_or_setting_and_a_live_source(tmp_path):
    out = tmp_path / "run"
    r = cli("run", "synthetic:frames=4,size=64x48", "--out", out, *SYNTH)
    assert r.returncode == 0, r.stderr
    r = cli("run", "synthetic:frames=4,size=64x48", "--out", out, "--resume", "--model", "synthetic", "--resolution", "24", "--no-progress")
    one_line_error(r, 2, "--resume", "another resolution 16 (now 24)")
    r = cli("live", "synthetic:frames=4", "--out", out, "--resume", "--model", "synthetic")
    assert r.returncode == 2 and "unrecognized arguments: --resume" in r.stderr  # live has no --resume
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("not a run")
    r = cli("run", "synthetic:frames=4,size=64x48", "--out", tmp_path / "other", "--resume", *SYNTH)
    one_line_error(r, 2, "has no manifest.json")


def test_resume_of_a_finished_run_redoes_nothing_and_keeps_missing_frames_made(tmp_path):
    out = tmp_path / "run"
    assert cli("run", "synthetic:frames=8,size=64x48", "--out", out, *SYNTH).returncode == 0
    meshes = {n: (out / "meshes" / n).read_bytes() for n in os.listdir(out / "meshes")}
    (out / "meshes" / "frame_000003_p0.obj").unlink()  # a listed file gone: that frame is made again
    r = cli("run", "synthetic:frames=8,size=64x48", "--out", out, "--resume", *SYNTH)
    assert r.returncode == 0, r.stderr
    m = check_run_dir(out, frames_expected=8)
    assert m["summary"]["resumed"] == 7 and m["summary"]["frames_done"] == 1
    assert {n: (out / "meshes" / n).read_bytes() for n in os.listdir(out / "meshes")} == meshes


# ---- failed start-ups leave no run folder ------------------------------------------------------
def test_failed_start_ups_leave_no_run_folder(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = tmp_path / "busy"
        r = cli("run", "synthetic:frames=3,size=64x48", "--out", out, "--publish", f"tcp://127.0.0.1:{port}", *SYNTH)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()
    out = tmp_path / "bad"
    r = cli("run", "synthetic:frames=3,size=64x48", "--out", out, "--publish", "tcp://no.such.host.invalid:5555", *SYNTH)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()
    mine = tmp_path / "mine"  # a folder the user made stays, empty as it was
    mine.mkdir()
    r = cli("run", "synthetic:frames=3,size=64x48", "--out", mine, "--publish", "tcp://no.such.host.invalid:5555", *SYNTH)
    assert r.returncode != 0 and mine.is_dir() and os.listdir(mine) == []


def test_writer_discard_removes_only_what_it_created(tmp_path):
    from streamrecon.stream.run_writer import RunWriter

    w = RunWriter(str(tmp_path / "a" / "run"), source="s", source_kind="synthetic", model="synthetic", resolution=16)
    assert (tmp_path / "a" / "run" / "meshes").is_dir()
    w.discard()
    assert os.listdir(tmp_path / "a") == []
