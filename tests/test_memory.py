"""`astro_cl.utils.memory.retain_freed_memory`: applied once, opt-out by environment."""

import subprocess
import sys

import pytest

from astro_cl.utils import memory

_PROBE = """
import resource, sys
import numpy as np
from astro_cl.utils.memory import retain_freed_memory
applied = retain_freed_memory()
assert retain_freed_memory() is applied  # cached: once per process
for _ in range(3):  # warm up: the first blocks are faulted in either way
    np.ones(10_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(10_000_000)  # 80 MB (above the largest dynamic mmap threshold), freed at once
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(applied, faults)
"""


def _probe(env_value):
    import os

    env = {**os.environ, memory.RETAIN_MEMORY_ENV: env_value}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    applied, faults = _probe("1")
    if not applied:
        pytest.skip("not glibc")
    off_applied, off_faults = _probe("0")
    assert not off_applied
    # with the defaults, every 80 MB block is mapped afresh: 20 x 20,000 page faults
    # (fewer where the kernel backs them with huge pages); recycled: about none
    assert off_faults > 2_000
    assert faults < off_faults / 20
