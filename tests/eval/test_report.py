"""`streamrecon evaluate` end to end on run directories built here from analytic ellipsoids whose
silhouettes and shading are known (docs/run_dir.md format), plus `run` then `evaluate` when the
`run` command is available."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamrecon.types import Mesh
from streamrecon.mesh.io import write_mesh
from streamrecon.mesh.coords import crop_to_image_points as crop_to_image
from streamrecon.testing.shapes import uv_sphere

cv2 = pytest.importorskip("cv2", reason="OpenCV reads and writes the run directory's images")

H, W = 150, 200
SCALE = (0.45, 0.8, 0.35)  # ellipsoid semi-axes in crop units: a person-like upright blob


def _photo_and_mask(rect, rng):
    """The frame an ideal reconstruction explains: the ellipsoid's exact silhouette (pixel centres
    inside its projected ellipse) shaded by the renderer's headlight Lambert model, on noise."""
    x, y, w, _ = rect
    a, b, c = (s * w / 2 for s in SCALE)
    cx, cy = x + w / 2, y + w / 2
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    u, v = jj - cx, ii - cy
    q = 1 - (u / a) ** 2 - (v / b) ** 2
    mask = q > 0
    z = -c * np.sqrt(np.clip(q, 0, None))
    n = np.stack([u / a ** 2, v / b ** 2, z / c ** 2], -1)
    nz = np.abs(n[..., 2]) / np.maximum(np.linalg.norm(n, axis=-1), 1e-12)
    shade = 0.15 + 0.85 * nz
    photo = rng.integers(0, 256, (H, W, 3)).astype(np.float64)
    photo[mask] = (shade[mask, None] * 255.0) * np.array([1.0, 1.0, 1.0])
    return photo.astype(np.uint8), mask


def make_run_dir(root: Path, n_frames=6, mesh_frame="image", fmt="obj", bad_frame=None, missing_frame=None):
    """A run directory per docs/run_dir.md: the person moves 3 px right per frame. ``bad_frame``
    gets a mask displaced far from the mesh; ``missing_frame`` lists a mesh file that is absent."""
    rng = np.random.default_rng(0)
    for d in ("frames", "masks", "meshes"):
        (root / d).mkdir(parents=True, exist_ok=True)
    v_crop, f = uv_sphere(1.0, n_lat=48, n_lon=96, scale=SCALE)
    frames = []
    for k in range(n_frames):
        idx = 10 + k
        rect = [30.0 + 3 * k, 10.0, 130.0, 130.0]
        photo, mask = _photo_and_mask(rect, rng)
        if k == bad_frame:
            mask = np.roll(mask, 90, axis=1)
        name = f"frame_{idx:06d}"
        cv2.imwrite(str(root / "frames" / f"{name}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(root / "masks" / f"{name}_p0.png"), mask.astype(np.uint8) * 255)
        verts = crop_to_image(v_crop, rect) if mesh_frame == "image" else v_crop
        mesh_file = f"meshes/{name}_p0.{fmt}"
        if k != missing_frame:
            write_mesh(Mesh(verts, f, frame=mesh_frame), root / mesh_file)
        frames.append({"index": idx, "time": idx / 25.0, "frame_file": f"frames/{name}.jpg", "width": W, "height": H,
                       "persons": [{"person": 0, "file": mesh_file, "mask_file": f"masks/{name}_p0.png",
                                    "rect": rect, "vertices": len(verts), "faces": len(f)}],
                       "timings": {"capture_to_done_s": 0.1}})
    manifest = {"version": 1, "source": "synthetic-ellipsoid", "source_kind": "synthetic", "model": "analytic",
                "resolution": 128, "mesh_format": fmt, "mesh_frame": mesh_frame, "frames": frames,
                "summary": {"frames_in": n_frames, "frames_done": n_frames}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def cli(*args):
    return subprocess.run([sys.executable, "-m", "streamrecon.cli", *args], capture_output=True, text=True, timeout=300)


def test_evaluate_writes_metrics_and_report(tmp_path):
    run = make_run_dir(tmp_path / "run", n_frames=6, bad_frame=3, missing_frame=4)
    out = cli("evaluate", str(run), "--samples", "3")
    assert out.returncode == 0, out.stderr
    doc = json.loads((run / "eval" / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    persons = {r["index"]: r["persons"][0] for r in doc["frames"]}
    assert len(persons) == 6
    good = [p for i, p in persons.items() if i not in (13, 14)]
    # The mesh is the mask's ellipsoid: silhouettes agree up to the polygon's rim.
    assert all(p["iou"] > 0.97 and p["boundary_f"] > 0.98 for p in good), good
    # Same geometry and shading model as the photo: the shaded render matches it closely.
    assert all(p["ssim"] > 0.85 and p["psnr"] > 25 for p in good), good
    assert persons[13]["iou"] < 0.2 and persons[14]["status"] == "missing_mesh"
    # Failing list: the missing mesh (no IoU) first, then the displaced mask; nothing else.
    assert [(f["index"], f["reason"].split()[0]) for f in doc["failing"]] == [(14, "missing_mesh"), (13, "IoU")]
    s = doc["summary"]
    assert s["frames"] == 6 and s["rendered"] == 5 and s["failing"] == 2
    assert s["iou"]["n"] == 5 and s["iou"]["min"] == pytest.approx(persons[13]["iou"])
    # The person moves steadily; the render follows the mask, so there is next to no jitter.
    t = s["temporal"]["0"]
    assert t["render_change"] > 0.02 and t["jitter"] < 0.01
    # The report: failing frames before the sampled ones, charts inline, pictures on disk.
    html = (run / "eval" / "report.html").read_text()
    assert html.index("Failing frames") < html.index("frame-13") < html.index("Sampled frames")
    assert "<svg" in html and "polyline" in html
    from streamrecon.eval.report.html import person_box
    from streamrecon.eval.report.run_dir import load_manifest

    boxes = {fr.index: person_box(fr) for fr in load_manifest(run).frames}
    # the panels of the failing and sampled frames (the turntable strips have their own test)
    srcs = [s for s in re.findall(r'src="([^"]+)"', html) if not s.endswith("_turntable.jpg")]
    assert len(srcs) == 3 * len({int(s.split("_")[1]) for s in srcs}) >= 9  # 2 failing + samples
    for src in srcs:
        img = cv2.imread(str(run / "eval" / src))
        r0, r1, c0, c1 = boxes[int(src.split("_")[1])]
        # Pictures are cropped to the person's rect (+5%) and never upscaled.
        assert img is not None and img.shape[:2] == (r1 - r0, c1 - c0) and c1 - c0 < W, src
    assert "report:" in out.stdout and "2 failing" in out.stdout


def test_overlay_and_render_panels_show_the_mesh(tmp_path):
    from streamrecon.eval.report.evaluation import frame_panels
    from streamrecon.eval.report.run_dir import load_manifest

    run = make_run_dir(tmp_path / "run", n_frames=1)
    m = load_manifest(run)
    pics = frame_panels(m, m.frames[0])
    assert {k: v.shape for k, v in pics.items()} == {k: (H, W, 3) for k in ("input", "overlay", "render")}
    centre = (int(10 + 65), int(30 + 65))  # rect centre (row, col)
    assert pics["render"][centre].min() > 100 and (pics["render"][0, 0] == 24).all()
    assert pics["overlay"][centre][0] > pics["overlay"][centre][2]  # tinted orange over the grey person


@pytest.mark.parametrize("mesh_frame,fmt", [("crop", "obj"), ("image", "ply")])
def test_mesh_frame_and_format_give_the_same_metrics(tmp_path, mesh_frame, fmt):
    from streamrecon.eval.report.config import EvaluateConfig
    from streamrecon.eval.report.evaluation import evaluate_run
    from streamrecon.eval.report.run_dir import load_manifest

    cfg = EvaluateConfig()
    ref = evaluate_run(load_manifest(make_run_dir(tmp_path / "ref", n_frames=2)), cfg)
    other = evaluate_run(load_manifest(make_run_dir(tmp_path / "other", n_frames=2, mesh_frame=mesh_frame, fmt=fmt)), cfg)
    for a, b in zip(ref["frames"], other["frames"]):
        pa, pb = a["persons"][0], b["persons"][0]
        # OBJ stores 6 decimals: allow a few rim pixels of difference, nothing more.
        assert abs(pa["render_px"] - pb["render_px"]) <= 3
        assert pb["iou"] == pytest.approx(pa["iou"], abs=2e-3)


def test_user_mistakes_are_one_line_errors(tmp_path):
    out = cli("evaluate", str(tmp_path / "nope"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "not a directory" in out.stderr
    run = make_run_dir(tmp_path / "run", n_frames=1)
    doc = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(dict(doc, version=99)))
    out = cli("evaluate", str(run))
    assert out.returncode == 2 and "version 99" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    doc["frames"][0]["persons"][0]["file"] = "../../etc/passwd.obj"
    (run / "manifest.json").write_text(json.dumps(doc))
    out = cli("evaluate", str(run))
    assert out.returncode == 2 and "outside the run directory" in out.stderr
    out = cli("evaluate", str(run), "--iou-threshold", "2")
    assert out.returncode == 2 and "--iou-threshold" in out.stderr


def test_truncated_ply_is_refused_before_allocating(tmp_path):
    from streamrecon.errors import UserInputError
    from streamrecon.eval.report.run_dir import read_ply

    p = tmp_path / "m.ply"
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\n"
                  b"property float y\nproperty float z\nend_header\n" + b"\0" * 24)
    with pytest.raises(UserInputError, match="truncated"):
        read_ply(p)


def _run_available() -> bool:
    out = cli("run", "--help")
    return out.returncode == 0 and "--model" in out.stdout and "synthetic" in out.stdout


def test_run_then_evaluate_on_a_generated_clip(tmp_path):
    av = pytest.importorskip("av", reason="PyAV writes the test clip")
    if not _run_available():
        pytest.skip("`streamrecon run --model synthetic` is not available in this build")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        yy, xx = np.mgrid[:120, :160]
        for k in range(8):  # a bright blob drifting right on a dark background
            img = np.full((120, 160, 3), 30, np.uint8)
            img[((xx - 60 - 2 * k) / 22.0) ** 2 + ((yy - 60) / 40.0) ** 2 < 1] = (230, 220, 210)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    run = tmp_path / "run"
    out = cli("run", str(clip), "--out", str(run), "--model", "synthetic", "--no-progress")
    assert out.returncode == 0, out.stderr
    out = cli("evaluate", str(run), "--out", str(tmp_path / "ev"))
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["summary"]["frames"] == 8 and doc["summary"]["rendered"] == 8
    for fr in doc["frames"]:
        p = fr["persons"][0]
        # The synthetic model puts a sphere of the bright blob's area over it: the render, read
        # back through the run directory and the crop camera, must cover that many pixels.
        img = cv2.imread(str(run / f"frames/frame_{fr['index']:06d}.jpg"))
        bright = int((img.mean(axis=2) > 127).sum())
        assert abs(p["render_px"] - bright) <= 0.03 * bright, (fr["index"], p["render_px"], bright)
        if p["mask_px"] is not None:
            assert p["iou"] is not None
    assert doc["summary"]["temporal"]["0"]["render_change"] > 0  # the blob moves
    assert (tmp_path / "ev" / "report.html").is_file()


def test_fast_obj_reader_matches_meshio_reader(tmp_path):
    from streamrecon.mesh.io import read_obj
    from streamrecon.eval.report.run_dir import read_mesh, read_obj_fast

    rng = np.random.default_rng(5)
    v, f = rng.normal(size=(50, 3)), rng.integers(0, 50, (80, 3))
    for kw in ({}, {"normals": rng.normal(size=(50, 3))}, {"colors": rng.integers(0, 256, (50, 3))}):
        p = tmp_path / f"m{len(kw)}{''.join(kw)}.obj"
        write_mesh(Mesh(v, f, **kw), p)
        fast, slow = read_obj_fast(p), read_obj(p)
        assert np.array_equal(fast[0], slow.vertices) and np.array_equal(fast[1], slow.faces)
    # Layouts the fast path declines fall back to the slow reader.
    p = tmp_path / "quad.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1/1 2/2 3/3 4/4\n")
    assert read_obj_fast(p) is None
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nf 1/1/1 2/1/1 3/1/1\n")
    assert np.array_equal(read_obj_fast(p)[1], [[0, 1, 2]])
    assert np.array_equal(read_mesh(p, "image").faces, [[0, 1, 2]])


def test_fast_obj_reader_declines_interleaved_files(tmp_path):
    from streamrecon.eval.report.run_dir import read_mesh, read_obj_fast

    p = tmp_path / "mixed.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nf 1 2 3\nv 1 1 0\nf 1 3 2")
    assert read_obj_fast(p) is None  # a v line after the faces began: not mesh.io's layout
    assert np.array_equal(read_mesh(p, "image").faces, [[0, 1, 2], [0, 2, 1]])
    p.write_text("v 0 0 0\nvn 0 0 1\nv 1 0 0\nv 1 1 0\nf 1 2 3\n")
    assert read_obj_fast(p) is None
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvn 0 0 1\nf 1 2 3\n")
    assert np.array_equal(read_obj_fast(p)[1], [[0, 1, 2]])
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3\nf 1 2 3 4\n")  # a quad among triangles
    assert read_obj_fast(p) is None
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\n")  # a point cloud
    assert read_obj_fast(p)[1].shape == (0, 3)


def test_absurd_frame_size_is_refused(tmp_path):
    from streamrecon.errors import UserInputError
    from streamrecon.eval.report.run_dir import load_manifest

    run = make_run_dir(tmp_path / "run", n_frames=1)
    doc = json.loads((run / "manifest.json").read_text())
    doc["frames"][0]["width"] = 10 ** 6
    (run / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(UserInputError, match="frames\\[0\\] has a size"):
        load_manifest(run)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    run = make_run_dir(tmp_path / "run", n_frames=3, bad_frame=1)
    assert cli("evaluate", str(run), "--samples", "2").returncode == 0
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
                    f"--screenshot={shot}", (run / "eval" / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1400, 1000)
    rgb = img[..., ::-1].astype(int)
    # The page drew its pictures: the overlay's orange render tint (255, 140, 0 blended) is on screen.
    orange = (rgb[..., 0] > 150) & (rgb[..., 1] > 70) & (rgb[..., 1] < 150) & (rgb[..., 2] < 90)
    assert orange.sum() > 500


@pytest.mark.parametrize("view", ["image", "crop"])
def test_save_renders_writes_silhouette_depth_normals(tmp_path, view):
    run = make_run_dir(tmp_path / "run", n_frames=2)
    out = cli("evaluate", str(run), "--no-report", "--save-renders", view)
    assert out.returncode == 0, out.stderr
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    for fr in doc["frames"]:
        stem = run / "eval" / "renders" / f"frame_{fr['index']:06d}_p0"
        with np.load(stem.with_suffix(".npz")) as z:
            sil, depth, normals = z["silhouette"], z["depth"], z["normals"]
        assert cv2.imread(str(stem.with_suffix(".png"))).shape[:2] == sil.shape
        rect_w = fr["persons"][0]["rect"][2]
        if view == "image":
            assert sil.shape == (H, W) and sil.sum() == fr["persons"][0]["render_px"]
            nearest = -SCALE[2] * rect_w / 2  # the ellipsoid's front pole, image-frame pixels
        else:
            assert sil.shape == (512, 512)
            nearest = -SCALE[2]  # crop-frame units
        assert np.nanmin(depth) == pytest.approx(nearest, rel=2e-3)
        assert np.isnan(depth[~sil]).all() and (normals[sil][:, 2] <= 0).all()


def test_run_without_saved_inputs_still_gets_silhouette_metrics(tmp_path):
    import shutil

    run = make_run_dir(tmp_path / "run", n_frames=2)
    shutil.rmtree(run / "frames")  # as with `streamrecon run --no-save-inputs`
    out = cli("evaluate", str(run), "--samples", "1")
    assert out.returncode == 0, out.stderr
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    for fr in doc["frames"]:
        p = fr["persons"][0]
        assert not fr["has_input"] and p["iou"] > 0.97 and p["ssim"] is None and p["psnr"] is None
    assert doc["summary"]["ssim"] is None and (run / "eval" / "report.html").is_file()


def test_svg_chart_is_well_formed_and_leaves_gaps():
    import xml.etree.ElementTree as ET

    from streamrecon.eval.report.html import sample_frames
    from streamrecon.eval.report.svg import line_chart

    svg = line_chart([0, 1, 2, 3, 4, 5], [("a", [0.9, None, 0.8, 0.7, float("nan"), 0.95]), ("b & <c>", [1, 1, 1, 1, 1, 1])],
                     "t < 1", y_range=(0, 1), threshold=0.75, highlight=[3])
    root = ET.fromstring(svg)  # escaping: names and title with & and < still parse
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    # Series a: runs [2, 3] (a polyline) and the isolated points 0 and 5 (dots); series b: one line.
    assert sorted(len(p.get("points").split()) for p in lines) == [2, 6]
    red = [c for c in root.findall(f"{ns}circle") if c.get("fill") == "#d62728"]
    assert len(red) == 1  # the highlighted failing point
    assert sample_frames(100, 5) == [0, 25, 50, 74, 99] and sample_frames(3, 8) == [0, 1, 2] and sample_frames(0, 4) == []


def test_person_box_crops_to_the_rects():
    from streamrecon.eval.report.html import person_box
    from streamrecon.eval.report.run_dir import FrameEntry, PersonEntry

    fr = FrameEntry(index=0, time=None, width=200, height=100, frame_file=None,
                    persons=(PersonEntry(0, "a.obj", (50.0, 20.0, 40.0, 40.0)), PersonEntry(1, "b.obj", (150.0, -30.0, 80.0, 80.0))))
    assert person_box(fr) == (0, 65, 41, 200)  # union x 50..230, y -30..60, grown 5% (9, 4.5 px), clipped
    assert person_box(FrameEntry(0, None, 200, 100, None, ())) == (0, 100, 0, 200)
    off = FrameEntry(0, None, 200, 100, None, (PersonEntry(0, "a.obj", (500.0, 0.0, 50.0, 50.0)),))
    assert person_box(off) == (0, 100, 0, 200)


def test_empty_mesh_is_failing_with_its_reason(tmp_path):
    from streamrecon.eval.report.config import EvaluateConfig
    from streamrecon.eval.report.evaluation import evaluate_run
    from streamrecon.eval.report.run_dir import load_manifest

    run = make_run_dir(tmp_path / "run", n_frames=2)
    (run / "meshes" / "frame_000011_p0.obj").write_text("")  # a reconstruction that found no surface
    doc = evaluate_run(load_manifest(run), EvaluateConfig())
    p = doc["frames"][1]["persons"][0]
    assert p["status"] == "ok" and p["render_px"] == 0 and p["iou"] == 0.0
    assert [f["reason"].split(":")[0] for f in doc["failing"]] == ["empty render"]
