"""`streamrecon reconstruct` and `streamrecon.reconstruct_image`: the fixture through the real
command gives the reference's mesh; frames and user errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import streamrecon  # noqa: E402
from streamrecon.cli import main  # noqa: E402
from streamrecon.errors import UserInputError  # noqa: E402
from streamrecon.mesh.io import read_obj  # noqa: E402
from paths import FIXTURES  # noqa: E402

FIX = FIXTURES / "pifuhd_small"


@pytest.mark.skipif(not (FIX / "pifuhd_small.pt").is_file(), reason=f"fixture {FIX} not present")
def test_cli_on_fixture_writes_the_reference_mesh(tmp_path):
    out = tmp_path / "sub" / "person.obj"
    cmd = [sys.executable, "-m", "streamrecon.cli", "reconstruct", str(FIX / "input" / "person.png"),
           "--rect", str(FIX / "input" / "person_rect.txt"), "--checkpoint", str(FIX / "pifuhd_small.pt"),
           "--resolution", "128", "--frame", "crop", "--octree", "reference", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "8501 vertices, 16868 faces" in res.stdout
    ours, ref = read_obj(out), read_obj(FIX / "mesh_res128.obj")
    assert (ours.num_vertices, ours.num_faces) == (ref.num_vertices, ref.num_faces)
    np.testing.assert_allclose(ours.vertices, ref.vertices, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(ours.faces, ref.faces)


class _Ball:
    """An ImplicitModel double: a ball of radius 0.5 at the crop centre (no network)."""

    name = "ball"
    device = "cpu"

    def encode(self, image, rect, mask=None):
        return None

    def query(self, features, points):
        return torch.sigmoid((0.5 - points.norm(dim=1)) * 30)


def _signed_volume(mesh):
    v, f = mesh.vertices.astype(np.float64), mesh.faces
    return np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6


def test_reconstruct_image_frames_with_a_model_double():
    image = np.zeros((60, 80, 3), np.uint8)
    crop = streamrecon.reconstruct_image(image, rect=(10, -20, 100, 100), model=_Ball(), resolution=64,
                                         frame="crop", method="reference")
    img = streamrecon.reconstruct_image(image, rect=(10, -20, 100, 100), model=_Ball(), resolution=64,
                                        frame="image", method="reference")
    assert crop.frame == "crop" and img.frame == "image" and img.rect == (10, -20, 100, 100)
    assert crop.num_faces == img.num_faces > 0
    # crop frame: a ball of radius 0.5 at the origin, outward-oriented
    assert _signed_volume(crop) == pytest.approx(4 / 3 * np.pi * 0.5 ** 3, rel=0.05)
    # image frame: centre (10 + 50, -20 + 50), radius 25 pixels, still outward-oriented
    lo, hi = img.vertices.min(0), img.vertices.max(0)
    np.testing.assert_allclose((lo + hi) / 2, [60, 30, 0], atol=1.0)
    np.testing.assert_allclose(hi - lo, [50, 50, 50], atol=2.0)
    assert _signed_volume(img) == pytest.approx(4 / 3 * np.pi * 25.0 ** 3, rel=0.05)


def test_reconstruct_image_without_rect_uses_centred_square():
    mesh = streamrecon.reconstruct_image(np.zeros((40, 100), np.uint8), model=_Ball(), resolution=64,
                                         method="reference")
    assert mesh.rect == (0, -30, 100, 100)


def test_reconstruct_image_argument_errors():
    with pytest.raises(UserInputError, match="frame"):
        streamrecon.reconstruct_image(np.zeros((8, 8, 3), np.uint8), model=_Ball(), frame="world")
    with pytest.raises(UserInputError, match="resolution"):
        streamrecon.reconstruct_image(np.zeros((8, 8, 3), np.uint8), model=_Ball(), resolution=0)
    with pytest.raises(UserInputError, match=">= 64"):
        streamrecon.reconstruct_image(np.zeros((8, 8, 3), np.uint8), model=_Ball(), resolution=32, method="reference")
    with pytest.raises(UserInputError, match="image"):
        streamrecon.reconstruct_image(12, model=_Ball())


@pytest.mark.parametrize("argv, needle", [
    (["missing.png", "--out", "m.obj"], "image not found"),
    (["IMG", "--rect", "1 2 3", "--out", "m.obj"], "not 'x,y,w,h'"),
    (["IMG", "--rect", "BADRECT", "--out", "m.obj"], "expected 4 numbers"),
    (["IMG", "--rect", "MULTIRECT", "--person", "3", "--out", "m.obj"], "has 2 rect(s)"),
    (["IMG", "--out", "m.txt"], "use a .obj or .ply"),
])
def test_cli_user_errors_are_one_line(tmp_path, capsys, argv, needle):
    import cv2

    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "bad.txt").write_text("1 2 three 4\n")
    (tmp_path / "multi.txt").write_text("0 0 8 8\n1 1 6 6\n")
    subst = {"IMG": str(tmp_path / "img.png"), "BADRECT": str(tmp_path / "bad.txt"),
             "MULTIRECT": str(tmp_path / "multi.txt"), "missing.png": str(tmp_path / "missing.png"),
             "m.obj": str(tmp_path / "m.obj"), "m.txt": str(tmp_path / "m.txt")}
    code = main(["reconstruct"] + [subst.get(a, a) for a in argv])
    err = capsys.readouterr().err
    assert code == UserInputError.exit_code
    assert err.startswith("streamrecon: error: ") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "m.obj").exists()


def test_cli_inline_rect_and_help():
    from streamrecon.cli.reconstruct import _parse_rect

    assert _parse_rect("10,20,30,30", 0, 100, 100) == (10, 20, 30, 30)
    assert _parse_rect(None, 0, 100, 50) == (-25, 0, 100, 100)
    res = subprocess.run([sys.executable, "-m", "streamrecon.cli", "reconstruct", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for flag in ("--rect", "--checkpoint", "--resolution", "--frame", "--octree", "--out"):
        assert flag in res.stdout


def test_default_method_uses_the_fast_reconstruction_when_present():
    pytest.importorskip("streamrecon.recon", reason="fast reconstruction (streamrecon.recon) not in this build")
    ref = streamrecon.reconstruct_image(np.zeros((60, 80, 3), np.uint8), rect=(10, -20, 100, 100), model=_Ball(),
                                        resolution=64, method="reference")
    fast = streamrecon.reconstruct_image(np.zeros((60, 80, 3), np.uint8), rect=(10, -20, 100, 100), model=_Ball(),
                                         resolution=64)
    assert fast.frame == "image" and fast.meta.get("octree") != "reference"
    assert _signed_volume(fast) == pytest.approx(_signed_volume(ref), rel=0.03)
    np.testing.assert_allclose(fast.vertices.min(0), ref.vertices.min(0), atol=1.5)
    np.testing.assert_allclose(fast.vertices.max(0), ref.vertices.max(0), atol=1.5)


def test_device_errors_are_one_line():
    from streamrecon.api import load_model
    from streamrecon.errors import BackendUnavailableError

    with pytest.raises(UserInputError, match="not a torch device"):
        load_model(None, device="toaster")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
            load_model(None, device="cuda")


def _needs_people():
    from streamrecon.errors import BackendUnavailableError
    from streamrecon.people.blazepose import model_paths

    try:
        model_paths()
        import ai_edge_litert  # noqa: F401
    except (BackendUnavailableError, ImportError) as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")


def _vertices(stdout: str) -> list:
    import re

    return [int(v) for v in re.findall(r"(\d+) vertices", stdout)]


def test_reconstruct_finds_the_person_in_colour_and_in_grey(tmp_path, capsys):
    """No --rect: the person is found as `run` finds them (crop and mask), in a colour photo and
    in the same photo in grey (which once gave an 8-vertex mesh from a GrabCut of the whole
    image): the two meshes are of one size."""
    import cv2

    from paths import MEDIA

    _needs_people()
    src = cv2.imread(str(MEDIA / "astronaut.png"))
    cv2.imwrite(str(tmp_path / "colour.png"), src)
    cv2.imwrite(str(tmp_path / "grey.png"), cv2.cvtColor(src, cv2.COLOR_BGR2GRAY))
    counts = {}
    for name in ("colour", "grey"):
        assert main(["reconstruct", str(tmp_path / f"{name}.png"), "--out", str(tmp_path / f"{name}.obj"),
                     "--resolution", "64"]) == 0
        out = capsys.readouterr().out
        assert "person 0" in out, out
        (counts[name],) = _vertices(out)
        assert read_obj(tmp_path / f"{name}.obj").num_vertices == counts[name]
    assert counts["colour"] > 500 and 0.6 < counts["grey"] / counts["colour"] < 1.6, counts


def test_reconstruct_uses_the_masks_of_run():
    """`reconstruct` and `run` find a photo's people with the same finder: identical crops and masks."""
    from paths import MEDIA

    from streamrecon.api import find_people, resolve_image
    from streamrecon.stream.stages import StageConfig, _people_finder
    from streamrecon.types import Frame

    _needs_people()
    image = resolve_image(MEDIA / "grace_hopper.jpg")
    ours = find_people(image)
    theirs = _people_finder(StageConfig())(Frame(0, image, 0.0))
    assert len(ours) == len(theirs) == 1
    assert np.array_equal(ours[0].mask, theirs[0].mask) and ours[0].rect == theirs[0].rect


def test_reconstruct_one_mesh_per_person(tmp_path, capsys):
    """Two men in labelme's 2011_000003: person.obj becomes person_p0.obj and person_p1.obj;
    --person 1 writes person.obj for him alone; an absent id or an empty image is one line."""
    from pathlib import Path

    _needs_people()
    photo = Path("/usr/share/doc/labelme-examples/examples/instance_segmentation/data_annotated/2011_000003.jpg")
    if not photo.exists():
        pytest.skip("labelme examples absent: `apt-get install labelme-examples` (Debian) provides them")
    out = tmp_path / "person.obj"
    assert main(["reconstruct", str(photo), "--out", str(out), "--resolution", "64"]) == 0
    text = capsys.readouterr().out
    assert "person 0" in text and "person 1" in text
    assert (tmp_path / "person_p0.obj").exists() and (tmp_path / "person_p1.obj").exists() and not out.exists()
    left, right = (read_obj(tmp_path / f"person_p{i}.obj") for i in (0, 1))
    assert left.vertices[:, 0].mean() < 300 < right.vertices[:, 0].mean()  # image frame: ids from the left
    assert main(["reconstruct", str(photo), "--out", str(out), "--resolution", "64", "--person", "1"]) == 0
    assert "person 1" in capsys.readouterr().out and out.exists()
    assert main(["reconstruct", str(photo), "--out", str(tmp_path / "x.obj"), "--person", "5"]) == UserInputError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("streamrecon: error: ") and err.count("\n") == 1 and "2 person(s) found" in err
    import cv2

    cv2.imwrite(str(tmp_path / "empty.png"), np.full((200, 300, 3), 90, np.uint8))
    assert main(["reconstruct", str(tmp_path / "empty.png"), "--out", str(tmp_path / "e.obj")]) == UserInputError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no person found" in err and "--rect" in err
    assert not (tmp_path / "e.obj").exists()
