"""Build the demo run directory behind docs/evaluate_report.png and evaluate it.

A person-like body (ellipsoids: torso, head, swinging arms, legs) is rendered with the crop camera
into a real photograph (scikit-image's astronaut, from ../shared/media) to make the input frames and
exact masks; the "reconstruction" of each frame is the same body meshed at a lower resolution with
small errors (arm angle off, a jittering head), and two frames fail on purpose (a lost arm and
leg, a crop rect off by a third of its size). Then ``streamrecon evaluate`` writes the report.

    .venv/bin/python docs/evaluate_demo.py /tmp/demo_run    # then open /tmp/demo_run/eval/report.html
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H = 320, 240
RECT = (70.0, 8.0, 224.0, 224.0)


def body_mesh(t: float, res: int, arm_error: float = 0.0, head_dy: float = 0.0, lose_limbs: bool = False):
    """Crop-frame mesh of the body at time t (s) by marching cubes at ``res``."""
    import mcubes

    g = np.linspace(-1, 1, res)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")

    def ell(cx, cy, a, b, c, ang=0.0):
        # An ellipsoid rotated by ``ang`` in the image plane around its centre.
        ca, sa = np.cos(ang), np.sin(ang)
        u, v = (x - cx) * ca + (y - cy) * sa, -(x - cx) * sa + (y - cy) * ca
        return 1 - (u / a) ** 2 - (v / b) ** 2 - (z / c) ** 2

    swing = 0.35 * np.sin(2 * np.pi * 0.5 * t) + arm_error
    parts = [ell(0, 0.12, 0.24, 0.36, 0.16), ell(0, 0.66 + head_dy, 0.12, 0.15, 0.13),
             ell(-0.36, 0.1, 0.07, 0.34, 0.07, ang=-0.25 - swing), ell(-0.11, -0.6, 0.09, 0.38, 0.09)]
    if not lose_limbs:
        parts += [ell(0.36, 0.1, 0.07, 0.34, 0.07, ang=0.25 + swing), ell(0.11, -0.6, 0.09, 0.38, 0.09)]
    v, f = mcubes.marching_cubes(np.maximum.reduce(parts), 0.0)
    return v / (res - 1) * 2 - 1, f


def main(out: Path, n_frames: int = 40) -> int:
    import cv2

    from streamrecon.types import Mesh
    from streamrecon.mesh.io import write_mesh
    from streamrecon.eval.render import CropCamera, render_mesh
    from streamrecon.mesh.coords import crop_to_image_points as crop_to_image

    bg = cv2.imread(str(ROOT.parent / "shared/media/astronaut.png"))
    bg = cv2.cvtColor(cv2.resize(bg, (W, H), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    for d in ("frames", "masks", "meshes"):
        (out / d).mkdir(parents=True, exist_ok=True)
    cam = CropCamera(RECT, (H, W))
    rng = np.random.default_rng(0)
    frames = []
    for k in range(n_frames):
        t = k / 10.0
        true = render_mesh(Mesh(*body_mesh(t, 96), frame="crop"), cam, "image")
        photo = bg.copy()
        skin = np.array([205, 170, 140], dtype=np.float64)
        photo[true.silhouette] = np.clip(true.shaded[true.silhouette, None] * skin, 0, 255).astype(np.uint8)
        name = f"frame_{k:06d}"
        cv2.imwrite(str(out / f"frames/{name}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(out / f"masks/{name}_p0.png"), true.silhouette.astype(np.uint8) * 255)
        rect = list(RECT)
        if k == 27:
            rect[0] += RECT[2] / 3  # a crop rect that lost the person
        v, f = body_mesh(t, 48, arm_error=0.08, head_dy=rng.normal(0, 0.015), lose_limbs=(k == 12))
        verts = crop_to_image(v, rect)
        write_mesh(Mesh(verts, f, frame="image"), out / f"meshes/{name}_p0.obj")
        frames.append({"index": k, "time": t, "frame_file": f"frames/{name}.jpg", "width": W, "height": H,
                       "persons": [{"person": 0, "file": f"meshes/{name}_p0.obj", "mask_file": f"masks/{name}_p0.png",
                                    "rect": rect, "vertices": len(verts), "faces": len(f)}]})
    manifest = {"version": 1, "source": "evaluate_demo (analytic body on astronaut.png)", "source_kind": "synthetic",
                "model": "analytic", "resolution": 48, "mesh_format": "obj", "mesh_frame": "image", "frames": frames}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return subprocess.call([sys.executable, "-m", "streamrecon.cli", "evaluate", str(out), "--samples", "4", "--iou-threshold", "0.8",
                            "--max-failing", "2", "--thumb-width", "300"])


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/evaluate_demo")))
