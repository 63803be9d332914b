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


# ---- hostile options inside a PIFuHD container ----------------------------------------------------
@pytest.mark.parametrize("level, name, value, words", [
    ("opt_netG", "num_stack", [1], "opt_netG.num_stack=[1]: expected an integer"),
    ("opt_netG", "num_stack", None, "opt_netG.num_stack=None: expected an integer"),
    ("opt", "num_stack", float("inf"), "opt.num_stack=inf: expected an integer"),
    ("opt_netG", "hg_depth", 10 ** 5, "opt_netG.hg_depth=100000: expected an integer in [1, 7]"),
    ("opt_netG", "num_stack", 10 ** 7, "opt_netG.num_stack=10000000: expected an integer in [1, 8]"),
    ("opt_netG", "num_stack", 8, "describe a network of"),  # in range, but far more than the file holds
    ("opt", "mlp_dim", [10 ** 9, 1], "opt.mlp_dim"),
    ("opt_netG", "z_size", float("nan"), "opt_netG.z_size=nan"),
    ("opt_netG", "loadSize", 2 ** 40, "opt_netG.loadSize"),
    ("opt", "norm", ["group"], "opt.norm"),
    ("opt_netG", "use_back_normal", "no", "opt_netG.use_back_normal"),
])
def test_hostile_pifuhd_options_refused_before_anything_is_built(tmp_path, monkeypatch, level, name, value, words):
    """Options that would raise TypeError/OverflowError/RecursionError or make the loader build for
    minutes: one CheckpointError line, within a second, and ``build_network`` is never called."""
    import copy
    import time

    import torch

    import streamrecon.models.pifuhd.model as pifuhd_model
    from streamrecon.models.load import load_model

    obj = load_checkpoint(SMALL)
    obj[level] = copy.copy(obj[level])
    setattr(obj[level], name, value)
    path = tmp_path / "hostile.pt"
    torch.save(obj, path)
    built = []
    monkeypatch.setattr(pifuhd_model, "build_network", lambda *a, **k: built.append(a))
    t0 = time.monotonic()
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    assert time.monotonic() - t0 < 5.0
    msg = str(ei.value)
    assert "\n" not in msg and words in msg and str(path) in msg, msg
    assert built == []


def test_hostile_pifuhd_options_cli_is_one_line(tmp_path):
    import copy

    import torch

    obj = load_checkpoint(SMALL)
    obj["opt_netG"] = copy.copy(obj["opt_netG"])
    obj["opt_netG"].hg_depth = 10 ** 5
    path = tmp_path / "deep.pt"
    torch.save(obj, path)
    img = ROOT.parent / "shared" / "media" / "astronaut.png"
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "reconstruct", str(img), "--checkpoint", str(path),
                        "--out", str(tmp_path / "m.obj"), "--resolution", "32"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().startswith("streamrecon: error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "hg_depth=100000" in r.stderr and "Traceback" not in r.stderr


def test_pifuhd_options_size_formula_matches_the_built_network():
    """``implied_state_values`` is what the size check compares with the file: it must equal the
    built network's state-dict values (normal nets aside) for the fixture and option variants."""
    import dataclasses

    from streamrecon.models.checkpoint import pifuhd_from_object
    from streamrecon.models.pifuhd.model import build_network
    from streamrecon.models.pifuhd.options import implied_state_values, options_from_checkpoint, release_options

    def built(o):
        sd = build_network(o, device="meta").state_dict()
        return sum(v.numel() for k, v in sd.items() if not k.startswith(("netG.netF.", "netG.netB.")))

    ck = pifuhd_from_object(load_checkpoint(SMALL), str(SMALL))
    fixture = options_from_checkpoint(ck.opt, ck.opt_netG, ck.state_dict)
    base = release_options()
    variants = [fixture, base,
                dataclasses.replace(base, coarse=dataclasses.replace(base.coarse, num_stack=2, norm="batch", mlp_norm="batch",
                                                                     use_back_normal=False)),
                dataclasses.replace(base, fine=dataclasses.replace(base.fine, mlp_norm="group", hg_depth=2, num_stack=3))]
    for o in variants:
        assert implied_state_values(o) == built(o)
    assert implied_state_values(fixture) == sum(v.numel() for k, v in ck.state_dict.items() if not k.startswith(("netG.netF.", "netG.netB.")))


# ---- export-weights on a refused file -------------------------------------------------------------
class _Payload:
    """Pickles as a call to ``open(marker, 'w')``: an unsafe load would create the file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_export_weights_on_an_unsafe_file_is_one_line(tmp_path):
    import torch

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "streamrecon-train", "net": _Payload(marker)}, evil)
    r = subprocess.run([sys.executable, "-m", "streamrecon.cli", "export-weights", str(evil), "--out", str(tmp_path / "w.pt")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"streamrecon: error: refused checkpoint {evil}"), r.stderr
    assert "nothing in it was executed" in lines[0]
    assert "\x1b" not in r.stderr and "weights_only=False" not in r.stderr  # no torch advice to load it unsafely
    assert not marker.exists() and not (tmp_path / "w.pt").exists()
