"""Process set-up (streamrecon.cli.process): huge pages for torch's large tensors are switched on
before torch loads, a user's own setting wins, and a late call says it is too late."""
import os
import subprocess
import sys

import pytest

CODE = """
import os, sys
from streamrecon.cli.process import prepare_process
{before}
on = prepare_process()
import torch
big = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MB: above torch's 2 MB huge-page threshold
# Mappings of >= 64 MB that carry the huge-page advice (VmFlags "hg", from madvise(MADV_HUGEPAGE)):
# what the setting asks of the kernel. Whether the kernel then finds free 2 MB pages depends on
# memory pressure (AnonHugePages), so that is not what is checked.
advised, size = 0, 0
for line in open("/proc/self/smaps"):
    if line.startswith("Size:"):
        size = int(line.split()[1])
    elif line.startswith("VmFlags:") and size >= 64 * 1024 and "hg" in line.split()[1:]:
        advised += 1
print(on, os.environ.get("THP_MEM_ALLOC_ENABLE"), advised)
"""


def _thp_available() -> bool:
    try:
        return "[never]" not in open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return False


def _run(before: str = "", env_value=None) -> list:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE.format(before=before)], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.split()


@pytest.mark.skipif(not _thp_available(), reason="transparent huge pages are off or absent (Linux only)")
def test_huge_pages_switched_on_before_torch_loads():
    on, value, advised = _run()
    assert (on, value) == ("True", "1")
    advised_off = int(_run(env_value="0")[2])
    # torch asked the kernel for huge pages for the 64 MB tensor (and only with the setting)
    assert int(advised) >= 1 and advised_off == 0, (advised, advised_off)


def test_users_own_setting_wins():
    assert _run(env_value="0")[:2] == ["False", "0"]


def test_late_call_does_not_claim_an_effect():
    # torch already imported without the variable: nothing is set behind the user's back
    assert _run(before="import torch")[:2] == ["False", "None"]


def test_cli_prepares_the_process_before_importing_torch():
    code = ("import os, sys\nfrom streamrecon.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('THP_MEM_ALLOC_ENABLE'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split()[-2:] == ["1", "False"]


FREED = """
import torch
from streamrecon.cli.process import _fix_mmap_threshold, release_free_heap
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
_fix_mmap_threshold(16 << 20)  # as the CLI sets it: 1 MB blocks come from the heap
big, small = [], []
for _ in range(300):  # 300 MB in 1 MB blocks, each pinned in place by a small live one above it
    big.append(torch.ones(1 << 18))
    small.append(torch.ones(16))
del big
before = rss_mb()
ok = release_free_heap()
print(ok, before - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
def test_release_free_heap_returns_freed_blocks_to_the_system():
    """What ShardDataset.refresh relies on after joining the shards: freed heap blocks stay
    resident until trimmed."""
    out = subprocess.run([sys.executable, "-c", FREED], capture_output=True, text=True, check=True, timeout=120)
    ok, released_mb = out.stdout.split()
    assert ok == "True" and float(released_mb) > 200, out.stdout


# In a fresh interpreter: how much the main heap shrinks when a freed 8 MB block (under the 16 MB
# mmap threshold, so from the heap) is at its top; mode "old" is the mmap threshold alone.
TRIM = r"""
import ctypes, os, sys
from streamrecon.cli.process import _fix_mmap_threshold, prepare_process
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print("no-mallinfo2"); sys.exit(0)
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MI
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "old":
    _fix_mmap_threshold(16 << 20)
else:
    prepare_process()
p = libc.malloc(8 << 20)
ctypes.memset(p, 1, 8 << 20)
held = libc.mallinfo2().arena
libc.free(p)
print(held - libc.mallinfo2().arena)
"""


def _heap_shrink(mode, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "STREAMRECON_MALLOC_TUNING")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", TRIM, mode], capture_output=True, text=True, env=e, check=True, timeout=120)
    if out.stdout.strip() == "no-mallinfo2":
        pytest.skip("this C library has no mallinfo2 (glibc < 2.33)")
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_prepare_process_keeps_freed_frame_buffers_in_the_heap():
    """With the mmap threshold fixed, glibc's trim threshold stays at 128 KB and a freed block at
    the heap's top goes back to the kernel (to be faulted in again next frame); prepare_process
    raises it, and leaves malloc alone when the user has set glibc's own knobs."""
    assert _heap_shrink("old") >= 7 << 20
    assert _heap_shrink("new") == 0
    assert _heap_shrink("new", MALLOC_MMAP_THRESHOLD_=str(16 << 20)) >= 7 << 20  # theirs alone


def test_malloc_tuning_yields_to_the_users_settings():
    from streamrecon.cli.process import malloc_tuning_wanted

    assert malloc_tuning_wanted({}) and malloc_tuning_wanted({"PATH": "/bin", "STREAMRECON_MALLOC_TUNING": "1"})
    assert not malloc_tuning_wanted({"STREAMRECON_MALLOC_TUNING": "0"})
    assert not malloc_tuning_wanted({"STREAMRECON_MALLOC_TUNING": "off"})
    assert not malloc_tuning_wanted({"MALLOC_ARENA_MAX": "2"})
    assert not malloc_tuning_wanted({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"})
