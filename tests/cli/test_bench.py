"""``streamrecon bench query``: help renders, JSON output carries the documented keys."""
import json
import subprocess
import sys


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "streamrecon.cli", "bench", "query", *args],
                          capture_output=True, text=True)


def test_help_lists_the_octree_flags():
    out = _cli("--help")
    assert out.returncode == 0
    for flag in ("--resolution", "--json", "--init-resolution", "--band", "--no-lossless", "--no-exact-vertices"):
        assert flag in out.stdout


def test_json_on_a_small_sphere():
    out = _cli("--resolution", "48", "--field", "sphere", "--repeats", "1", "--json", "--threads", "1")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["dense_points"] == 48**3 and 0 < res["octree_points"] < 48**3
    assert res["iou_vs_dense"] == 1.0 and res["vertices_octree"] == res["vertices_dense"] > 0
    for k in ("octree_total", "octree_query", "mc_sparse_kernel", "mc_pymcubes", "dense_total"):
        assert k in res["seconds"]


def test_bad_resolution_is_a_one_line_error():
    out = _cli("--resolution", "3")
    assert out.returncode == 2 and out.stderr.strip().startswith("streamrecon: error: --resolution")
    assert "Traceback" not in out.stderr
