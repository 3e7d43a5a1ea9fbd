"""Worker processes of TaskRunner keep freed memory for reuse; the caller's process is left alone."""

import pytest

from astro_cl.utils import memory
from astro_cl.utils.executors import TaskRunner


def _scaled(context, item):
    return context * item


@pytest.fixture
def calls(monkeypatch):
    """Record the calls of `retain_freed_memory` instead of changing this process's allocator."""
    made = []
    monkeypatch.setattr(memory, "retain_freed_memory", lambda: made.append(1) or True)
    return made


def test_dask_workers_retain_freed_memory(calls):
    from distributed import Client, LocalCluster

    # an in-process cluster: the worker's calls are visible (and patched) here
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            TaskRunner("dask", client=client) as runner:
        done, lost = runner.run(_scaled, 3, [1, 2])
    assert done == {1: 3, 2: 6} and not lost
    assert len(calls) == 2  # before each task (the setting itself is applied once per process)


@pytest.mark.parametrize("workers", [1, 2])
def test_threads_leave_the_allocator_alone(calls, workers):
    with TaskRunner("threads", workers=workers) as runner:
        done, _ = runner.run(_scaled, 3, [1, 2])
    assert done == {1: 3, 2: 6}
    assert calls == []
