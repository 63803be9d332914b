"""Training checkpoints -> embedded-format weights (``streamrecon export-weights``).

One checkpoint is exported as it is. Several are averaged tensor by tensor (a "model soup"):
runs fine-tuned from the same start stay in one basin of the loss, and the mean of their weights
behaves like the mean of their predictions at the cost of one network (docs/embedded_model.md has
the measured effect). Averaging needs identical architectures; the result's ``meta`` names every
source with its step and run settings so the file says how it was made.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from ..errors import CheckpointError, OutputError, UserInputError

PathLike = Union[str, Path]


def average_state_dicts(states: Sequence[dict]) -> dict:
    """The element-wise mean of ``states`` (same keys and shapes), in float64 then back to each
    tensor's dtype. Raises ``CheckpointError`` naming the first key that does not match."""
    import torch

    if not states:
        raise CheckpointError("nothing to average: no checkpoints given")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            extra = sorted(set(s) ^ set(keys))
            raise CheckpointError(f"checkpoint {i + 1} has other tensors than the first ({', '.join(extra[:4]) or 'order differs'})")
        for k in keys:
            if s[k].shape != states[0][k].shape:
                raise CheckpointError(f"checkpoint {i + 1}: {k} is {list(s[k].shape)}, the first has {list(states[0][k].shape)}")
    out = {}
    for k in keys:
        ref = states[0][k]
        if not ref.is_floating_point():  # counters and the like: take the first
            out[k] = ref.clone()
            continue
        out[k] = (sum(s[k].double() for s in states) / len(states)).to(ref.dtype)
    return out


def read_source(path: PathLike) -> dict:
    """One source: a training checkpoint (``last.pt``) or embedded-format weights (``best.pt``,
    ``default.pt``), as {"net": config JSON, "model": state dict, "step", "train_config", "meta"}
    (``meta``: the embedded file's own, else {})."""
    from ..models.checkpoint import load_checkpoint
    from ..models.embedded.model import FORMAT, check_version

    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such file (no such checkpoint); check the path")
    # the safe loader of ``reconstruct``: weights only, and one line for a refused or broken file
    obj = load_checkpoint(path)
    kind = obj.get("format") if isinstance(obj, dict) else None
    try:
        if kind == FORMAT:
            check_version(obj, path)
            meta = dict(obj.get("meta") or {})
            return {"net": obj["config"], "model": obj["state_dict"], "step": int(meta.get("step", 0)),
                    "train_config": meta.get("train_config", ""), "meta": meta}
        if kind == "streamrecon-train":
            return {"net": obj["net"], "model": obj["model"], "step": int(obj["step"]), "train_config": obj["config"], "meta": {}}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc.__class__.__name__}: {exc})") from exc
    raise CheckpointError(f"{path}: neither a streamrecon training checkpoint nor embedded weights (format {kind!r})")


def export_weights(sources: Sequence[PathLike], dst: PathLike, note: str = "",
                   iso_level: Optional[float] = None) -> Tuple[Path, dict]:
    """Write the (mean of the) checkpoints ``sources`` (see ``read_source``) to ``dst`` in the
    embedded format; returns (path, meta). All sources must have the same network config.
    One source keeps its meta (``iso_level`` included); several keep an ``iso_level`` they all
    share. ``iso_level`` given here replaces it."""
    from ..mesh.io import check_output_file
    from ..models.embedded.model import save_embedded
    from ..models.embedded.net import EmbeddedNet, NetConfig

    try:  # a read-only disk or a folder in the way is said before the work
        check_output_file(dst)
    except OutputError as exc:
        raise _out_error(dst, exc) from None
    cks = [read_source(p) for p in sources]
    if not cks:
        raise CheckpointError("nothing to export: no checkpoints given")
    nets = [c["net"] for c in cks]
    if any(n != nets[0] for n in nets[1:]):
        raise CheckpointError("the checkpoints have different network configs; only one architecture can be averaged")
    try:
        net = EmbeddedNet(NetConfig.from_json(nets[0]))
        net.load_state_dict(average_state_dicts([c["model"] for c in cks]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{sources[0]}: weights do not match their config ({exc.__class__.__name__}: {exc})") from exc
    if len(cks) == 1:
        meta = {**cks[0]["meta"], "step": cks[0]["step"], "train_config": cks[0]["train_config"]}
    else:
        meta = {"step": max(c["step"] for c in cks), "train_config": cks[-1]["train_config"],
                "averaged": [{"path": str(p), "step": c["step"], "train_config": c["train_config"]} for p, c in zip(sources, cks)]}
        levels = {c["meta"].get("iso_level") for c in cks}
        if len(levels) == 1 and None not in levels:
            meta["iso_level"] = levels.pop()
    if iso_level is not None:
        if not 0.0 < iso_level < 1.0:
            raise UserInputError(f"--iso-level must be between 0 and 1, got {iso_level}")
        meta["iso_level"] = float(iso_level)
    if note:
        meta["note"] = note
    try:
        return save_embedded(dst, net, meta), meta
    except OSError as exc:
        raise _out_error(dst, exc) from exc


def _out_error(dst: PathLike, exc: OSError) -> OutputError:
    """``--out DST: cannot write there (why); what to do`` for an ``OSError`` of writing ``dst``."""
    from ..mesh.io import output_error_reason

    why, fix = output_error_reason(dst, exc)
    return OutputError(f"--out {dst}: cannot write there ({why}); {fix}", errno=exc.errno, path=str(dst))
