"""Make docs/embedded_demo.png: real photos -> person mask (people stage) -> embedded model mesh,
shown as input | mask | mesh (shaded, front view) | mesh (side view). Needs the train extra
(trimesh/embreex for the renders).

    python docs/embedded_demo.py [--checkpoint PATH] [--resolution 256] [--out docs/embedded_demo.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"


def find_person(image: np.ndarray):
    """(rect, mask) from the people stage, else a GrabCut fallback on a centred box."""
    try:
        from streamrecon.types import Frame
        from streamrecon.people import PeopleConfig, PeopleFinder

        people = PeopleFinder(PeopleConfig(max_people=1)).find(Frame(0, image, time.monotonic()))
        if people and people[0].mask is not None:
            return people[0].rect, people[0].mask
    except Exception as exc:  # the people stage is optional here
        print(f"people stage unavailable ({exc}); using GrabCut", file=sys.stderr)
    h, w = image.shape[:2]
    from streamrecon.models.embedded.model import grabcut_mask

    s = max(h, w)
    rect = ((w - s) / 2, (h - s) / 2, s, s)
    from streamrecon.models.embedded.model import crop_affine

    m = grabcut_mask(cv2.warpAffine(image, crop_affine(rect, 256), (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    full = cv2.warpAffine(m, cv2.invertAffineTransform(crop_affine(rect, 256)), (w, h), flags=cv2.INTER_LINEAR) > 0.5
    return rect, full


def mesh_views(model, image, rect, mask, res):
    """The product's mesh (``reconstruct_person``: the weights' iso level, the silhouette fill,
    the default cleanup) rendered front and side."""
    from streamrecon.recon import ReconConfig, reconstruct_person
    from streamrecon.training.synth.render import render, shade

    mesh = reconstruct_person(model, image, rect, mask, ReconConfig(resolution=res, normals=False))
    v, fc = mesh.vertices.astype(np.float64), mesh.faces.astype(np.int64)
    fc = fc[:, ::-1].copy()  # outward in the (left-handed) crop frame
    front = shade(render(v, fc, 256))
    c, s = np.cos(np.pi / 2), np.sin(np.pi / 2)
    side_v = v @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]).T  # turn the mesh 90 degrees about y
    side = shade(render(side_v, fc, 256))
    return front, side, len(fc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--out", default=str(ROOT / "docs" / "embedded_demo.png"))
    a = ap.parse_args(argv)
    from streamrecon.models.embedded.model import crop_inputs, load_default, load_embedded

    model = load_embedded(a.checkpoint) if a.checkpoint else load_default()
    rows = []
    for name in ("astronaut.png", "grace_hopper.jpg", "camera.png"):
        bgr = cv2.imread(str(MEDIA / name))
        if bgr is None:
            continue
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rect, mask = find_person(image)
        crop_mask, _ = crop_inputs(image, rect, mask, 256)
        from streamrecon.models.embedded.model import crop_affine

        crop_img = cv2.warpAffine(image, crop_affine(rect, 256), (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        front, side, nf = mesh_views(model, image, rect, mask, a.resolution)
        m3 = np.repeat((crop_mask * 255).astype(np.uint8)[..., None], 3, 2)
        rows.append(np.concatenate([crop_img, m3, front, side], 1))
        print(f"{name}: rect {tuple(round(x) for x in rect)}, {nf} faces")
    out = np.concatenate(rows, 0)
    cv2.imwrite(a.out, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
