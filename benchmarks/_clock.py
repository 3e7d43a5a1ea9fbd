"""Wall and CPU clocks with the load average, so that a run on a loaded machine is recognisable.

On a shared machine the wall time of a benchmark depends on what else runs;
the CPU time of the process (all its threads) much less. The scripts print
both, with the load average before and after.
"""

import os
import time

__all__ = ["Clock", "context_line", "load_average"]


def load_average():
    """Return the 1, 5 and 15 minute load averages as text."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def context_line():
    """Return a line naming the usable CPUs, ``OMP_WAIT_POLICY`` and the load average."""
    from astro_cl.utils import available_cpus

    return (f"{available_cpus()} usable CPUs (machine {os.cpu_count()}), OMP_WAIT_POLICY="
            f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {load_average()}")


class Clock:
    """Context manager measuring wall time and this process's CPU time (all threads).

    Examples
    --------
    >>> with Clock() as clock:
    ...     pass
    >>> clock.wall >= 0 and clock.cpu >= 0
    True
    """

    def __enter__(self):
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
        return False

    def __str__(self):
        return f"{self.wall:.3f} s wall, {self.cpu:.3f} s CPU"
