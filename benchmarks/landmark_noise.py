"""How far BlazePose's landmarks (the product's person finder) are from the truth on synthetic
people: shaded colour renders of training-like subjects (anny bodies dressed by the generator,
random skin and garment colours on a plain random background, yaw within +-90 degrees) against the
true landmarks of each body (``training.synth.landmarks``). Gives the detector noise that
``synth.landmarks.SIGMA_2D_PCT`` / ``SIGMA_3D_M`` encode.

    .venv/bin/python benchmarks/landmark_noise.py --subjects 60 --data-seed 98 --json noise.json

Per view: found or not; if found, the median 2D keypoint error in % of body height, and whether
the pose is right (median < 5%), left and right swapped (< 5% after swapping), or wrong. Over the
right poses: per landmark the robust sigma (1.4826 x MAD) of the 2D error per coordinate (% of
height) and of the world landmarks' error per axis (metres, after a least-squares scale). Needs
the ``train`` extra (anny).
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--data-seed", type=int, default=98)
    ap.add_argument("--res", type=int, default=512, help="render size in pixels")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    from streamrecon.body.model import BLAZEPOSE_MIRROR
    from streamrecon.people import PeopleConfig, PeopleFinder
    from streamrecon.training.synth import generate as g
    from streamrecon.training.synth.landmarks import view_landmarks
    from streamrecon.training.synth.render import render, shade
    from streamrecon.types import Frame

    cfg = g.SynthConfig(res=a.res, views=1, points=16, max_yaw_deg=90.0, body=True, body_noise=0.0)
    finder = PeopleFinder(PeopleConfig(max_people=1))
    rows, e2, e3 = [], [], []
    for i in range(a.subjects):
        s = g.make_subject(g.subject_seed(a.data_seed, i), cfg)
        rng = np.random.default_rng(np.random.SeedSequence(a.data_seed, spawn_key=(5, i)))
        v, f = g.to_crop(s.cameras[0], s.vertices, s.faces)
        counts = s.meta["part_faces"]
        colours = [rng.uniform([0.35, 0.25, 0.2], [0.95, 0.8, 0.7])] + [rng.uniform(0.05, 0.95, 3) for _ in counts[1:]]
        r = render(v, f, a.res)
        img = np.where(r.mask[..., None], shade(r, np.concatenate([np.tile(c, (n, 1)) for c, n in zip(colours, counts)])),
                       rng.uniform(60, 200, 3).astype(np.uint8)).astype(np.uint8)
        truth = view_landmarks(s.landmarks, s.cameras[0], a.res)
        finder.reset() if hasattr(finder, "reset") else None
        crops = finder.find(Frame(i, img, float(i)))
        row = {"subject": i, "yaw_deg": float(np.rad2deg(s.cameras[0].yaw)), "found": bool(crops and crops[0].world_landmarks is not None)}
        if row["found"]:
            kp, world = crops[0].keypoints, crops[0].world_landmarks.astype(np.float64)
            d = np.linalg.norm(kp[:, :2] - truth.keypoints[:, :2], axis=1) / truth.height_px * 100
            ds = np.linalg.norm(kp[list(BLAZEPOSE_MIRROR), :2] - truth.keypoints[:, :2], axis=1) / truth.height_px * 100
            row["median_2d_pct"] = float(np.median(d))
            row["pose"] = "right" if np.median(d) < 5 else "swapped" if np.median(ds) < 5 else "wrong"
            if row["pose"] == "right":
                e2.append((kp[:, :2] - truth.keypoints[:, :2]) / truth.height_px * 100)
                scale = float((world * truth.world).sum() / (world * world).sum())
                e3.append(world * scale - truth.world)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def sigma(e):
        e = np.asarray(e)
        return 1.4826 * np.median(np.abs(e - np.median(e, 0)), 0)

    out = {"subjects": a.subjects, "data_seed": a.data_seed, "res": a.res,
           "found": sum(r["found"] for r in rows),
           "poses": {k: sum(r.get("pose") == k for r in rows) for k in ("right", "swapped", "wrong")},
           "rows": rows}
    if e2:
        out["sigma_2d_pct"] = sigma(e2).mean(1).round(2).tolist()
        out["sigma_3d_cm"] = (sigma(e3) * 100).round(1).tolist()
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
