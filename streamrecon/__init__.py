"""streamrecon: people on video to 3D meshes per frame (PIFuHD family), streamed over ZeroMQ.

Importing this package is light on purpose: no torch, av, open3d, zmq or tensorrt is imported
until a function that needs it is called (a test checks ``sys.modules`` in a subprocess).
The public API is re-exported lazily below.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "load_model": "streamrecon.api",
    "reconstruct_image": "streamrecon.api",
    "Mesh": "streamrecon.types",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamrecon' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
