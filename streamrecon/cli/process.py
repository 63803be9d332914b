"""Process-wide settings that must be made before torch is imported (the CLI and the benchmark
scripts call ``prepare_process`` first thing; library users may call it, or set the variable).

Transparent huge pages for large tensors. PIFuHD's fine filter makes fresh 256 MB activations
(256 channels at 512 x 512) dozens of times per frame. glibc serves each from a new ``mmap`` and
the kernel faults it in 4 KiB at a time: 65,536 page faults per tensor, which cost more than the
arithmetic of a GroupNorm, a ``cat`` or a copy on it (measured on the 2-core AMD EPYC: a 256 MB
``clone`` 97 -> 49 ms, GroupNorm 107 -> 29 ms; the fine filter's GroupNorms 1.22 -> 0.43 s and
its concatenations 1.20 -> 0.31 s per frame). PyTorch's CPU allocator aligns allocations of
2 MB and more to huge pages and ``madvise``s them when ``THP_MEM_ALLOC_ENABLE=1`` is in the
environment; it reads the variable once, when torch is first loaded, so it must be set before.
Only memory the kernel hands out changes: results are bit-identical.

A fixed ``malloc`` mmap threshold (glibc). glibc raises its threshold each time a large block is
freed (up to 32 MB); afterwards blocks of up to 32 MB come from the heap, where the octree's and
the query batches' freed arrays stay resident, while each larger block is a fresh mapping that
is faulted in again. Measured on 2 cores: full-size PIFuHD at 512, frame peak after three frames
3.25 / 3.35 / 3.44 GiB with the threshold fixed at 4 / 16 / 32 MB; the embedded model's
``streamrecon run`` at 128, 7.3 / 8.3 / 7.9 fps (1.68M / 1.30M / 1.18M page faults for 120
frames). 16 MB it is. Set with ``mallopt`` at run time; a no-op where the C library is not glibc.

A high trim threshold (glibc). Fixing the mmap threshold also stops glibc's dynamic adjustment
of the trim threshold, which then stays at 128 KB: whenever more than that is free at the top
of a heap, glibc hands it back, and the next frame's blocks fault the same pages in again. The
threshold is therefore fixed at 1 GB and the heap grows 64 MB at a time. Measured (2026-12-02) on a
2-core AMD EPYC (Zen 5) with ``benchmarks/bench_run.py``, the embedded model, three back-to-back
pairs at 128: 9.53 / 8.23 / 8.24 -> 10.19 / 8.73 / 9.79 fps, system CPU 34-39 -> 18-22 ms a frame;
at 256: 2.57 -> 3.23 fps, 155 -> 55 ms; peak RSS +30-60 MB.

Neither malloc setting is made when the user set glibc's own (any ``MALLOC_*`` variable or
``GLIBC_TUNABLES``: their choice wins) or ``STREAMRECON_MALLOC_TUNING=0``.
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

THP_VAR = "THP_MEM_ALLOC_ENABLE"
MMAP_THRESHOLD_BYTES = 16 << 20
TRIM_THRESHOLD_BYTES = 1 << 30
TOP_PAD_BYTES = 64 << 20
# glibc's mallopt parameter numbers (<malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def prepare_process() -> bool:
    """Fix glibc's mmap and trim thresholds (unless ``malloc_tuning_wanted`` says no) and enable
    huge pages for torch's large CPU tensors unless ``THP_MEM_ALLOC_ENABLE`` is set already (``0``
    opts out). Returns whether the variable is on; when torch was imported before
    this call the setting may come too late for this process (logged at debug level)."""
    if malloc_tuning_wanted(os.environ):
        _fix_mmap_threshold(MMAP_THRESHOLD_BYTES)
        _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        _mallopt(_M_TOP_PAD, TOP_PAD_BYTES)
    if "torch" not in sys.modules:
        os.environ.setdefault(THP_VAR, "1")
    elif THP_VAR not in os.environ:
        log.debug("huge pages for tensors: torch was imported before prepare_process; not in effect")
    return os.environ.get(THP_VAR) == "1"


def _glibc():
    """The C library when it is glibc (``mallopt``, ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc's own: absent from musl and others
        return libc
    except (OSError, AttributeError):  # not glibc
        return None


def malloc_tuning_wanted(environ) -> bool:
    """Whether ``prepare_process`` sets malloc's thresholds: not with ``STREAMRECON_MALLOC_TUNING=0``
    nor when the user set glibc's own knobs (a ``MALLOC_*`` variable, ``GLIBC_TUNABLES``)."""
    if environ.get("STREAMRECON_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return not any(k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" for k in environ)


def _mallopt(param: int, value: int) -> bool:
    """``mallopt(param, value)`` on glibc; False elsewhere or when refused."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(int(param), int(value)))


def _fix_mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)`` on glibc; False elsewhere or when refused."""
    return _mallopt(_M_MMAP_THRESHOLD, nbytes)


def release_free_heap() -> bool:
    """Hand the heap's free memory back to the system (glibc ``malloc_trim(0)``); False elsewhere.
    Blocks under the mmap threshold above (16 MB) come from the heap, and a freed block that is
    not at its top stays resident: the training data is read shard by shard (~10 MB a key) and
    joined, and without this the freed shard copies stayed in the process (12800 subjects: 18 GB
    resident for 9.5 GB of data)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
