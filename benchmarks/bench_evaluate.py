"""Benchmark of the evaluation: the rasteriser alone (warm-up, median/p95) on a marching-cubes
person-sized mesh, the 3D figures of one person-frame against a fitted body (the body scenes of
tests/eval/body_scenes.py: our body model in 2 cm of clothes, at the frame size), and
``streamrecon evaluate`` on a synthetic run directory of N frames (the analytic factory of
tests/eval/test_report.py, at a realistic frame and mesh size; no bodies).

    .venv/bin/python benchmarks/bench_evaluate.py --frames 100 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def blob_mesh(res: int):
    """A person-sized blob (union of ellipsoids: torso, head, legs) meshed by marching cubes in the
    crop frame: ~res^2 faces, like a reconstruction at that resolution."""
    import mcubes

    g = np.linspace(-1, 1, res)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")

    def ell(cx, cy, a, b, c):
        return 1 - ((x - cx) / a) ** 2 - ((y - cy) / b) ** 2 - (z / c) ** 2

    field = np.maximum.reduce([ell(0, 0.15, 0.28, 0.4, 0.18), ell(0, 0.7, 0.13, 0.16, 0.14),
                               ell(-0.12, -0.55, 0.1, 0.4, 0.1), ell(0.12, -0.55, 0.1, 0.4, 0.1)])
    v, f = mcubes.marching_cubes(field, 0.0)
    return v / (res - 1) * 2 - 1, f


def stats(ts):
    ts = np.asarray(ts) * 1e3
    return {"median_ms": float(np.median(ts)), "p95_ms": float(np.percentile(ts, 95)), "fps": float(1e3 / np.median(ts))}


def bench_3d(w: int, h: int, repeats: int) -> dict:
    """Median/p95 of the 3D figures of one person-frame: the body read from its manifest entry,
    ``person_depth_metrics`` (depth maps, enclosure, distances, thickness) and the mesh change
    with the body's motion removed, for a body 0.85 of the frame tall."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "eval"))
    from body_scenes import body_params, clothed

    from streamrecon.eval.metrics.depth import body_from_params, person_depth_metrics
    from streamrecon.eval.metrics.motion import mesh_change, vertex_transforms

    scale = 0.85 * h / 1.75
    a = body_params(1, tx=w / 2, ty=0.5 * h, scale=scale)
    b = body_params(1, t=0.2, seed_to=2, tx=w / 2 + 3, ty=0.5 * h, scale=scale)
    (va, fa), vb = clothed(a), clothed(b)[0]
    rect = (w / 2 - 0.5 * h, 0.0, float(h), float(h))
    ba, bb = body_from_params(a), body_from_params(b)
    res = {"mesh_faces": int(len(fa))}
    for name, fn in (("body_from_params", lambda: body_from_params(a)),
                     ("person_depth_metrics", lambda: person_depth_metrics(va, fa, ba, rect, (h, w))),
                     ("mesh_change", lambda: mesh_change(va, vb, ba, bb, vertex_transforms(ba), vertex_transforms(bb)))):
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        res[name] = stats(ts)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--res", type=int, default=256, help="marching-cubes resolution of the mesh")
    ap.add_argument("--size", default="640x480", help="frame size WxH")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    w, h = (int(s) for s in args.size.split("x"))

    from streamrecon.types import Mesh
    from streamrecon.mesh.io import write_mesh
    from streamrecon.eval.render import CropCamera, rasterize, render_mesh
    from streamrecon.mesh.coords import crop_to_image_points as crop_to_image

    v, f = blob_mesh(args.res)
    rect = (w / 2 - 0.45 * h, 0.05 * h, 0.9 * h, 0.9 * h)
    cam = CropCamera(rect, (h, w))
    mesh = Mesh(crop_to_image(v, rect), f, frame="image")
    raster = cam.to_raster(mesh.vertices, "image", "image")
    out = {"mesh": {"vertices": mesh.num_vertices, "faces": mesh.num_faces}, "frame": [w, h]}
    for name, fn in (("rasterize", lambda: rasterize(raster, mesh.faces, h, w)),
                     ("render_mesh", lambda: render_mesh(mesh, cam, "image"))):
        fn()  # warm-up
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        out[name] = stats(ts)

    out["figures_3d"] = bench_3d(w, h, args.repeats)

    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("frames", "masks", "meshes"):
            (root / d).mkdir()
        sil = render_mesh(mesh, cam, "image").silhouette
        frames = []
        for k in range(args.frames):
            name = f"frame_{k:06d}"
            img = np.full((h, w, 3), 40, np.uint8)
            img[sil] = 200
            cv2.imwrite(str(root / f"frames/{name}.jpg"), img)
            cv2.imwrite(str(root / f"masks/{name}_p0.png"), sil.astype(np.uint8) * 255)
            if k == 0:
                write_mesh(mesh, root / f"meshes/{name}_p0.obj")
            else:  # same mesh every frame: copy the file instead of re-formatting it
                (root / f"meshes/{name}_p0.obj").write_bytes((root / "meshes/frame_000000_p0.obj").read_bytes())
            frames.append({"index": k, "time": k / 25, "frame_file": f"frames/{name}.jpg", "width": w, "height": h,
                           "persons": [{"person": 0, "file": f"meshes/{name}_p0.obj", "mask_file": f"masks/{name}_p0.png",
                                        "rect": list(rect)}]})
        (root / "manifest.json").write_text(json.dumps({"version": 1, "mesh_frame": "image", "frames": frames}))
        from streamrecon.eval.report.config import EvaluateConfig
        from streamrecon.eval.report.evaluation import evaluate_run
        from streamrecon.eval.report.html import write_report
        from streamrecon.eval.report.run_dir import load_manifest, read_mesh

        t = time.perf_counter()
        read_mesh(root / "meshes/frame_000000_p0.obj", "image")
        out["read_obj_ms"] = (time.perf_counter() - t) * 1e3
        cfg = EvaluateConfig()
        t, c = time.perf_counter(), time.process_time()
        m = load_manifest(root)
        doc = evaluate_run(m, cfg)
        t_eval, c_eval = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        write_report(doc, m, cfg, root / "eval")
        t_report = time.perf_counter() - t
        out["evaluate"] = {"frames": args.frames, "metrics_s": t_eval, "metrics_cpu_s": c_eval, "report_s": t_report,
                           "per_frame_ms": t_eval / args.frames * 1e3, "iou_mean": doc["summary"]["iou"]["mean"]}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
