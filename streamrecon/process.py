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
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

THP_VAR = "THP_MEM_ALLOC_ENABLE"
MMAP_THRESHOLD_BYTES = 16 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def prepare_process() -> bool:
    """Enable huge pages for torch's large CPU tensors unless ``THP_MEM_ALLOC_ENABLE`` is set
    already (``0`` opts out). Returns whether the variable is on; when torch was imported before
    this call the setting may come too late for this process (logged at debug level)."""
    _fix_mmap_threshold(MMAP_THRESHOLD_BYTES)
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


def _fix_mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)`` on glibc; False elsewhere or when refused."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes)))


def release_free_heap() -> bool:
    """Hand the heap's free memory back to the system (glibc ``malloc_trim(0)``); False elsewhere.
    Blocks under the mmap threshold above (16 MB) come from the heap, and a freed block that is
    not at its top stays resident: the training data is read shard by shard (~10 MB a key) and
    joined, and without this the freed shard copies stayed in the process (12800 subjects: 18 GB
    resident for 9.5 GB of data)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
