"""Independent tasks on threads, worker processes or a Dask cluster, with results as they finish.

`TaskRunner` is the one place where astro_cl meets a pool of workers. It runs
``func(context, item)`` for many items; ``context`` (a survey, a fitted
preprocessor, a model path) is sent to each worker once, not once per task:

* ``"threads"``: a thread pool in this process (NumPy and I/O release the GIL);
* ``"processes"``: worker processes on this machine (started with ``spawn``,
  so nothing of the parent's threads or locks is inherited); ``context`` goes
  to each worker through its initializer;
* ``"dask"``: a `dask.distributed` cluster, an existing one (``scheduler``, the
  address of its scheduler, e.g. one started by dask-jobqueue on a batch
  system) or a `~distributed.LocalCluster` of ``workers`` single-threaded
  worker processes started here; ``context`` is scattered to every worker.

Infrastructure failures (a worker killed, a cluster restarted, a broken pool)
are not raised: the items they took are reported as *lost*, and the caller
runs them again. Errors raised by ``func`` itself are raised, so task
functions that must go on after a failure catch their own errors.

In every worker, BLAS and OpenMP are limited to one thread while a task runs:
the workers are the parallelism, and a task's floating-point results then do
not depend on the executor or the number of workers.

Worker processes (``"processes"``, and the Dask workers that run a task of
`TaskRunner`) also keep freed memory for reuse
(`~astro_cl.utils.memory.retain_freed_memory`): a task that reads and
preprocesses a cube allocates and frees hundreds of megabytes, and Dask's
workers hand every freed block above 64 kB back to the kernel
(``MALLOC_TRIM_THRESHOLD_=65536``), so that each task would fault it in and
zero it again, at a cost in kernel time that grows with the number of
workers per machine. A worker's resident memory then stays near its peak;
``ASTRO_CL_RETAIN_MEMORY=0`` in the workers' environment turns this off.
"""

import concurrent.futures as cf
import contextlib
import itertools
import threading
import uuid

from astro_cl.exceptions import ValidationError

__all__ = ["EXECUTORS", "WORKER_LOCK", "TaskRunner"]

#: Executors `TaskRunner` knows.
EXECUTORS = ("threads", "processes", "dask")

#: Contexts of the worker processes of the ``"processes"`` executor, by token.
_CONTEXTS = {}
#: Serialises the calls of components that are not thread-safe in a worker with
#: several threads (a Dask worker started with ``--nthreads 4``, say).
WORKER_LOCK = threading.Lock()
#: Seconds to wait for a Dask cluster to have a worker before giving a pass up.
_WAIT_FOR_WORKERS = 600


@contextlib.contextmanager
def _single_threaded_blas():
    """Limit BLAS and OpenMP pools to one thread (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


def _init_process(token, context):
    """Keep the context in a ``"processes"`` worker, and limit it to one BLAS thread."""
    from astro_cl.utils.memory import retain_freed_memory

    retain_freed_memory()
    _CONTEXTS[token] = context
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return
    # kept for the life of the worker: each worker is one of the parallel lanes
    _CONTEXTS[token, "limits"] = threadpool_limits(limits=1)


def _process_call(token, func, item):
    return func(_CONTEXTS[token], item)


def _dask_call(func, context, item):
    from astro_cl.utils.memory import retain_freed_memory

    retain_freed_memory()  # once per worker process (cached)
    with _single_threaded_blas():
        return func(context, item)


def _lost_error(exc):
    """Whether an exception from a future means the worker or pool was lost."""
    if isinstance(exc, (cf.CancelledError, cf.process.BrokenProcessPool)):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    # dask.distributed's: a worker died too often, a connection closed, a restart
    return bool(names & {"KilledWorker", "CommClosedError", "CancelledError",
                         "FutureCancelledError"})


class TaskRunner:
    """Run ``func(context, item)`` over items on threads, processes or a Dask cluster.

    Parameters
    ----------
    executor : {"threads", "processes", "dask"}, optional
        Where tasks run (see the module description).
    workers : int, optional
        Threads, processes, or the worker processes of the LocalCluster
        started for ``"dask"`` without ``scheduler`` (default: the CPUs this
        process may use, `~astro_cl.utils.available_cpus`; 1 for threads).
    scheduler : str, optional
        ``"dask"`` only: address of an existing cluster's scheduler
        (``tcp://host:8786``); none is started then.
    client : `distributed.Client`, optional
        ``"dask"`` only: an open client to use (not closed on exit).

    Notes
    -----
    Use as a context manager: pools and clusters started here are shut
    down on exit.

    Examples
    --------
    >>> from astro_cl.utils.executors import TaskRunner
    >>> with TaskRunner("threads", workers=2) as runner:
    ...     done, lost = runner.run(lambda ctx, x: ctx * x, 10, [1, 2, 3])
    >>> sorted(done.items()), lost
    ([(1, 10), (2, 20), (3, 30)], [])
    """

    def __init__(self, executor="threads", *, workers=None, scheduler=None, client=None):
        if executor not in EXECUTORS:
            msg = f"executor: expected one of {list(EXECUTORS)}, got {executor!r}"
            raise ValidationError(msg)
        if workers is not None and (isinstance(workers, bool) or int(workers) != workers
                                    or int(workers) < 1):
            msg = f"workers: expected a positive integer, got {workers!r}"
            raise ValidationError(msg)
        if (scheduler is not None or client is not None) and executor != "dask":
            msg = (f"scheduler/client: only used with executor='dask', not {executor!r}; "
                   "drop --scheduler or add --executor dask")
            raise ValidationError(msg)
        self.executor = executor
        self.workers = None if workers is None else int(workers)
        self.scheduler = scheduler
        self._client = client
        self._own_client = None
        self._cluster = None
        self._pool = None
        self._token = None
        self._context_id = None
        #: The last error that lost a task (a killed worker, a failed scatter), or None.
        self.last_lost_error = None

    # -- lifecycle -------------------------------------------------------------------
    @property
    def n_workers(self):
        """int: workers tasks run on (threads, processes or Dask worker threads)."""
        if self.executor == "dask":
            info = self.client.scheduler_info()
            return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
        if self.workers is not None:
            return self.workers
        if self.executor == "threads":
            return 1
        from astro_cl.utils.cpus import available_cpus

        return available_cpus()

    @property
    def client(self):
        """`distributed.Client`: the Dask client (``"dask"`` only; connected on first use)."""
        if self.executor != "dask":
            msg = f"TaskRunner: executor {self.executor!r} has no Dask client"
            raise ValidationError(msg)
        if self._client is None:
            self._client = self._own_client = self._connect()
        return self._client

    def _connect(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency
            msg = ("executor 'dask' needs dask.distributed: pip install 'dask[distributed]'"
                   f" ({exc})")
            raise ValidationError(msg) from None
        if self.scheduler is not None:
            try:
                return Client(self.scheduler, timeout="30s")
            except OSError as exc:
                msg = f"--scheduler {self.scheduler!r}: cannot reach a Dask scheduler ({exc})"
                raise ValidationError(msg) from None
        from astro_cl.utils.cpus import available_cpus

        n = self.workers or available_cpus()
        # single-threaded worker processes: the GIL-bound parts of reading and
        # preprocessing then run in parallel too; the dashboard on any free port
        self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                     dashboard_address=_dashboard_address())
        return Client(self._cluster)

    @property
    def dashboard_link(self):
        """Str or None: the Dask dashboard's address, when one is served."""
        if self.executor != "dask":
            return None
        try:
            import bokeh  # noqa: F401 - the dashboard needs it
        except ImportError:
            return None
        return self.client.dashboard_link

    def __enter__(self):
        if self.executor == "dask":
            _ = self.client
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Shut down the pools, client and cluster started here."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    # -- running ---------------------------------------------------------------------
    def _process_pool(self, context):
        import multiprocessing

        if self._pool is None or self._context_id != id(context):
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._token = uuid.uuid4().hex
            self._context_id = id(context)
            self._pool = cf.ProcessPoolExecutor(
                self.n_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_process, initargs=(self._token, context))
        return self._pool

    def run(self, func, context, items, *, on_result=None, window=None):
        """Run ``func(context, item)`` for every item; collect results and lost items.

        Parameters
        ----------
        func : callable
            A module-level function (``"processes"`` and ``"dask"`` pickle it).
        context : object
            Passed to every call; sent to each worker once.
        items : iterable
            One task each; hashable (results are keyed by item).
        on_result : callable, optional
            Called as ``on_result(item, result)`` in this thread as each task
            finishes (progress bars, early stops: an exception raised here
            cancels the tasks not yet finished and is raised).
        window : int, optional
            Tasks in flight at once for threads and processes (default: four
            per worker), so that a long list does not queue all at once.

        Returns
        -------
        results : dict
            Item -> ``func``'s return value, for the tasks that finished.
        lost : list
            Items whose worker was lost (killed, restarted, broken pool);
            running them again is the caller's choice.

        Raises
        ------
        Exception
            What ``func`` raised, for the first task that raised.
        """
        items = list(items)
        results, lost = {}, []
        if not items:
            return results, lost
        if self.executor == "dask":
            return self._run_dask(func, context, items, on_result)
        if self.executor == "threads" and self.n_workers == 1:
            with _single_threaded_blas():
                for item in items:
                    results[item] = func(context, item)
                    if on_result is not None:
                        on_result(item, results[item])
            return results, lost
        if self.executor == "threads":
            pool = cf.ThreadPoolExecutor(self.n_workers, thread_name_prefix="astro-cl")

            def submit(item):
                return pool.submit(func, context, item)
        else:
            pool = self._process_pool(context)
            token = self._token

            def submit(item):
                return pool.submit(_process_call, token, func, item)

        window = max(1, int(window or 4 * self.n_workers))
        pending = {}
        queue = iter(items)
        try:
            with (_single_threaded_blas() if self.executor == "threads"
                  else contextlib.nullcontext()):
                for item in itertools.islice(queue, window):
                    pending[submit(item)] = item
                while pending:
                    finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for future in finished:
                        item = pending.pop(future)
                        exc = future.exception()
                        if exc is not None and _lost_error(exc):
                            self.last_lost_error = exc
                            lost.append(item)
                            continue
                        if exc is not None:
                            raise exc
                        results[item] = future.result()
                        if on_result is not None:
                            on_result(item, results[item])
                    if lost and self.executor == "processes":
                        # a broken pool fails every task it holds: hand them all back
                        lost.extend(pending.values())
                        lost.extend(queue)
                        pending.clear()
                        self._pool = None
                        break
                    for item in itertools.islice(queue, len(finished)):
                        pending[submit(item)] = item
        finally:
            for future in pending:
                future.cancel()
            if self.executor == "threads":
                pool.shutdown(wait=True, cancel_futures=True)
        return results, lost

    def _run_dask(self, func, context, items, on_result):
        import pickle

        from distributed import as_completed

        client = self.client
        results, lost = {}, []
        # after a restart, or before a batch system has started any worker
        client.wait_for_workers(1, timeout=_WAIT_FOR_WORKERS)
        try:
            shared = client.scatter(context, broadcast=True, hash=False)
        except (pickle.PicklingError, TypeError, AttributeError):
            raise  # the context cannot be sent: no retry will help
        except Exception as exc:
            # workers leaving while the context reached them (Dask raises CommClosedError,
            # KeyError, ... then): every item is lost, the caller runs them again
            self.last_lost_error = exc
            return results, list(items)
        prefix = f"astro-cl-{getattr(func, '__name__', 'task')}-{uuid.uuid4().hex[:8]}"
        futures = {client.submit(_dask_call, func, shared, item, pure=False,
                                 key=f"{prefix}-{i}"): item for i, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                item = futures[future]
                if future.status == "cancelled":
                    lost.append(item)
                    continue
                try:
                    value = future.result()
                except Exception as exc:
                    if _lost_error(exc):
                        self.last_lost_error = exc
                        lost.append(item)
                        continue
                    raise
                results[item] = value
                future.release()
                if on_result is not None:
                    on_result(item, value)
        finally:
            unfinished = [f for f in futures if not f.done()]
            if unfinished:
                with contextlib.suppress(Exception):
                    client.cancel(unfinished)
            with contextlib.suppress(Exception):
                client.cancel([shared])
        return results, lost


def _dashboard_address():
    """``":0"`` (any free port) when the dashboard can be served, else None."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return ":0"

