"""``streamrecon detect``: files written in the reference rect format, errors as one line, and the
fallback detectors (full-frame, motion, hog) behind the same PeopleFinder."""
import json

import numpy as np
import pytest

from streamrecon.cli import main
from streamrecon.types import Frame
from streamrecon.people import PeopleConfig, PeopleFinder
from streamrecon.people.detect_io import format_rects
from paths import MEDIA  # noqa: E402

cv2 = pytest.importorskip("cv2")
MEDIA = MEDIA


def _has_blazepose():
    from streamrecon.errors import BackendUnavailableError
    from streamrecon.people.blazepose import model_paths

    try:
        model_paths()
        import ai_edge_litert  # noqa: F401
        return True
    except (BackendUnavailableError, ImportError):
        return False


needs_models = pytest.mark.skipif(not _has_blazepose(), reason="BlazePose models/LiteRT not installed "
                                  "(pip install --no-deps mediapipe==0.10.21; pip install ai-edge-litert)")


@needs_models
def test_detect_image_writes_reference_files(tmp_path, capsys):
    src = MEDIA / "grace_hopper.jpg"
    out = tmp_path / "out"
    assert main(["detect", str(src), "--out", str(out), "--background", "remove", "--background-color", "0,255,0"]) == 0
    assert "1 person detection" in capsys.readouterr().out
    rects = np.loadtxt(out / "grace_hopper_rect.txt", dtype=np.int32)  # as the reference reads it
    rects = rects[None] if rects.ndim == 1 else rects
    assert rects.shape == (1, 4) and rects[0, 2] == rects[0, 3] > 300
    mask = cv2.imread(str(out / "grace_hopper_mask_p0.png"), cv2.IMREAD_GRAYSCALE)
    net = cv2.cvtColor(cv2.imread(str(out / "grace_hopper.png")), cv2.COLOR_BGR2RGB)
    src_img = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    assert set(np.unique(mask)) <= {0, 255} and 0.2 < (mask > 0).mean() < 0.8
    assert (net[mask == 0] == [0, 255, 0]).all()  # background blanked with the chosen colour
    assert np.abs(net[mask > 0].astype(int) - src_img[mask > 0]).max() <= 2  # person untouched (PNG lossless)
    assert (out / "grace_hopper_overlay.jpg").stat().st_size > 1000
    rec = json.loads((out / "people.jsonl").read_text().splitlines()[0])
    p = rec["people"][0]
    assert p["id"] == 0 and p["crop_rule"] in ("feet", "mid-hip", "upper-body", "visible")
    # height in pixels, 2D keypoints and BlazePose's world landmarks (metres, hips at the origin)
    assert 0.5 * 600 < p["height_px"] <= 600  # grace_hopper.jpg is 600 px tall; she fills most of it
    kp, world = np.array(p["keypoints"]), np.array(p["world_landmarks"])
    assert kp.shape == (33, 3) and world.shape == (33, 3)
    assert np.abs(world[[23, 24]].mean(0)).max() < 0.1 and world[0, 1] < -0.2  # nose above the hips (y down)
    assert np.all(world == np.round(world, 3))  # mm


@needs_models
def test_detect_video_every_and_ids(tmp_path):
    out = tmp_path / "v"
    assert main(["detect", str(MEDIA / "carphone_pristine.mp4"), "--out", str(out), "--every", "5",
                 "--max-frames", "12"]) == 0
    assert len(list(out.glob("frame_*_rect.txt"))) == 12
    assert sorted(p.name for p in out.glob("frame_*_overlay.jpg")) == [f"frame_{i:06d}_overlay.jpg" for i in (0, 5, 10)]
    recs = [json.loads(line) for line in (out / "people.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(12))
    assert {p["id"] for r in recs for p in r["people"]} == {0}


def test_detect_errors_are_one_line(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "missing.png"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("streamrecon: error:") and "does not exist" in err and "\n" not in err
    assert main(["detect", str(MEDIA / "astronaut.png"), "--out", str(tmp_path), "--margin", "-1"]) == 2
    assert "margin" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["detect", str(bad), "--out", str(tmp_path / "o"), "--detector", "full-frame"]) == 2
    assert "cannot read image" in capsys.readouterr().err


def test_full_frame_detector_and_rect_format(tmp_path):
    img = np.zeros((100, 60, 3), np.uint8)
    finder = PeopleFinder(PeopleConfig(detector="full-frame"))
    (p,) = finder.find(Frame(0, img, 0.0))
    assert p.person_id == 0 and p.meta["crop_rule"] == "full-frame" and p.mask is None
    x, y, w, h = p.rect
    assert w == h == pytest.approx(100.0) and x + w / 2 == pytest.approx(30) and y + h / 2 == pytest.approx(50)
    assert format_rects([p]) == "-20 0 100 100\n"


def test_motion_detector_finds_a_moving_blob():
    finder = PeopleFinder(PeopleConfig(detector="motion", smooth=False))
    rng = np.random.default_rng(0)
    bg = rng.integers(60, 70, (120, 160, 3), dtype=np.uint8)
    found = []
    person = rng.integers(150, 255, (70, 25, 3), dtype=np.uint8)  # textured, person-sized
    for i in range(60):
        f = np.clip(bg.astype(int) + rng.integers(-2, 3, bg.shape), 0, 255).astype(np.uint8)
        if i >= 30:  # walks in after the background is learnt
            x = 3 * (i - 30)
            f[30:100, x:x + 25] = person
        people = finder.find(Frame(i, f, i / 30))
        if i < 30:
            assert people == []
        elif i >= 32:
            assert len(people) == 1, f"frame {i}"
            found.append(people[0])
    assert {p.person_id for p in found} == {0}
    last = found[-1]
    assert last.mask[65, 3 * 29 + 12] and not last.mask[5, 5]


def test_hog_detector_finds_walkers():
    """``--detector hog`` runs on any OpenCV (its HOG is ours, ``people.hog_svm``): the two
    pedestrians standing on the pavement of labelme's street frame (80-90 px tall) are found, each
    with a square crop and a GrabCut mask."""
    from pathlib import Path

    path = Path("/usr/share/doc/labelme-examples/examples/video_annotation/data_annotated/00000100.jpg")
    if not path.exists():
        pytest.skip("labelme examples absent: `apt-get install labelme-examples` (Debian) provides them")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    people = PeopleFinder(PeopleConfig(detector="hog", smooth=False)).find(Frame(0, img, 0.0))
    assert all(p.rect[2] == p.rect[3] and p.mask is not None for p in people)
    centres = sorted((p.meta["box"][0] + p.meta["box"][2]) / 2 for p in people)
    for x in (250, 482):  # by eye: a man standing at x ~ 250, a person in black at x ~ 482
        assert any(abs(c - x) < 25 for c in centres), centres


def test_missing_models_explicit_error_and_auto_fallback(monkeypatch, caplog, tmp_path):
    """Without the mediapipe wheel: --detector mediapipe fails with the install command; auto
    falls back (hog, else full-frame) with one warning naming what is missing."""
    import importlib.util

    from streamrecon.errors import BackendUnavailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match="pip install --no-deps mediapipe==0.10.21"):
        PeopleFinder(PeopleConfig(detector="mediapipe"))
    out = tmp_path / "never-created"
    assert main(["detect", str(MEDIA / "astronaut.png"), "--out", str(out), "--detector", "mediapipe"]) == 5
    assert not out.exists()
    with caplog.at_level("WARNING"):
        finder = PeopleFinder(PeopleConfig(detector="auto"))
    assert any("mediapipe models unavailable" in r.getMessage() for r in caplog.records)
    people = finder.find(Frame(0, np.zeros((40, 30, 3), np.uint8), 0.0))
    assert all(p.rect[2] == p.rect[3] for p in people)


@needs_models
def test_detect_folder_of_mixed_sizes_orientations_and_formats(tmp_path):
    """A folder of photos of different sizes, formats and orientations (one stored turned by 90
    degrees, one grey): the person in each is found."""
    folder = tmp_path / "photos"
    folder.mkdir()
    astro = cv2.imread(str(MEDIA / "astronaut.png"))
    cv2.imwrite(str(folder / "a_astronaut.png"), astro)
    cv2.imwrite(str(folder / "b_grace.bmp"), cv2.imread(str(MEDIA / "grace_hopper.jpg")))
    cv2.imwrite(str(folder / "c_camera_grey.png"), cv2.imread(str(MEDIA / "camera.png"), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(folder / "d_astronaut_turned.jpg"), cv2.rotate(cv2.resize(astro, (300, 300)), cv2.ROTATE_90_CLOCKWISE))
    out = tmp_path / "out"
    assert main(["detect", str(folder), "--out", str(out)]) == 0
    recs = {json.loads(line)["name"]: json.loads(line) for line in (out / "people.jsonl").read_text().splitlines()}
    assert sorted(recs) == ["a_astronaut", "b_grace", "c_camera_grey", "d_astronaut_turned"]
    for name, rec in recs.items():
        assert len(rec["people"]) == 1, (name, rec["people"])
