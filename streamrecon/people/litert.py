"""The person models' files and runtime: the ``.tflite`` files bundled in the ``mediapipe``
wheel (found without importing mediapipe, whose Python layer needs protobuf < 5 and numpy < 2)
and a LiteRT interpreter to run them. Nothing is downloaded."""
from __future__ import annotations

import contextlib
import importlib.util
import os

from ..errors import BackendUnavailableError

INSTALL_HINT = (
    "install the model files and runtime: `pip install --no-deps mediapipe==0.10.21` and "
    "`pip install ai-edge-litert` (or pick `--detector hog`)"
)


def mediapipe_model(*parts: str, what: str) -> str:
    """Path of ``mediapipe/modules/<parts...>`` in the installed wheel; ``BackendUnavailableError``
    naming ``what`` (e.g. "mediapipe detector") when the package or the file is absent."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"{what}: package 'mediapipe' not found; {INSTALL_HINT}")
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "modules", *parts)
    if not os.path.isfile(path):
        raise BackendUnavailableError(f"{what}: {path} is missing (this mediapipe version does not bundle it); {INSTALL_HINT}")
    return path


def interpreter(path: str, num_threads: int, what: str = "mediapipe detector"):
    """A LiteRT (or tflite_runtime) interpreter of ``path`` with its tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore
        except ImportError as exc:
            raise BackendUnavailableError(f"{what}: no TFLite runtime ({exc}); {INSTALL_HINT}") from exc
    with _native_stderr_silenced():  # the runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate"
        it = Interpreter(model_path=path, num_threads=num_threads)
        it.allocate_tensors()
    return it


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 pointed at /dev/null for the duration: LiteRT's C++ logger writes an INFO
    line there when it creates its CPU delegate, which would break the CLI's one-line errors and
    clutter its output. Python exceptions are unaffected (they are raised, not printed)."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
