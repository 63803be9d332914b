"""Pack training shards for a trip: keep a random subset of each subject's points and compress
(masks compress ~10x). Used to carry the synthetic set to an accelerator machine.

    python -m streamrecon.training.pack SRC_SEED_DIR DST_SEED_DIR --points 5000 --shards 116
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional

import numpy as np


def pack_shard(src: Path, dst: Path, points: Optional[int], seed: int = 0) -> None:
    """Copy one shard keeping ``points`` points per subject (the same random subset for all
    subjects of the shard, drawn with ``seed``), compressed."""
    with np.load(src) as z:
        d = {k: z[k] for k in z.files}
    p = d["points"].shape[1]
    if points is not None and points < p:
        sel = np.sort(np.random.default_rng(seed).choice(p, points, replace=False))
        occ = np.unpackbits(d["occupancy"], axis=-1)[:, :p]
        from .dataset import stored_uniform_points

        # sel is sorted, so the uniform samples (the last ones) stay last: count the survivors
        d["uniform_points"] = np.array(int((sel >= p - stored_uniform_points(d)).sum()))
        d["points"] = d["points"][:, sel]
        d["occupancy"] = np.packbits(occ[:, sel], axis=-1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp.npz")
    np.savez_compressed(tmp, **d)
    os.replace(tmp, dst)


def pack_dir(src: Path, dst: Path, points: Optional[int], shards: Optional[int]) -> int:
    """Pack the first ``shards`` training shards of ``src`` (and its validation shard, whole)."""
    train = sorted(p for p in Path(src).glob("shard_*.npz") if p.name != "shard_val.npz")
    if shards is not None:
        train = train[:shards]
    for p in train:
        pack_shard(p, Path(dst) / p.name, points)
    val = Path(src) / "shard_val.npz"
    if val.exists():
        pack_shard(val, Path(dst) / val.name, None)
    return len(train)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--points", type=int, default=None, help="points kept per subject (default: all)")
    ap.add_argument("--shards", type=int, default=None, help="first N training shards (default: all)")
    a = ap.parse_args(argv)
    n = pack_dir(Path(a.src), Path(a.dst), a.points, a.shards)
    print(f"packed {n} shards into {a.dst}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
