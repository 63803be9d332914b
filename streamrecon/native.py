"""Lazy access to the compiled ``streamrecon._native`` extension (built from CMakeLists.txt by the
package build). A failed load is cached and re-raised with its cause; callers that have a
pure-Python fallback use ``native_or_none()`` and warn once."""
from __future__ import annotations

import logging
from types import ModuleType
from typing import Optional

log = logging.getLogger(__name__)
ABI_VERSION = 9
"""the kernels this code calls (native/module.cpp's ABI_VERSION): an older build (a checkout
updated without reinstalling) is treated as missing, so the Python twins run."""
_module: Optional[ModuleType] = None
_error: Optional[BaseException] = None
_warned = False


def load_native() -> ModuleType:
    """Return the native module or raise ImportError (with the original cause) if it is missing."""
    global _module, _error
    if _module is not None:
        return _module
    if _error is None:
        try:
            from . import _native  # type: ignore[attr-defined]

            if getattr(_native, "ABI_VERSION", 0) < ABI_VERSION:
                raise ImportError(f"the built extension has ABI {getattr(_native, 'ABI_VERSION', 0)}, this code "
                                  f"needs {ABI_VERSION} (rebuild it: `pip install -e .` or ./setup.sh)")
            _module = _native
            return _module
        except ImportError as exc:
            _error = exc
    raise ImportError(
        "streamrecon's native extension is not built; reinstall with `pip install -e .` "
        f"(cause: {_error})"
    ) from _error


def native_or_none(what: str) -> Optional[ModuleType]:
    """The native module, or None with one warning naming ``what`` falls back."""
    global _warned
    try:
        return load_native()
    except ImportError as exc:
        if not _warned:
            log.warning("%s: native extension unavailable, using the Python fallback (%s)", what, exc)
            _warned = True
        return None
