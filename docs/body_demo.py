"""Make docs/body_demo.png: real photos and video frames -> people (the product's finder) -> fitted
body -> clothed mesh of the mask-only and of the body-reading embedded model, each seen from the
front, the side (90 degrees) and the back. One row per person:

    input crop | fitted body (overlay) | body front/side | mask-only front/side/back | body model front/side/back

Also prints, per person, the fit's quality without ground truth: the median distance of the
fitted body's projected landmarks to BlazePose's keypoints (% of body height) and the share of its
projected silhouette inside the person mask.

    .venv/bin/python docs/body_demo.py [--body-weights PATH] [--mask-weights PATH] [--resolution 256]
        [--out docs/body_demo.png] [--json docs/body_demo.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
LABELME = Path("/usr/share/doc/labelme-examples/examples/instance_segmentation/data_annotated")
TILE = 200


def sources():
    """(name, RGB image) of the photos, and of a few frames of the carphone clip."""
    for name in ("astronaut.png", "grace_hopper.jpg"):
        bgr = cv2.imread(str(MEDIA / name))
        if bgr is not None:
            yield name.split(".")[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for name in ("2011_000003.jpg", "2011_000006.jpg"):
        bgr = cv2.imread(str(LABELME / name))
        if bgr is not None:
            yield "labelme_" + name.split(".")[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    video = MEDIA / "carphone_pristine.mp4"
    if video.exists():
        import av

        with av.open(str(video)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                if i in (40, 100):
                    yield f"carphone_{i:03d}", frame.to_ndarray(format="rgb24")


def turned(mesh, degrees: float):
    """``mesh`` (image frame) turned about the vertical axis through its centroid."""
    from streamrecon.types import Mesh

    v = mesh.vertices.astype(np.float64)
    c = v.mean(0)
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return Mesh(((v - c) @ rot.T + c).astype(np.float32), mesh.faces, frame="image", rect=mesh.rect)


def frame_of(meshes):
    """A square rect (image pixels) framing every mesh of ``meshes`` with a 6% margin."""
    v = np.concatenate([m.vertices[:, :2] for m in meshes if m is not None and m.num_faces])
    lo, hi = v.min(0), v.max(0)
    c, side = (lo + hi) / 2, float((hi - lo).max()) * 1.12
    return (float(c[0] - side / 2), float(c[1] - side / 2), side, side)


def shaded(mesh, rect, image_shape):
    """The mesh (image frame) rendered in the crop view of ``rect``, TILE pixels, shaded grey."""
    from streamrecon.eval.render import CropCamera, render_mesh

    if mesh is None or mesh.num_faces == 0:
        return np.full((TILE, TILE, 3), 255, np.uint8)
    r = render_mesh(mesh, CropCamera(rect, image_shape[:2]), "crop", crop_size=TILE)
    g = (np.clip(r.shaded, 0, 1) * 255).astype(np.uint8)
    return np.where(r.fragments.mask[..., None], np.repeat(g[..., None], 3, 2), 255).astype(np.uint8)


def crop_view(image, rect):
    from streamrecon.models.embedded.model import crop_affine

    return cv2.warpAffine(image, crop_affine(rect, TILE), (TILE, TILE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def overlay(image, rect, fit, faces):
    """The input crop with the fitted body's silhouette tinted and its landmarks dotted."""
    from streamrecon.models.embedded.model import crop_affine

    view = crop_view(image, rect).copy()
    m = cv2.invertAffineTransform(crop_affine(rect, TILE))
    xy = fit.vertices[:, :2] @ m[:, :2].T + m[:, 2]
    tint = np.zeros(view.shape[:2], np.uint8)
    for tri in faces:
        cv2.fillConvexPoly(tint, np.round(xy[tri]).astype(np.int32), 1)
    view[tint > 0] = (0.5 * view[tint > 0] + [0, 90, 120]).astype(np.uint8)
    for x, y in fit.landmarks[:, :2] @ m[:, :2].T + m[:, 2]:
        cv2.circle(view, (int(x), int(y)), 2, (255, 40, 40), -1)
    return view


def views(meshes, shape, angles=(0, 90, 180)):
    """Each mesh of ``meshes`` seen at each of ``angles`` (degrees about the vertical axis), all the
    meshes of one angle framed alike: {angle: [tile per mesh]}."""
    out = {}
    for a in angles:
        turned_meshes = [turned(m, a) for m in meshes]
        rect = frame_of(turned_meshes)
        out[a] = [shaded(m, rect, shape) for m in turned_meshes]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--body-weights", default=None, help="body-reading embedded weights (default: the shipped default)")
    ap.add_argument("--mask-weights", default=None, help="mask-only embedded weights (default: the shipped mask-only)")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--out", default=str(ROOT / "docs" / "body_demo.png"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from streamrecon.body.fit import FitConfig
    from streamrecon.body.params import body_mesh
    from streamrecon.body.tracker import BodyTracker
    from streamrecon.mesh.coords import mesh_to_frame
    from streamrecon.models.embedded.model import MASK_ONLY_WEIGHTS, load_default, load_embedded
    from streamrecon.people import PeopleConfig, PeopleFinder
    from streamrecon.recon import ReconConfig, reconstruct_person
    from streamrecon.types import Frame

    body_model = load_embedded(a.body_weights) if a.body_weights else load_default()
    mask_model = load_embedded(a.mask_weights or MASK_ONLY_WEIGHTS)
    rows, report = [], []
    cfg = ReconConfig(resolution=a.resolution)
    for name, image in sources():
        crops = PeopleFinder(PeopleConfig(max_people=3)).find(Frame(0, image, 0.0))
        tracker = BodyTracker(FitConfig.for_reconstruct(), smooth=False)
        tracker.update(crops, 0.0)
        for crop in crops:
            if crop.body is None:
                continue
            meshes = [mesh_to_frame(reconstruct_person(m, image, crop.rect, crop.mask, cfg, crop.body), "image", crop.rect)
                      for m in (mask_model, body_model)]
            b = views([body_mesh(crop.body, crop.rect)], image.shape, (0, 90))
            v = views(meshes, image.shape)  # both models' meshes framed alike, view by view
            tiles = [crop_view(image, crop.rect), overlay(image, crop.rect, crop.body, tracker.faces),
                     b[0][0], b[90][0], v[0][0], v[90][0], v[180][0], v[0][1], v[90][1], v[180][1]]
            rows.append(np.concatenate(tiles, 1))
            report.append({"source": name, "person": crop.person_id,
                           "reprojection_error_pct": round(float(crop.body.reprojection_error), 3),
                           "mask_inside": None if crop.body.mask_inside is None else round(float(crop.body.mask_inside), 3),
                           "faces_mask_only": meshes[0].num_faces, "faces_body": meshes[1].num_faces})
            print(json.dumps(report[-1]))
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    labels = ["input", "fitted body", "body front", "body side", "mask-only front", "side", "back",
              "with body front", "side", "back"]
    for k, text in enumerate(labels):
        cv2.putText(header, text, (k * TILE + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    out = np.concatenate([header, *rows], 0)
    cv2.imwrite(a.out, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
