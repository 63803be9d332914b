"""Process set-up (streamrecon.process): huge pages for torch's large tensors are switched on
before torch loads, a user's own setting wins, and a late call says it is too late."""
import os
import subprocess
import sys

import pytest

CODE = """
import os, sys
from streamrecon.process import prepare_process
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
from streamrecon.process import _fix_mmap_threshold, release_free_heap
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
