"""Safe, strict checkpoint loading: hostile pickles never run, broken files give one-line errors,
both serializers and CUDA-saved tensors load."""
from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamrecon.api import load_model  # noqa: E402
from streamrecon.models.checkpoint import (  # noqa: E402
    load_checkpoint,
    load_pifuhd_checkpoint,
    model_from_checkpoint,
    normalise_state_dict,
)
from streamrecon.errors import CheckpointError  # noqa: E402
from paths import FIXTURES  # noqa: E402

FIX = FIXTURES / "pifuhd_small"
SMALL = FIX / "pifuhd_small.pt"
needs_fixture = pytest.mark.skipif(not SMALL.is_file(), reason=f"{SMALL} not present")


class _Payload:
    """Pickles as a call to ``open(marker, 'w')``: loading it unsafely would create the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.strip() == msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize("kind", ["zip", "legacy", "raw-pickle"])
def test_hostile_checkpoint_is_refused_and_payload_never_runs(tmp_path, kind):
    marker = tmp_path / "PWNED"
    evil = {"opt": argparse.Namespace(num_stack=1), "opt_netG": _Payload(marker), "model_state_dict": {}}
    path = tmp_path / f"evil_{kind}.pt"
    if kind == "zip":
        torch.save(evil, path)
    elif kind == "legacy":
        torch.save(evil, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)
    # sanity: the payload is real (an unsafe load would run it)
    with open(path, "rb") as f:
        assert b"open" in f.read()
    for loader in (load_checkpoint, load_pifuhd_checkpoint, load_model):
        with pytest.raises(CheckpointError) as ei:
            loader(path)
        msg = _one_line(ei.value)
        assert "refused" in msg and str(path) in msg
    assert not marker.exists()


def test_hostile_checkpoint_cli_is_one_line_error(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"opt": _Payload(marker)}, path, _use_new_zipfile_serialization=False)
    img = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(img), np.full((8, 8, 3), 128, np.uint8))
    out = subprocess.run([sys.executable, "-m", "streamrecon.cli", "reconstruct", str(img), "--checkpoint", str(path),
                          "--out", str(tmp_path / "m.obj")], capture_output=True, text=True)
    assert out.returncode == CheckpointError.exit_code
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("streamrecon: error: refused checkpoint"), out.stderr
    assert "Traceback" not in out.stderr and not marker.exists()


def _tiny(tmp_path: Path, zip_format: bool) -> Path:
    path = tmp_path / ("tiny_zip.pt" if zip_format else "tiny_legacy.pt")
    obj = {"opt": argparse.Namespace(a=1), "opt_netG": argparse.Namespace(b=2),
           "model_state_dict": OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3))}
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_both_serializers_load_with_namespaces(tmp_path, zip_format):
    ck = load_pifuhd_checkpoint(_tiny(tmp_path, zip_format))
    assert isinstance(ck.opt, argparse.Namespace) and ck.opt.a == 1 and ck.opt_netG.b == 2
    assert torch.equal(ck.state_dict["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3))


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_checkpoint_is_one_line_error(tmp_path, zip_format):
    path = _tiny(tmp_path, zip_format)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 7, 5):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as ei:
            load_checkpoint(path)
        msg = _one_line(ei.value)
        assert str(path) in msg and ("truncated" in msg or "damaged" in msg or "not" in msg), msg


def test_empty_missing_and_wrong_kind_files(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)
    import cv2

    png = tmp_path / "photo.png"
    cv2.imwrite(str(png), np.zeros((4, 4, 3), np.uint8))
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")
    fake_zip = tmp_path / "archive.pt"
    import zipfile

    with zipfile.ZipFile(fake_zip, "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    for path in (png, text, fake_zip):
        with pytest.raises(CheckpointError) as ei:
            load_checkpoint(path)
        assert str(path) in _one_line(ei.value)


def test_non_pifuhd_container_is_refused_by_kind(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="missing opt, opt_netG, model_state_dict"):
        load_pifuhd_checkpoint(path)
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="not a PIFuHD checkpoint"):
        load_pifuhd_checkpoint(path)


def test_cuda_saved_tensors_map_to_cpu(tmp_path, monkeypatch):
    # write a checkpoint whose storages say 'cuda:0' (as the released file's may), without a GPU
    import torch.serialization as ser

    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    for zip_format in (True, False):
        path = tmp_path / f"cuda_{zip_format}.pt"
        torch.save({"opt": argparse.Namespace(), "opt_netG": argparse.Namespace(),
                    "model_state_dict": {"w": torch.ones(3)}}, path, _use_new_zipfile_serialization=zip_format)
        assert b"cuda:0" in path.read_bytes()
        monkeypatch.undo()
        if not torch.cuda.is_available():
            with pytest.raises(Exception):
                torch.load(path, weights_only=True)  # proves the file really asks for CUDA
        ck = load_pifuhd_checkpoint(path)
        assert ck.state_dict["w"].device.type == "cpu" and torch.equal(ck.state_dict["w"], torch.ones(3))
        monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")


def test_alias_and_prefix_normalisation():
    t = torch.ones(4)
    sd = {"module.a.conv2.bn4.weight": t, "module.a.conv2.downsample.2.weight": torch.zeros(1),
          "b.conv3.downsample.0.bias": t, "c.conv3.bn4.weight": t}
    out = normalise_state_dict(sd)
    assert out["a.conv2.downsample.0.weight"] is t  # width-changing block: alias completed
    assert out["b.conv3.bn4.bias"] is t
    assert "c.conv3.downsample.0.weight" not in out  # equal-width block has no downsample
    with pytest.raises(CheckpointError, match="not a tensor"):
        normalise_state_dict({"x": "y"})


@needs_fixture
def test_fixture_loads_strictly_and_extra_top_level_keys_are_ignored(tmp_path):
    ck = load_pifuhd_checkpoint(SMALL)
    assert len(ck.state_dict) == 315
    # the fixture is the legacy (non-zip) format, like pifuhd.pt
    assert SMALL.read_bytes()[:2] == b"\x80\x02"
    # re-save in the zip format with an extra top-level key and one alias key dropped
    sd = dict(ck.state_dict)
    dropped = next(k for k in sd if ".downsample.0." in k)
    del sd[dropped]
    path = tmp_path / "resaved.pt"
    torch.save({"opt": ck.opt, "opt_netG": ck.opt_netG, "model_state_dict": sd, "epoch": 7,
                "optimizer": {"lr": 0.1}}, path)
    m2 = model_from_checkpoint(load_pifuhd_checkpoint(path))
    m1 = model_from_checkpoint(ck)
    for (k1, v1), (k2, v2) in zip(m1.net.state_dict().items(), m2.net.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


@needs_fixture
def test_wrong_shapes_are_refused_strictly(tmp_path):
    ck = load_pifuhd_checkpoint(SMALL)
    sd = dict(ck.state_dict)
    sd["mlp.filters.0.weight"] = torch.zeros(3, 3, 1)
    sd["surprise.weight"] = torch.zeros(1)
    path = tmp_path / "edited.pt"
    torch.save({"opt": ck.opt, "opt_netG": ck.opt_netG, "model_state_dict": sd}, path)
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = _one_line(ei.value)
    assert "unexpected (e.g. surprise.weight)" in msg and "wrong shape (e.g. mlp.filters.0.weight" in msg
    # a missing size option is named
    opt = argparse.Namespace(**{k: v for k, v in vars(ck.opt).items() if k != "hg_dim"})
    torch.save({"opt": opt, "opt_netG": ck.opt_netG, "model_state_dict": ck.state_dict}, path)
    with pytest.raises(CheckpointError, match="'hg_dim' is missing"):
        load_model(path)


def test_loading_does_not_touch_global_safe_globals(tmp_path):
    # Namespace is allowed only inside our scoped load, never process-wide
    load_checkpoint(_tiny(tmp_path, True))
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(_tiny(tmp_path, False), weights_only=True)


def test_non_pifuhd_checkpoint_is_handed_to_the_embedded_loader(tmp_path, monkeypatch):
    import streamrecon.models.embedded as embedded

    calls = []
    monkeypatch.setattr(embedded, "load_embedded", lambda path, device="cpu": calls.append((str(path), str(device))) or "embedded")
    path = tmp_path / "other.pt"
    torch.save({"config": {"width": 8}, "state_dict": {"w": torch.zeros(2)}}, path)
    assert load_model(path) == "embedded" and calls == [(str(path), "cpu")]
    # broken or hostile files never reach it: our safe loader answers first
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(path)
    assert len(calls) == 1
