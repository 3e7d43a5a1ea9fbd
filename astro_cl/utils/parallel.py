"""Thread-level parallelism that keeps results in order.

NumPy and PyTorch release the GIL inside their array kernels, so reading and
preprocessing galaxies, or augmenting chunks of a batch, overlap well in
threads: no process start-up, no pickling of surveys or tensors.
"""

from collections import deque
from itertools import islice

__all__ = ["imap_ordered"]


def imap_ordered(func, items, *, workers=1, window=None):
    """Yield ``func(item)`` for every item, in order, computed by a thread pool.

    Unlike `concurrent.futures.Executor.map`, at most ``window`` calls are in
    flight or waiting to be consumed, so results (whole preprocessed
    galaxies, augmented chunks) never pile up in memory ahead of the
    consumer, and an error stops further submissions. The results do not
    depend on ``workers``, provided ``func`` is thread-safe and each call
    depends only on its item.

    Parameters
    ----------
    func : callable
        Called once per item.
    items : iterable
    workers : int, optional
        Threads; 1 runs ``func`` in the calling thread, lazily.
    window : int, optional
        Calls submitted ahead of the consumer (default ``2 * workers``).

    Yields
    ------
    result
        ``func(item)``, in the order of ``items``. An exception raised by
        ``func`` is raised here, at its item; the calls still queued are
        cancelled.

    Examples
    --------
    >>> from astro_cl.utils.parallel import imap_ordered
    >>> list(imap_ordered(lambda x: x * x, range(6), workers=2))
    [0, 1, 4, 9, 16, 25]
    """
    workers = int(workers)
    if workers < 1:
        msg = f"imap_ordered: workers must be >= 1, got {workers}"
        raise ValueError(msg)
    if workers == 1:
        yield from map(func, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    window = max(1, int(window or 2 * workers))
    items = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="astro-cl") as pool:
        pending = deque(pool.submit(func, item) for item in islice(items, window))
        try:
            while pending:
                result = pending.popleft().result()
                pending.extend(pool.submit(func, item) for item in islice(items, 1))
                yield result
        finally:
            for future in pending:
                future.cancel()
