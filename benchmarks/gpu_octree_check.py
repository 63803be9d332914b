"""CUDA check of the octree (one torch code path): same queried points and values as on CPU, and
timings on the GPU. Needs only torch + numpy (no native build, no PyMCubes):

    PYTHONPATH=. python benchmarks/gpu_octree_check.py
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from streamrecon.testing.fields import body_field  # noqa: E402
from streamrecon.occupancy import OctreeConfig, evaluate_octree, volume_iou  # noqa: E402


def main() -> int:
    out = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        print(json.dumps(out))
        return 1
    out["gpu"] = torch.cuda.get_device_name(0)
    field = body_field()
    for n in (128, 256, 512):
        cpu = evaluate_octree(field, n, OctreeConfig())
        evaluate_octree(field, n, OctreeConfig(), device="cuda")  # warm-up
        times = []
        for _ in range(5):
            torch.cuda.synchronize()
            t = time.perf_counter()
            gpu = evaluate_octree(field, n, OctreeConfig(), device="cuda")
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        cells_c, cells_g = cpu.surface_cells(), gpu.surface_cells().cpu()
        torch.cuda.synchronize()
        t = time.perf_counter()
        cg = gpu.surface_cells()
        vg = gpu.corner_values(cg)
        torch.cuda.synchronize()
        t_cells = time.perf_counter() - t
        same_keys = torch.equal(cpu.keys, gpu.keys.cpu())
        out[str(n)] = {
            "queries_cpu": cpu.num_queries, "queries_gpu": gpu.num_queries, "same_queried_points": same_keys,
            "max_value_diff": float((cpu.vals - gpu.vals.cpu()).abs().max()) if same_keys else None,
            "iou_cpu_gpu": volume_iou(cpu, gpu), "same_surface_cells": torch.equal(cells_c, cells_g),
            "gpu_octree_s_median": sorted(times)[len(times) // 2], "gpu_octree_s_min": min(times),
            "gpu_cells_and_corners_s": t_cells, "cpu_octree_s": cpu.stats["total_s"],
        }
        print(json.dumps({n: out[str(n)]}), flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
