"""system/heap.py: with it, a large block freed and allocated again costs no fresh page faults."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from system import heap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _glibc():
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


GLIBC = _glibc()

# A child process (the settings act on a whole process) allocates, touches and frees a 64 MB
# block from a worker thread, as XLA's executor does, and says whether the block's pages are still
# mapped after the free (/proc/self/maps). By default glibc unmaps a block that large on free, and
# the next allocation maps and faults in fresh pages; kept, the block stays in the heap for reuse.
CHILD = textwrap.dedent("""
    import json, sys, threading
    sys.path.insert(0, {root!r})
    from system import heap
    applied = heap.keep_freed_memory()
    import numpy as np

    def mapped(address):
        with open("/proc/self/maps") as maps:
            for line in maps:
                low, high = (int(a, 16) for a in line.split()[0].split("-"))
                if low <= address < high:
                    return True
        return False

    result = {{}}
    def work():
        addresses = []
        for _ in range(3):
            block = np.ones(16 * 2 ** 20, np.float32)  # 64 MB, every page touched
            addresses.append(block.ctypes.data)
            del block
        result["mapped_after_free"] = mapped(addresses[-1])
        result["reused"] = len(set(addresses)) == 1
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    print(json.dumps(dict(result, applied=applied)))
""")


def run_child(malloc_env):
    env = dict(os.environ, **{heap.ENV: malloc_env})
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT)], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_a_freed_large_block_stays_mapped_for_the_next_allocation():
    kept, default = run_child("keep"), run_child("default")
    assert kept == {"applied": True, "mapped_after_free": True, "reused": True}
    assert default["applied"] is False and default["mapped_after_free"] is False  # the case it removes


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setattr(heap, "_applied", None)
    monkeypatch.setenv(heap.ENV, "default")
    assert heap.applied() is None
    assert heap.keep_freed_memory() is False
    assert heap.applied() is False
