"""reconstruct_person: encode once, octree (or dense) + marching cubes + cleanup + normals/colours,
in the requested frame."""
from dataclasses import replace

import numpy as np
import pytest

from streamrecon.mesh.normals import mesh_area_volume
from streamrecon.recon import ReconConfig, reconstruct_person
from streamrecon.testing.sphere_model import SphereModel
from paths import MEDIA  # noqa: E402


class CountingModel(SphereModel):
    def __init__(self):
        super().__init__()
        self.encodes = 0
        self.points = 0

    def encode(self, image, rect, mask=None):
        self.encodes += 1
        return super().encode(image, rect, mask)

    def query(self, features, points):
        self.points += len(points)
        return super().query(features, points)


def _image():
    import cv2

    img = np.zeros((120, 160, 3), np.uint8)
    cv2.circle(img, (80, 60), 30, (255, 200, 100), -1)
    return img


def test_octree_and_dense_give_the_same_mesh():
    img, rect = _image(), (20.0, 0.0, 120.0, 120.0)
    m = CountingModel()
    a = reconstruct_person(m, img, rect, cfg=ReconConfig(resolution=64))
    assert m.encodes == 1 and m.points == a.meta["num_queries"] < 64**3 / 2
    b = reconstruct_person(m, img, rect, cfg=ReconConfig(resolution=64, evaluator="dense"))
    assert b.meta["num_queries"] == 64**3
    assert a.num_vertices == b.num_vertices and a.num_faces == b.num_faces
    va = a.vertices[np.lexsort(a.vertices.T[::-1])]
    vb = b.vertices[np.lexsort(b.vertices.T[::-1])]
    assert np.abs(va - vb).max() <= 1e-6
    assert a.frame == "crop" and a.normals is not None and a.colors is None
    assert {"encode_s", "octree_s", "mc_s", "cleanup_s", "normals_s"} <= set(a.meta["timings"])


def test_image_frame_with_colours():
    img, rect = _image(), (20.0, 0.0, 120.0, 120.0)
    mesh = reconstruct_person(SphereModel(), img, rect, cfg=ReconConfig(resolution=48, frame="image", colors=True))
    assert mesh.frame == "image" and tuple(mesh.rect) == rect
    # the disc of radius 30 px around (80, 60): a ball of the same radius in pixels
    c = mesh.vertices.mean(0)
    assert abs(c[0] - 80) < 1.5 and abs(c[1] - 60) < 1.5 and abs(c[2]) < 1.5
    assert abs(np.linalg.norm(mesh.vertices - c, axis=1).mean() - 30) < 1.5
    assert mesh_area_volume(mesh.vertices, mesh.faces)[1] > 0  # still outward after the y flip
    # front-view colours: vertices inside the disc's silhouette read the disc colour
    assert (np.abs(mesh.colors.astype(int) - [255, 200, 100]).max(1) <= 60).mean() > 0.8


def test_config_is_validated():
    with pytest.raises(ValueError, match="evaluator"):
        ReconConfig(evaluator="magic")
    with pytest.raises(ValueError, match="frame"):
        ReconConfig(frame="world")
    with pytest.raises(ValueError, match="image"):
        reconstruct_person(SphereModel(), np.zeros((4, 4)), (0, 0, 4, 4))


def test_embedded_model_octree_equals_dense():
    # a real network (the embedded default model) through reconstruct_person: same mesh
    torch = pytest.importorskip("torch")
    try:
        from streamrecon.api import load_model

        model = load_model(None)
    except Exception as exc:  # the embedded model belongs to another module; absent -> skip
        pytest.skip(f"embedded model unavailable: {exc}")
    from streamrecon.mesh import CleanupConfig

    import cv2

    photo = MEDIA / "astronaut.png"
    if not photo.exists():
        pytest.skip(f"{photo} not found")
    img = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    mask = np.zeros(img.shape[:2], bool)
    mask[50:500, 100:400] = True
    keep = CleanupConfig(min_component_fraction=0.0, min_visible_fraction=0.0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the evaluators alone (the silhouette fill, on top of either, is compared below)
        cfg = ReconConfig(resolution=96, cleanup=keep, silhouette_fill=False)
        a = reconstruct_person(model, img, (0, 0, 512, 512), mask, cfg)
        b = reconstruct_person(model, img, (0, 0, 512, 512), mask, replace(cfg, evaluator="dense"))
        fa = reconstruct_person(model, img, (0, 0, 512, 512), mask, replace(cfg, silhouette_fill=True))
        fb = reconstruct_person(model, img, (0, 0, 512, 512), mask, replace(cfg, silhouette_fill=True, evaluator="dense"))
    finally:
        torch.set_num_threads(before)
    assert a.num_vertices > 0 and a.meta["num_queries"] < 0.5 * b.meta["num_queries"]
    # The shipped weights leave detached one-voxel-thin slabs of occupancy behind the body (a known
    # artefact, docs/embedded_model.md). A slab thinner than the coarse lattice and unconnected to
    # any surface the octree found is not seen (docs/octree.md), so the octree mesh is the dense
    # mesh minus such pieces: every component it finds is identical to a dense component, and the
    # body (the largest component) is always among them.
    comps_a, comps_b = _components(a), _components(b)
    assert set(comps_a) <= set(comps_b), "a component found by the octree differs from the dense one"
    assert max(comps_a) == max(comps_b), "the body differs between octree and dense"
    missed = sum(n for n, _ in comps_b) - sum(n for n, _ in comps_a)
    assert missed <= 0.15 * b.num_vertices
    # With the fill: columns the octree saw empty but the dense grid holds such a slab in are
    # filled by the octree only, and a column's peak can fall in another mode; the silhouettes
    # still agree (IoU >= 0.99), and the fill covers more of the mask (where the network's peak
    # reaches the floor: this rectangle is no person's outline).
    from streamrecon.training.synth.render import render

    pytest.importorskip("trimesh", reason="the train extra (trimesh) renders the silhouettes")
    sil = {k: render(m.vertices.astype(np.float64), m.faces.astype(np.int64), 96).mask for k, m in
           (("a", a), ("fa", fa), ("fb", fb))}
    iou = lambda p, q: (p & q).sum() / max((p | q).sum(), 1)  # noqa: E731
    assert iou(sil["fa"], sil["fb"]) >= 0.99
    # the fill adds silhouette and takes none away (how much it adds depends on the weights: +52
    # pixels of 96^2 with one set, over 100 with another)
    assert sil["fa"].sum() >= sil["a"].sum() + 20
    assert (sil["a"] & ~sil["fa"]).sum() <= 0.01 * sil["a"].sum()


def _components(mesh):
    """{(vertex count, sorted vertices rounded to 1e-5 as bytes)} of a mesh's connected components."""
    from streamrecon.mesh.cleanup import connected_components

    lab = connected_components(mesh.faces, mesh.num_vertices)
    out = []
    for label in np.unique(lab):
        v = mesh.vertices[lab == label]
        v = np.round(v[np.lexsort(v.T[::-1])].astype(np.float64), 5)
        out.append((len(v), v.tobytes()))
    return out


def test_the_model_sets_the_iso_level_unless_the_config_does():
    """``ReconConfig.level`` None = the model's ``iso_level`` (0.5 without one); a set level wins."""

    class Radial:
        name, device = "radial", "cpu"

        def __init__(self, iso_level=None):
            if iso_level is not None:
                self.iso_level = iso_level

        def encode(self, image, rect, mask=None):
            return None

        def query(self, features, points):
            return (1.0 - points.norm(dim=1)).clamp(0, 1)  # level L <-> a sphere of radius 1 - L

    img = np.zeros((32, 32, 3), np.uint8)
    cfg = ReconConfig(resolution=48, normals=False, frame="crop")
    radius = lambda m: float(np.linalg.norm(m.vertices, axis=1).mean())  # noqa: E731
    assert abs(radius(reconstruct_person(Radial(), img, (0, 0, 32, 32), None, cfg)) - 0.5) < 0.02
    assert abs(radius(reconstruct_person(Radial(0.7), img, (0, 0, 32, 32), None, cfg)) - 0.3) < 0.02
    assert abs(radius(reconstruct_person(Radial(0.7), img, (0, 0, 32, 32), None, replace(cfg, level=0.4))) - 0.6) < 0.02


def test_embedded_weights_carry_their_iso_level(tmp_path):
    pytest.importorskip("torch")
    from streamrecon.models.embedded.model import load_embedded, save_embedded
    from streamrecon.models.embedded.net import EmbeddedNet, NetConfig

    net = EmbeddedNet(NetConfig(in_res=64, widths=(8, 8, 8, 8, 8), feat=16, mlp=(16,), z_freqs=2))
    assert load_embedded(save_embedded(tmp_path / "a.pt", net, {"iso_level": 0.55})).iso_level == 0.55
    assert load_embedded(save_embedded(tmp_path / "b.pt", net, {})).iso_level is None
    assert load_embedded(save_embedded(tmp_path / "c.pt", net, {"iso_level": 3})).iso_level is None  # nonsense: ignored
