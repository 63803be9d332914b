"""Training checkpoints -> embedded-format weights (``streamrecon export-weights``).

One checkpoint is exported as it is. Several are averaged tensor by tensor (a "model soup"):
runs fine-tuned from the same start stay in one basin of the loss, and the mean of their weights
behaves like the mean of their predictions at the cost of one network (docs/embedded_model.md has
the measured effect). Averaging needs identical architectures; the result's ``meta`` names every
source with its step and run settings so the file says how it was made.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence, Tuple, Union

from ..errors import CheckpointError

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
    ``default.pt``), as {"net": config JSON, "model": state dict, "step", "train_config"}."""
    import torch

    from ..embedded.model import FORMAT
    from .loop import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; give training checkpoints (runs/NAME/last.pt) or embedded weights")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        meta = obj.get("meta") or {}
        return {"net": obj["config"], "model": obj["state_dict"], "step": int(meta.get("step", 0)),
                "train_config": meta.get("train_config", "")}
    c = load_checkpoint(path)
    return {"net": c["net"], "model": c["model"], "step": int(c["step"]), "train_config": c["config"]}


def export_weights(sources: Sequence[PathLike], dst: PathLike, note: str = "") -> Tuple[Path, dict]:
    """Write the (mean of the) checkpoints ``sources`` (see ``read_source``) to ``dst`` in the
    embedded format; returns (path, meta). All sources must have the same network config."""
    from ..embedded.model import save_embedded
    from ..embedded.net import EmbeddedNet, NetConfig

    cks = [read_source(p) for p in sources]
    if not cks:
        raise CheckpointError("nothing to export: no checkpoints given")
    nets = [c["net"] for c in cks]
    if any(n != nets[0] for n in nets[1:]):
        raise CheckpointError("the checkpoints have different network configs; only one architecture can be averaged")
    net = EmbeddedNet(NetConfig.from_json(nets[0]))
    net.load_state_dict(average_state_dicts([c["model"] for c in cks]))
    srcs: List[dict] = [{"path": str(p), "step": c["step"], "train_config": c["train_config"]} for p, c in zip(sources, cks)]
    meta = {"step": max(s["step"] for s in srcs), "train_config": srcs[-1]["train_config"]}
    if len(srcs) > 1:
        meta["averaged"] = json.dumps(srcs)
    if note:
        meta["note"] = note
    return save_embedded(dst, net, meta), meta
