"""How many CPUs this process may really use: its affinity and its cgroup quota.

``os.cpu_count()`` counts the machine's cores. On a shared node a job is
usually confined to fewer, by its CPU affinity (``taskset``, a batch
scheduler's cpuset) or by a CPU-time quota of its control group (containers,
Slurm, Kubernetes); a thread pool sized to the machine then oversubscribes its
share, and every thread waits for the others. `available_cpus` is what astro_cl
uses wherever it picks a default thread or worker count.
"""

import math
import os
from pathlib import Path

__all__ = ["available_cpus"]

#: Where the cgroup file systems are mounted (v2 unified, or v1 per controller).
_CGROUP_ROOT = Path("/sys/fs/cgroup")
#: This process's cgroup membership, one ``id:controllers:path`` line per hierarchy.
_PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def _read(path):
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _membership():
    """Return ``(v2_path, v1_cpu_path)``: this process's cgroup paths (or None)."""
    v2 = v1 = None
    for line in (_read(_PROC_SELF_CGROUP) or "").splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidates(base, path):
    """Directories from the process's own cgroup up to ``base``: limits of ancestors apply too.

    Inside a container the cgroup path may be the host's, not mounted here;
    then only ``base`` (the container's own cgroup) exists.
    """
    out = []
    parts = [p for p in (path or "").split("/") if p and p not in (".", "..")]
    for n in range(len(parts), 0, -1):
        out.append(base.joinpath(*parts[:n]))
    out.append(base)
    return out


def _v2_limit(directory):
    text = _read(directory / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    try:
        quota, period = float(quota), float(period or 100000)
    except ValueError:  # "max": no limit
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(directory):
    try:
        quota = float(_read(directory / "cpu.cfs_quota_us") or "")
        period = float(_read(directory / "cpu.cfs_period_us") or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None  # quota -1: no limit


def _cgroup_cpu_limit():
    """Return the CPU quota (in CPUs, may be fractional) of this process's cgroups, or None."""
    v2, v1 = _membership()
    limits = []
    if v2 is not None:
        limits += [_v2_limit(d) for d in _candidates(_CGROUP_ROOT, v2)]
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = _CGROUP_ROOT / mount
        if base.is_dir():
            limits += [_v1_limit(d) for d in _candidates(base, v1)]
            break
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def available_cpus():
    """Return how many CPUs this process may use: its affinity, capped by its cgroup quota.

    The count starts from the CPUs the process may run on
    (`os.sched_getaffinity`, else `os.cpu_count`) and is capped by the CPU
    quota of its control group, cgroup v2 (``cpu.max``) or v1
    (``cpu.cfs_quota_us / cpu.cfs_period_us``), rounded up: a quota of 1.5
    CPUs gives 2. It is read anew on every call (a process's affinity can
    change), from a few small files.

    Returns
    -------
    n : int
        At least 1.

    Examples
    --------
    >>> from astro_cl.utils import available_cpus
    >>> available_cpus() >= 1
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        n = min(n, math.ceil(limit))
    return max(1, int(n))
