"""Runs the atheris fuzz harnesses in tests/reliability/fuzz/ briefly (a few thousand inputs each, from a seed
corpus of valid files/messages) so CI catches regressions; longer runs are manual (see the
harness docstrings). Each runs in a subprocess: a crash or an out-of-memory is reported by
libFuzzer with the input, and fails the test."""
import importlib.util
import subprocess
import sys

import pytest
from paths import ROOT  # noqa: E402

ROOT = ROOT
FUZZ = ROOT / "tests" / "reliability" / "fuzz"

# Linux keeps a process's peak RSS across exec, so a harness started straight from this (often
# multi-GB) pytest process would report pytest's peak and trip -rss_limit_mb at once. A small
# launcher process forks the harness instead: the grandchild's peak is its own.
LAUNCH = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                reason="atheris is not installed (pip install atheris==3.0.0)")


@pytest.mark.parametrize("harness, runs", [("fuzz_wire.py", 30000), ("fuzz_image.py", 8000)])
def test_fuzz_harness_runs_clean(tmp_path, harness, runs):
    corpus = tmp_path / "corpus"
    r = subprocess.run([sys.executable, str(FUZZ / harness), "--write-seeds", str(corpus)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(list(corpus.iterdir())) >= 3
    r = subprocess.run(LAUNCH + [sys.executable, str(FUZZ / harness), f"-runs={runs}", "-max_total_time=20", "-rss_limit_mb=1024",
                        f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(corpus)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    tail = "\n".join(ln for ln in r.stderr.splitlines() if not ln.startswith(("[", "INFO: Instrumenting")))[-3000:]
    assert r.returncode == 0, tail
    assert "Done" in r.stderr and not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("oom-*")), tail
