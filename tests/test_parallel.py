"""`astro_cl.utils.parallel`: ordered, bounded thread maps."""

import threading

import pytest

from astro_cl.utils.parallel import imap_ordered


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_results_in_order(workers):
    assert list(imap_ordered(lambda x: x * x, range(20), workers=workers)) == \
        [x * x for x in range(20)]


def test_window_bounds_the_calls_ahead_of_the_consumer():
    started = []
    lock = threading.Lock()

    def work(x):
        with lock:
            started.append(x)
        return x

    results = imap_ordered(work, range(100), workers=2, window=3)
    assert next(results) == 0
    with lock:
        # the first result was awaited, one more submitted: at most window + 1 started
        assert len(started) <= 4
    assert list(results) == list(range(1, 100))


def test_error_is_raised_at_its_item_and_stops_submissions():
    seen = []

    def work(x):
        seen.append(x)
        if x == 3:
            msg = "item 3 is bad"
            raise ValueError(msg)
        return x

    out = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for value in imap_ordered(work, range(1000), workers=2, window=2):
            out.append(value)
    assert out == [0, 1, 2]
    assert max(seen) < 10


def test_bad_worker_count():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(imap_ordered(abs, [1], workers=0))
