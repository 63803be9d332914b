"""``streamrecon engines list|build|clean``: the compiled-engine cache (see streamrecon.backends)."""
from __future__ import annotations

import argparse

from ..backends.config import BACKENDS, PRECISIONS


def register(sub) -> None:
    p = sub.add_parser("engines", help="list, build or clean cached compiled engines",
                       description="Compiled engines (ONNX, TensorRT) are cached under engines/ "
                       "(or $STREAMRECON_ENGINES, or ~/.cache/streamrecon/engines), keyed by "
                       "checkpoint hash, input shapes, precision and backend version.")
    p.add_argument("action", choices=("list", "build", "clean"))
    p.add_argument("--cache-dir", "--engines-dir", dest="cache_dir", default=None,
                   help="engine folder (default: see above; --engines-dir as on run/live/reconstruct)")
    p.add_argument("--stale", action="store_true", help="clean: remove only stale or foreign engines")
    p.add_argument("--checkpoint", default=None, help="build: model checkpoint (default: the embedded model)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="build: backend (default auto)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=256, help="build: accepted for compatibility; PIFuHD engines do not depend on it (the point axis is dynamic)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..backends.cache import EngineCache

    cache = EngineCache(args.cache_dir)
    if args.action == "list":
        entries = cache.entries()
        if not entries:
            print(f"no engines in {cache.root}")
            return 0
        print(f"engines in {cache.root}:")
        for e in entries:
            f = e.get("fields", {})
            print(f"  {e['file']:<32} {e['status']:<7} {f.get('backend', '?'):<12} {f.get('precision', '?'):<5} "
                  f"{f.get('artefact', '?'):<40} shapes={f.get('input_shapes')} {e.get('bytes', 0) / 1e6:.1f} MB")
        return 0
    if args.action == "clean":
        removed = cache.clean(stale_only=args.stale)
        print(f"removed {len(removed)} file(s) from {cache.root}")
        return 0
    return _build(args)


def _build(args: argparse.Namespace) -> int:
    from ..api import load_model
    from ..backends import BackendConfig
    from ..errors import UserInputError

    from ..backends.cache import EngineCache, file_sha256

    try:
        cfg = BackendConfig(backend=args.backend, precision=args.precision, device=args.device, cache_dir=args.cache_dir)
    except ValueError as exc:
        raise UserInputError(f"engines build: {exc}") from None
    model = load_model(args.checkpoint, device=args.device)
    if not hasattr(model, "compile"):
        raise UserInputError(f"model {model.name!r} has no compiled path; use --backend eager")
    if args.checkpoint is not None and getattr(model, "weights_id", "unset") is None:
        model.weights_id = "sha256:" + file_sha256(args.checkpoint)
    before = {e["file"] for e in EngineCache(args.cache_dir).entries()}
    model.compile(cfg)
    after = EngineCache(args.cache_dir).entries()
    new = [e for e in after if e["file"] not in before]
    mine = [e for e in after if str(e.get("fields", {}).get("artefact", "")).startswith(f"{model.name}:{getattr(model, 'weights_id', '')}:")]
    print(f"{model.name}: backend {getattr(model, 'backend', args.backend)}; {len(new)} engine(s) built, "
          f"{len(mine) - len(new)} reused, in {EngineCache(args.cache_dir).root}")
    return 0
