"""Bad input, one test each: odd and hostile images, broken videos, unsupported codecs, resolutions
that do not fit. Every failure is a one-line error with a non-zero exit code and leaves nothing
half-written; what can be decoded is processed and what cannot is counted."""
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from streaming_helpers import write_video

from streamrecon.errors import ResourceError, SourceError, UserInputError
from streamrecon.images.header import MAX_IMAGE_PIXELS, image_size
from streamrecon.images.decode import load_image
from streamrecon.models.preprocess import preprocess
from paths import ROOT  # noqa: E402

ROOT = ROOT


def cli(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "streamrecon.cli", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(r, code, words):
    assert r.returncode == code, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("[")]  # FFmpeg's own log
    assert len(lines) == 1 and lines[0].startswith("streamrecon: error:"), r.stderr
    assert words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def png_header_only(w, h, bit_depth=8, colour=2):
    """A PNG signature + IHDR claiming w x h, then a tiny (wrong) IDAT: a decoder trusting it would
    allocate w * h pixels."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def small_jpeg(size=(8, 6), mode="RGB", color=(200, 30, 40)):
    Image = pytest.importorskip("PIL.Image", reason="Pillow writes the CMYK/patched JPEG test files")

    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "JPEG", quality=95)
    return buf.getvalue()


# ---- images ------------------------------------------------------------------------------------
def test_16bit_grey_rgba_and_1x1_images_load_as_uint8_rgb(tmp_path):
    import cv2

    grey16 = (np.arange(12 * 10, dtype=np.uint16).reshape(10, 12) * 500)
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    rgb16 = np.stack([grey16, grey16 // 2, grey16 // 3], axis=2)  # stored BGR
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16)
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent blue (BGRA) -> the grey 0.5 background
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "one.png"), np.array([[[10, 20, 30]]], np.uint8))

    g = load_image(tmp_path / "g16.png")
    assert g.shape == (10, 12, 3) and g.dtype == np.uint8
    assert np.array_equal(g[..., 0], ((grey16.astype(np.uint32) + 128) // 257).astype(np.uint8))
    assert np.array_equal(g[..., 0], g[..., 2])
    c = load_image(tmp_path / "c16.png")
    assert np.array_equal(c[..., 2], ((grey16.astype(np.uint32) + 128) // 257).astype(np.uint8))  # B -> last
    a = load_image(tmp_path / "rgba.png")
    assert a.shape == (5, 7, 3) and np.all(a == 127)
    one = load_image(tmp_path / "one.png")
    assert one.shape == (1, 1, 3) and one[0, 0].tolist() == [30, 20, 10]
    p = preprocess(one, load_size=32, load_size_big=64)  # a 1x1 frame still makes valid inputs
    assert tuple(p.img_512.shape) == (1, 3, 32, 32) and tuple(p.img.shape) == (1, 3, 64, 64)


def test_cmyk_jpeg_loads_as_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(small_jpeg(mode="CMYK", color=(0, 255, 255, 0)))  # C=0 M=Y=100%: red
    assert image_size(path.read_bytes())[:2] == (8, 6)
    img = load_image(path)
    assert img.shape == (6, 8, 3)
    assert img[..., 0].min() > 240 and img[..., 1:].max() < 15


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_huge_image_refused_from_the_header_before_decoding(tmp_path, monkeypatch, fmt):
    import cv2

    if fmt == "png":
        data = png_header_only(20000, 20000)
    else:  # a real 8x6 JPEG whose frame header is patched to claim 20000 x 20000
        data = bytearray(small_jpeg())
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
        data = bytes(data)
    path = tmp_path / f"huge.{fmt}"
    path.write_bytes(data)
    assert image_size(data) == (20000, 20000, fmt)
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: calls.append(a) or None)
    with pytest.raises(UserInputError, match=r"20000x20000 pixels .* exceeds the 40 MP limit; downscale"):
        load_image(path)
    assert calls == []  # never handed to the decoder
    w = int(MAX_IMAGE_PIXELS ** 0.5) - 1  # just under the limit: the header check lets it through
    path.write_bytes(png_header_only(w, w))
    with pytest.raises(UserInputError, match="corrupt or truncated"):
        load_image(path)
    assert len(calls) == 1


def test_huge_image_cli_one_line_and_no_output(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_header_only(20000, 20000))
    r = cli("reconstruct", tmp_path / "huge.png", "--out", tmp_path / "m.obj", "--resolution", "32")
    one_line_error(r, 2, "exceeds the 40 MP limit")
    assert list(tmp_path.iterdir()) == [tmp_path / "huge.png"]


@pytest.mark.parametrize("content, words", [
    (b"", "the file is empty"),
    (b"hello, not an image", "unrecognised header"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "truncated header"),
    (png_header_only(0, 10), "empty image"),
])
def test_bad_image_files_are_user_errors(tmp_path, content, words):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=words):
        load_image(path)


def test_truncated_png_data_is_a_user_error(tmp_path):
    import cv2

    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    path = tmp_path / "cut.png"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(UserInputError, match="corrupt or truncated"):
        load_image(path)


def test_png_chunk_announcing_gigabytes_is_refused_without_decoding(tmp_path, monkeypatch):
    """Found by tests/reliability/fuzz/fuzz_image.py: a 7x9 PNG whose IDAT claims 2.6 GB made OpenCV allocate
    it (2.6 GB RSS, ~2 s per decode)."""
    import cv2

    data = bytearray(png_header_only(7, 9))
    idat = data.index(b"IDAT") - 4
    data[idat:idat + 4] = struct.pack(">I", 0x9DFFC192)
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: calls.append(a) or None)
    with pytest.raises(UserInputError, match=r"chunk b'IDAT' .* announces 2650784146 bytes"):
        load_image(path)
    assert calls == []


def test_image_folder_of_only_unreadable_entries_is_a_source_error(tmp_path):
    from streamrecon.stream.capture import ImageFolderSource

    (tmp_path / "a.png").write_bytes(png_header_only(30000, 30000))
    (tmp_path / "b.png").write_bytes(b"junk")
    with pytest.raises(SourceError, match=r"none of its 2 image entries can be read \(first: a.png: .*exceeds"):
        list(ImageFolderSource(str(tmp_path)).frames())


def bad_entries(folder: Path) -> dict:
    """One of each bad folder entry, with the words its reason must hold."""
    import os

    (folder / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (folder / "c_dangling.png").symlink_to(folder / "nowhere.png")
    (folder / "d_loop.png").symlink_to(folder / "d_loop.png")
    (folder / "e_zero.png").symlink_to("/dev/zero")
    os.mkfifo(folder / "f_fifo.png")
    (folder / "g_huge.png").write_bytes(png_header_only(30000, 30000))
    return {"b_corrupt.png": "", "c_dangling.png": "dangling symlink", "d_loop.png": "symlink loop",
            "e_zero.png": "a device (a symlink to /dev/zero)", "f_fifo.png": "FIFO", "g_huge.png": "exceeds the 40 MP limit"}


def test_bad_folder_entries_are_skipped_counted_and_explained(tmp_path):
    """A corrupt file, a dangling and a looping symlink, a symlink to /dev/zero, a FIFO and a huge
    image among good frames: the run goes on (exit 0), every good frame is reconstructed, and the
    summary counts and the manifest lists each bad entry with what was wrong (the FIFO is never
    waited on)."""
    import cv2

    from streamrecon.testing.sources import disc_image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, i in (("a0.png", 0), ("h1.png", 1), ("z2.png", 2)):
        cv2.imwrite(str(folder / name), disc_image(i, 64, 48)[0][:, :, ::-1])
    want = bad_entries(folder)
    out = tmp_path / "run"
    r = cli("run", folder, "--out", out, "--model", "synthetic", "--resolution", "16", "--no-progress", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    m = check_manifest(out)
    assert [f["index"] for f in m["frames"]] == [0, 1, 2] and m["summary"]["frames_done"] == 3
    assert m["summary"]["skipped"] == len(want)
    listed = {e["file"]: e["reason"] for e in m["skipped_inputs"]}
    assert set(listed) == set(want)
    for name, words in want.items():
        assert words in listed[name], (name, listed[name])
        assert f"skipped {folder / name}: " in r.stderr  # said as it happens
    assert "image not found" not in r.stderr  # the entries exist: each says what it is instead


def test_detect_refuses_a_huge_image_from_the_header(tmp_path, monkeypatch):
    """``detect`` has the pixel limit of ``run`` and ``reconstruct``: a PNG whose header claims
    100000 x 100000 is refused in one line, before the decoder sees it."""
    import cv2

    from streamrecon.people.detect_io import read_image

    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(100000, 100000))
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: calls.append(a) or None)
    monkeypatch.setattr(cv2, "imread", lambda *a, **k: calls.append(a) or None)
    with pytest.raises(UserInputError, match=r"100000x100000 pixels .* exceeds the 40 MP limit"):
        read_image(str(huge))
    assert calls == []
    monkeypatch.undo()
    r = cli("detect", huge, "--out", tmp_path / "det", timeout=60)
    one_line_error(r, 2, "exceeds the 40 MP limit")
    assert not (tmp_path / "det").exists()  # refused before the folder was made


# ---- videos ------------------------------------------------------------------------------------
def corrupt_copy(src: Path, dst: Path, frac=(0.35, 0.10), seed=0) -> Path:
    data = bytearray(src.read_bytes())
    n = len(data)
    a, k = int(n * frac[0]), int(n * frac[1])
    data[a:a + k] = np.random.default_rng(seed).integers(0, 256, k, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def run_video(tmp_path, video):
    out = tmp_path / "out"
    r = cli("run", video, "--out", out, "--model", "synthetic", "--resolution", "16", "--no-progress")
    return r, out


def check_manifest(out: Path):
    m = json.loads((out / "manifest.json").read_text())
    for f in m["frames"]:
        for p in f["persons"]:
            assert (out / p["file"]).is_file()
        assert (out / f["frame_file"]).is_file()
    return m


@pytest.mark.parametrize("ext", ["mp4", "avi"])
def test_corrupt_video_decodable_frames_processed_broken_ones_counted(tmp_path, ext):
    n = 40
    good = write_video(tmp_path / f"good.{ext}", n, (96, 64))
    bad = corrupt_copy(good, tmp_path / f"bad.{ext}")
    r, out = run_video(tmp_path, bad)
    assert r.returncode == 0, r.stderr
    m = check_manifest(out)
    s = m["summary"]
    assert s["skipped"] >= 1
    assert 0 < s["frames_done"] == s["frames_in"] == len(m["frames"]) < n
    assert len(list((out / "meshes").iterdir())) == s["meshes"] == s["frames_done"]


def test_truncated_video_keeps_the_frames_before_the_cut(tmp_path):
    n = 40
    good = write_video(tmp_path / "good.avi", n, (96, 64))
    data = good.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    r, out = run_video(tmp_path, cut)
    assert r.returncode == 0, r.stderr
    m = check_manifest(out)
    assert 10 <= m["summary"]["frames_done"] < n and m["summary"]["skipped"] >= 0
    assert [f["index"] for f in m["frames"]] == list(range(m["summary"]["frames_done"]))


@pytest.mark.parametrize("case, words", [
    ("empty", "cannot open"),            # zero-length file
    ("moovless", "cannot open"),         # mp4 cut before its index (moov) atom
    ("codec", "no decoder for its video codec"),
    ("garbage", "no decodable video frames"),
])
def test_unusable_videos_one_line_error_nothing_written(tmp_path, case, words):
    good = write_video(tmp_path / ("good.avi" if case in ("codec", "garbage") else "good.mp4"), 20, (96, 64))
    data = good.read_bytes()
    video = tmp_path / f"{case}{good.suffix}"
    if case == "empty":
        video.write_bytes(b"")
    elif case == "moovless":
        video.write_bytes(data[: len(data) // 2])
    elif case == "codec":
        assert data.count(b"MJPG") >= 1
        video.write_bytes(data.replace(b"MJPG", b"ZZZZ"))  # a FourCC no FFmpeg build decodes
    else:  # container intact, every frame's data replaced by noise
        corrupt_copy(good, video, frac=(0.02, 0.97))
    r, out = run_video(tmp_path, video)
    one_line_error(r, 4, words)
    if case != "garbage":
        assert not out.exists()  # refused before the run directory was made
    else:
        m = json.loads((out / "manifest.json").read_text())  # the summary says what happened
        assert m["frames"] == [] and m["summary"]["frames_done"] == 0


# ---- resources ---------------------------------------------------------------------------------
def test_memory_estimate_model():
    from streamrecon.occupancy.memory import recon_memory_bytes

    est = recon_memory_bytes(512)
    assert 0.4e9 < est < 1.0e9  # docs/octree.md: 220-660 MB measured at 512
    assert recon_memory_bytes(1024) > 4 * recon_memory_bytes(512) * 0.9
    assert recon_memory_bytes(256, "dense") - recon_memory_bytes(256) == 4 * 256 ** 3


def test_resolution_that_does_not_fit_is_refused_with_the_estimate():
    from streamrecon.occupancy.memory import check_recon_memory, recon_memory_bytes

    with pytest.raises(ResourceError, match=r"about 3\.5 GB .* 1\.0 GB is available; use --resolution \d+ or less"):
        check_recon_memory(1024, available=10 ** 9)
    fit = int(str(pytest.raises(ResourceError, check_recon_memory, 1024, available=10 ** 9).value).split("use --resolution ")[1].split()[0])
    assert recon_memory_bytes(fit) <= 0.8e9 < recon_memory_bytes(fit + 32)
    assert check_recon_memory(128, available=10 ** 9) == recon_memory_bytes(128)


def test_absurd_resolution_cli_refused_before_anything_opens(tmp_path):
    out = tmp_path / "o"
    r = cli("run", "synthetic:frames=2", "--out", out, "--model", "synthetic", "--resolution", "200000", "--no-progress")
    one_line_error(r, 2, "[2, 1024]")
    assert not out.exists()
    r = cli("run", "synthetic:frames=2", "--out", out, "--model", "synthetic", "--resolution", "1", "--no-progress")
    one_line_error(r, 2, "--resolution")
