"""`streamrecon evaluate` on run directories with fitted bodies (our own body model in 2 cm of
clothes, moving between two poses; no anny needed): the 3D figures in metrics.json, the failing
rule, the 3D pictures and turntable in the report, and runs without bodies saying what they lack."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from body_scenes import body_run_dir

cv2 = pytest.importorskip("cv2", reason="OpenCV reads and writes the run directory's images")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "streamrecon.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    run = body_run_dir(tmp_path_factory.mktemp("run3d") / "run", n_frames=4, flat=(2,))
    out = cli("evaluate", str(run), "--samples", "2", "--turntable", "2", "--body-points", "800")
    assert out.returncode == 0, out.stderr
    return run, out, json.loads((run / "eval" / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_figures_and_failing_rule_in_metrics(evaluated):
    run, out, doc = evaluated
    persons = [fr["persons"][0] for fr in doc["frames"]]
    good = [p for k, p in enumerate(persons) if k != 2]
    assert all(p["depth_status"] == "ok" and p["body_points"] > 600 for p in persons)
    assert all(p["body_covered"] > 0.95 and p["thickness"]["min_ratio"] > 0.9 and p["depth_failing"] is None for p in good)
    flat = persons[2]
    assert flat["body_covered"] < 0.55 and flat["thickness"]["min_ratio"] < 0.35 and "sticks out" in flat["depth_failing"]
    # the flattened frame still has a perfect silhouette: only the 3D rule catches it
    assert flat["iou"] > 0.95
    assert [(f["index"], f["kinds"]) for f in doc["failing"]] == [(2, ["3d"])]
    d = doc["summary"]["depth"]
    assert d["judged"] == 4 and d["failing"] == 1 and d["covered_threshold"] == 0.55 and doc["summary"]["not_made"] == []
    assert d["body_covered"]["min"] == pytest.approx(flat["body_covered"])
    # temporal: the mesh change with the body's motion removed is small except into and out of
    # the flattened frame; the body moves smoothly (interpolated poses)
    ch = [p["mesh_change_cm"] for p in persons]
    assert ch[0] is None and ch[1] < 1.0 and ch[2] > 3.0 and ch[3] > 3.0
    assert all(p["mesh_change_raw_cm"] > p["mesh_change_cm"] for p in (persons[1],))
    acc = [p["body_accel_mm"] for p in persons]
    assert acc[0] is None and acc[3] is None and all(a is not None and a < 30 for a in acc[1:3])
    assert "3D against the fitted bodies: 1 of 4 failing" in out.stdout


def test_report_shows_failing_frames_in_3d_and_a_turntable(evaluated):
    run, _, doc = evaluated
    html = (run / "eval" / "report.html").read_text()
    srcs = re.findall(r'src="([^"]+)"', html)
    views = [s for s in srcs if "_3d_" in s]
    assert sorted(views) == [f"images/frame_000002_p0_3d_{k}.jpg" for k in ("back", "front", "input", "side")]
    strips = [s for s in srcs if s.endswith("_turntable.jpg")]
    assert len(strips) == 2
    for s in views + strips:
        assert cv2.imread(str(run / "eval" / s)) is not None

    def shares(name):
        """(red share, blue share) of the picture's person pixels: body outside / inside the mesh."""
        img = cv2.imread(str(run / "eval" / name))[..., ::-1].astype(int)
        person = (np.abs(img - 250).sum(-1) > 30)
        red = (img[..., 0] > 170) & (img[..., 1] < 110) & (img[..., 2] < 110)
        blue = (img[..., 2] > img[..., 0] + 40) & ~red
        return red.sum() / person.sum(), blue.sum() / person.sum()

    # the flattened mesh: the body sticks out of it (red) from the front, the side and the back
    for view in ("front", "side", "back"):
        assert shares(f"images/frame_000002_p0_3d_{view}.jpg")[0] > 0.4, view
    # frames 0 and 3 (the turntable's): the clothed body holds the body at every angle (blue, no red)
    for name in strips:
        red, blue = shares(name)
        assert red < 0.01 and blue > 0.3, (name, red, blue)  # (the input panel counts as person too)
    strip = cv2.imread(str(run / "eval" / strips[0]))
    assert strip.shape[1] > 8 * strip.shape[0]  # the input and 8 angles side by side
    assert "3D: share of the fitted body covered" in html and "Turntable" in html
    assert html.index("Failing frames") < html.index("_3d_front") < html.index("Sampled frames")


def test_run_without_bodies_says_what_it_could_not_make(tmp_path):
    run = body_run_dir(tmp_path / "run", n_frames=3, flat=(1,), bodies=False)
    out = cli("evaluate", str(run), "--samples", "1", "--turntable", "1")
    assert out.returncode == 0, out.stderr
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    assert doc["summary"]["depth"]["judged"] == 0 and doc["failing"] == []  # the flat mesh goes unnoticed
    (item,) = doc["summary"]["not_made"]
    assert "body_covered" in item["figures"] and "no fitted bodies" in item["reason"]
    assert all(p["depth_status"] == "no_body" and p["body_covered"] is None for fr in doc["frames"] for p in fr["persons"])
    assert "not made: body_covered" in out.stdout
    html = (run / "eval" / "report.html").read_text()
    assert "Not made:" in html and "no fitted bodies" in html
    assert re.findall(r'src="([^"]+_turntable\.jpg)"', html)  # the mesh alone still turns


def test_malformed_body_is_reported_not_fatal(tmp_path):
    run = body_run_dir(tmp_path / "run", n_frames=2)
    doc = json.loads((run / "manifest.json").read_text())
    doc["frames"][1]["persons"][0]["body"] = {"betas": "nonsense"}
    (run / "manifest.json").write_text(json.dumps(doc))
    out = cli("evaluate", str(run), "--no-report")
    assert out.returncode == 0, out.stderr
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert [p["depth_status"] for fr in m["frames"] for p in fr["persons"]] == ["ok", "unreadable_body"]
    assert "malformed" in m["summary"]["not_made"][0]["reason"]


@pytest.mark.parametrize("flag,value", [("--covered-threshold", "1.5"), ("--body-tolerance", "-1"),
                                        ("--thickness-bands", "0"), ("--body-points", "3")])
def test_bad_3d_settings_are_one_line_errors(tmp_path, flag, value):
    out = cli("evaluate", str(tmp_path), flag, value)
    assert out.returncode == 2 and flag in out.stderr and "Traceback" not in out.stderr


def test_crop_frame_meshes_give_the_same_3d_figures(tmp_path):
    from streamrecon.eval.report.config import EvaluateConfig
    from streamrecon.eval.report.evaluation import evaluate_run
    from streamrecon.eval.report.run_dir import load_manifest

    cfg = EvaluateConfig(body_points=400)
    a = evaluate_run(load_manifest(body_run_dir(tmp_path / "a", n_frames=2)), cfg)
    b = evaluate_run(load_manifest(body_run_dir(tmp_path / "b", n_frames=2, mesh_frame="crop")), cfg)
    for fa, fb in zip(a["frames"], b["frames"]):
        pa, pb = fa["persons"][0], fb["persons"][0]
        for key in ("body_covered", "body_inside", "body_dist_mean_cm"):
            assert pb[key] == pytest.approx(pa[key], abs=0.01)
        assert np.allclose(pb["thickness"]["ratio"], pa["thickness"]["ratio"], atol=0.02)
