"""Process-wide settings of the C memory allocator for CPU training.

Augmentation chains and training steps allocate and free tensors of many
megabytes at a high rate. With glibc's default settings every such block
is obtained from the kernel with ``mmap`` and returned on ``free``, so each
new tensor is faulted in and zero-filled page by page, a large share of the
time of the augmentation chain and of a training step (figures in the user
guide, :doc:`/user_guide/training`, "CPU performance").
`retain_freed_memory` asks malloc to keep freed memory for reuse instead.
"""

import ctypes
import ctypes.util
import functools
import os
import sys

__all__ = ["RETAIN_MEMORY_ENV", "retain_freed_memory"]

#: Environment variable that turns `retain_freed_memory` off when set to ``0``.
RETAIN_MEMORY_ENV = "ASTRO_CL_RETAIN_MEMORY"

# mallopt() parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


@functools.cache
def retain_freed_memory():
    """Keep freed memory in the process for reuse (glibc malloc), once per process.

    Sets ``M_MMAP_MAX = 0`` (large blocks come from the heap, not from fresh
    ``mmap`` regions) and the largest ``M_TRIM_THRESHOLD`` (freed memory is
    not handed back to the kernel), so that the large tensors of successive
    steps are recycled instead of being faulted in and zeroed again. The
    process's resident memory then stays near its peak until it exits, as
    with PyTorch's caching allocators on GPUs.

    Called by `~astro_cl.training.trainer.Trainer.fit` on CPU, by
    `~astro_cl.augment.compose.Compose` when it processes a batch in chunks,
    and in the worker processes of `~astro_cl.utils.executors.TaskRunner`
    (``"processes"`` and ``"dask"``) before their first task. Set the
    environment variable ``ASTRO_CL_RETAIN_MEMORY=0`` to keep the
    allocator's defaults. Elsewhere than glibc on Linux this does nothing.

    Returns
    -------
    applied : bool
        Whether the settings were applied (the result of the first call).
    """
    if os.environ.get(RETAIN_MEMORY_ENV, "1").strip() == "0":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc (e.g. musl)
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
