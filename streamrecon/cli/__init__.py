"""The ``streamrecon`` command line. Each subcommand lives in ``streamrecon/cli/<name>.py``
and exposes ``register(subparsers)``, which adds its parser and sets ``func`` (called with the
parsed args, returns an exit code). Command modules import heavy dependencies inside ``func`` only,
so ``streamrecon --help`` answers instantly.

User mistakes (``StreamreconError``) are printed as one line ``streamrecon: error: ...`` with a
non-zero exit code; Ctrl-C exits with 130; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import StreamreconError

# Subcommand modules, in the order shown by --help. A module that does not exist yet is skipped.
COMMANDS = (
    "reconstruct",
    "run",
    "live",
    "view",
    "subscribe",
    "detect",
    "bench",
    "train",
    "eval-model",
    "export-weights",
    "evaluate",
    "engines",
    "keys",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrecon",
        description="People on video to 3D meshes per frame (PIFuHD family), streamed over ZeroMQ.",
    )
    parser.add_argument("--version", action="version", version=f"streamrecon {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        name = name.replace("-", "_")  # "eval-model" lives in cli/eval_model.py
        try:
            module = importlib.import_module(f"streamrecon.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"streamrecon.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    # everything under the one handler: a Ctrl-C while the commands' modules are still being
    # imported (the first ~0.3 s) is an interruption like any other, not a traceback
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("streamrecon: interrupted", file=sys.stderr)
        return 130


def _main(argv: Optional[Sequence[str]]) -> int:
    from .process import prepare_process

    prepare_process()  # before anything imports torch (huge pages for large tensors)
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except StreamreconError as exc:
        print(f"streamrecon: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
