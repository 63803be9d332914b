"""``streamrecon export-weights``: checkpoints -> embedded weights, averaging several."""
from __future__ import annotations

import json

import pytest
import torch

from streamrecon.cli import main
from streamrecon.models.embedded.model import load_embedded, save_embedded
from streamrecon.models.embedded.net import EmbeddedNet, NetConfig
from streamrecon.errors import CheckpointError
from streamrecon.training.export import average_state_dicts, export_weights

TINY = NetConfig(in_res=32, widths=(8, 8, 8, 8, 8), feat=16, mlp=(16,), z_freqs=2)


def _train_ckpt(path, seed, cfg=TINY, step=100):
    torch.manual_seed(seed)
    net = EmbeddedNet(cfg)
    torch.save({"format": "streamrecon-train", "step": step, "elapsed_s": 1.0, "config": json.dumps({"seed": seed}),
                "net": cfg.to_json(), "model": net.state_dict(), "optimizer": {}, "best_iou": 0.5}, path)
    return net


def test_one_checkpoint_exports_unchanged(tmp_path):
    net = _train_ckpt(tmp_path / "a.pt", 0)
    path, meta = export_weights([tmp_path / "a.pt"], tmp_path / "w.pt")
    got = load_embedded(path).net.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(got[k], v), k
    assert meta["step"] == 100 and "averaged" not in meta


def test_embedded_weights_keep_their_meta_and_iso_level(tmp_path):
    save_embedded(tmp_path / "e.pt", _train_ckpt(tmp_path / "t.pt", 0), {"step": 7, "iso_level": 0.55, "data_seed": 3})
    export_weights([tmp_path / "e.pt"], tmp_path / "copy.pt")
    m = load_embedded(tmp_path / "copy.pt")
    assert m.iso_level == 0.55 and m.meta["data_seed"] == 3 and m.meta["step"] == 7
    save_embedded(tmp_path / "f.pt", _train_ckpt(tmp_path / "t2.pt", 1), {"step": 9, "iso_level": 0.55})
    export_weights([tmp_path / "e.pt", tmp_path / "f.pt"], tmp_path / "soup.pt")
    assert load_embedded(tmp_path / "soup.pt").iso_level == 0.55  # shared by all sources: kept
    export_weights([tmp_path / "e.pt", tmp_path / "t2.pt"], tmp_path / "mixed.pt")
    assert "iso_level" not in load_embedded(tmp_path / "mixed.pt").meta  # not shared: not guessed
    assert main(["export-weights", str(tmp_path / "t2.pt"), "--iso-level", "0.6", "--out", str(tmp_path / "l.pt")]) == 0
    assert load_embedded(tmp_path / "l.pt").iso_level == 0.6


def test_several_are_averaged_and_the_sources_recorded(tmp_path):
    a = _train_ckpt(tmp_path / "a.pt", 0, step=100)
    b = _train_ckpt(tmp_path / "b.pt", 1, step=300)
    save_embedded(tmp_path / "c.pt", _train_ckpt(tmp_path / "c_train.pt", 2), {"step": 200})  # embedded weights too
    c = load_embedded(tmp_path / "c.pt").net
    assert main(["export-weights", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), str(tmp_path / "c.pt"),
                 "--out", str(tmp_path / "soup.pt"), "--note", "test soup"]) == 0
    soup = load_embedded(tmp_path / "soup.pt")
    sd = soup.net.state_dict()
    for k, v in sd.items():  # every tensor is the mean
        want = (a.state_dict()[k] + b.state_dict()[k] + c.state_dict()[k]) / 3
        assert torch.allclose(v, want, atol=1e-6), k
    k = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    assert not torch.allclose(sd[k], a.state_dict()[k])  # the sources differ, so the mean is new
    meta = soup.meta
    assert meta["step"] == 300 and meta["note"] == "test soup"
    assert [s["step"] for s in meta["averaged"]] == [100, 300, 200]


def test_mismatched_architectures_are_refused_with_a_clear_error(tmp_path, capsys):
    _train_ckpt(tmp_path / "a.pt", 0)
    wide = NetConfig(in_res=32, widths=(8, 8, 8, 8, 8), feat=16, mlp=(24,), z_freqs=2)
    _train_ckpt(tmp_path / "b.pt", 1, cfg=wide)
    with pytest.raises(CheckpointError, match="different network configs"):
        export_weights([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "w.pt")
    rc = main(["export-weights", str(tmp_path / "a.pt"), str(tmp_path / "nope.pt"), "--out", str(tmp_path / "w.pt")])
    err = capsys.readouterr().err
    assert rc != 0 and "nope.pt: no such file" in err and "Traceback" not in err


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.mark.parametrize("content", ["garbage", "pickle", "other-format", "damaged"])
def test_unsafe_or_foreign_files_are_refused(tmp_path, content, capsys):
    bad = tmp_path / "bad.pt"
    if content == "garbage":
        bad.write_bytes(b"not a checkpoint at all")
    elif content == "pickle":
        torch.save({"format": "streamrecon-train", "x": _Evil()}, bad)
    elif content == "other-format":
        torch.save({"format": "something-else"}, bad)
    else:
        torch.save({"format": "streamrecon-train", "step": 1}, bad)
    rc = main(["export-weights", str(bad), "--out", str(tmp_path / "w.pt")])
    out = capsys.readouterr()
    assert rc != 0 and out.err.startswith("streamrecon: error: ") and "Traceback" not in out.err
    assert "pickled code ran" not in out.out
    assert not (tmp_path / "w.pt").exists()


def test_an_unwritable_out_is_a_user_error(tmp_path, capsys):
    _train_ckpt(tmp_path / "a.pt", 0)
    (tmp_path / "dir.pt").mkdir()
    rc = main(["export-weights", str(tmp_path / "a.pt"), "--out", str(tmp_path / "dir.pt")])
    assert rc != 0 and "cannot write there" in capsys.readouterr().err


def test_average_state_dicts_checks_shapes_and_keeps_integer_tensors():
    a = {"w": torch.ones(2), "n": torch.tensor(3)}
    b = {"w": torch.zeros(2), "n": torch.tensor(5)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.full((2,), 0.5)) and int(out["n"]) == 3
    with pytest.raises(CheckpointError, match="w is"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])
    with pytest.raises(CheckpointError, match="other tensors"):
        average_state_dicts([a, {"w": torch.zeros(2)}])
