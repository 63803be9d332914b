"""Damaged checkpoints (gap left by tests/models/test_checkpoint.py): random byte corruption of the
fixture's pickle/storage-table region either still loads or is a one-line CheckpointError — torch's
own AssertionError from a damaged legacy storage table included, never a traceback."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from streamrecon.models.checkpoint import load_checkpoint  # noqa: E402
from streamrecon.errors import CheckpointError  # noqa: E402
from paths import ROOT  # noqa: E402

ROOT = ROOT
SMALL = ROOT.parent / "shared" / "fixtures" / "pifuhd_small" / "pifuhd_small.pt"

pytestmark = pytest.mark.skipif(not SMALL.is_file(), reason=f"fixture {SMALL} not present")


def corrupted(tmp_path, seed, flips=8, region=200_000):
    rng = np.random.default_rng(seed)
    data = bytearray(SMALL.read_bytes())
    for _ in range(flips):
        data[int(rng.integers(0, min(region, len(data))))] = int(rng.integers(0, 256))
    p = tmp_path / f"bad{seed}.pt"
    p.write_bytes(bytes(data))
    return p


def test_bit_flipped_checkpoints_load_or_raise_checkpoint_error(tmp_path):
    outcomes = {"loaded": 0, "refused": 0}
    for seed in range(16):
        try:
            load_checkpoint(corrupted(tmp_path, seed))
            outcomes["loaded"] += 1
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(tmp_path) in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 4  # seeds 0, 6, 8, 9 hit the storage table (AssertionError before)


def test_bit_flipped_checkpoint_cli_is_one_line(tmp_path):
    bad = corrupted(tmp_path, 0)  # the AssertionError case
    img = ROOT.parent / "shared" / "media" / "astronaut.png"
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "reconstruct", str(img), "--checkpoint", str(bad),
                        "--out", str(tmp_path / "m.obj"), "--resolution", "32"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().startswith("streamrecon: error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "m.obj").exists()
