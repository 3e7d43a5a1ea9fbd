"""Benchmark: building a `SimilaritySearch` index against faiss's own build, and queries.

Target: ``SimilaritySearch(backend="faiss").fit`` of 10^6 x 64 float32 vectors
within 2x of faiss's own build, from a bare array and from an embeddings table
(``id`` + ``embedding`` columns, as ``SimCLR.embed`` writes), with queries at
parity. faiss's own build is what a user would write by hand to get the same
index without touching their data: copy the vectors to float32,
``faiss.normalize_L2`` the copy in place, ``IndexFlatIP.add``. (The same
without the copy, normalising the caller's array in place, is printed too: the
floor.)

The two sides alternate within each repeat, so that a slow spell of a shared
machine hits both alike; the script prints wall and CPU time (this process,
all threads) for each, the per-pair ratios and the load average. Without
faiss (``pip install faiss-cpu``, or the ``bench`` extra) it times the
scikit-learn backend alone and says so.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_similarity.py [--n 1000000] [--dim 64]
"""

import argparse
import gc
import os
import statistics
import time

import numpy as np
from astropy.table import QTable

from astro_cl.tasks.similarity import SimilaritySearch, faiss_available
from astro_cl.utils import available_cpus


def _timed(fn):
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _load():
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _faiss_build(source, *, copy=True):
    import faiss

    X = np.array(source, dtype=np.float32, order="C", copy=True) if copy \
        else np.ascontiguousarray(source, dtype=np.float32)
    faiss.normalize_L2(X)
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    return index


def _report(label, runs):
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"  {label:34s} wall best {min(walls):6.3f} s, median {statistics.median(walls):6.3f} s;"
          f" CPU median {statistics.median(cpus):6.3f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100, help="query vectors")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    ids = np.char.add("g", np.arange(args.n).astype(str))
    table = QTable({"id": ids, "embedding": X}, copy=False)
    Q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    print(f"{args.n} x {args.dim} float32, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"{available_cpus()} usable CPUs (machine {os.cpu_count()}), load average {_load()}")

    if not faiss_available():
        print("faiss is not installed (pip install faiss-cpu): no peer to compare with; "
              "timing the scikit-learn backend only")
        for label, source in (("array", X), ("table", table)):
            _, wall, cpu = _timed(lambda s=source: SimilaritySearch(backend="sklearn").fit(s))
            print(f"  sklearn fit from {label}: {wall:.3f} s wall, {cpu:.3f} s CPU")
        return None

    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads")
    _faiss_build(X[:1000])
    SimilaritySearch(backend="faiss").fit(X[:1000])  # warm-up: imports, first allocations
    runs = {key: [] for key in ("faiss array", "astro_cl array", "faiss table", "astro_cl table",
                                "faiss in place")}
    for _ in range(args.repeats):  # interleaved
        for key, fn in (
            ("faiss array", lambda: _faiss_build(X)),
            ("astro_cl array", lambda: SimilaritySearch(backend="faiss").fit(X)),
            ("faiss table", lambda: _faiss_build(table["embedding"])),
            ("astro_cl table", lambda: SimilaritySearch(backend="faiss").fit(table)),
            ("faiss in place", lambda: _faiss_build(X.copy(), copy=False)),
        ):
            if key == "faiss in place":
                scratch = X.copy()  # the floor: normalise a copy we may spoil, uncounted
                _, wall, cpu = _timed(lambda s=scratch: _faiss_build(s, copy=False))
                del scratch
            else:
                result, wall, cpu = _timed(fn)
                del result
            runs[key].append((wall, cpu))
    print(f"index build, {args.repeats} interleaved repeats (load average now {_load()}):")
    for key, label in (("faiss array", "faiss own build, from array"),
                       ("astro_cl array", "SimilaritySearch.fit, from array"),
                       ("faiss table", "faiss own build, from table"),
                       ("astro_cl table", "SimilaritySearch.fit, from table"),
                       ("faiss in place", "faiss, normalising in place (floor)")):
        _report(label, runs[key])
    for side in ("array", "table"):
        ratios = [a[0] / f[0] for a, f in zip(runs[f"astro_cl {side}"], runs[f"faiss {side}"],
                                                strict=True)]
        floor = min(w for w, _ in runs[f"astro_cl {side}"]) / min(
            w for w, _ in runs["faiss in place"])
        cpu = statistics.median(c for _, c in runs[f"astro_cl {side}"]) / statistics.median(
            c for _, c in runs[f"faiss {side}"])
        print(f"  ratio astro_cl / faiss from {side}: wall pairs "
              + ", ".join(f"{r:.2f}x" for r in ratios)
              + f"; median {statistics.median(ratios):.2f}x (target <= 2x); CPU medians "
              f"{cpu:.2f}x; best wall vs the in-place floor {floor:.2f}x")

    # queries: the same index, by vector and by id
    task = SimilaritySearch(backend="faiss", n_neighbors=args.k).fit(table)
    index = _faiss_build(X)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    qids = ids[rng.choice(args.n, size=args.queries, replace=False)].tolist()
    task.query(ids=qids[:2])  # builds the id lookup once (made on first use)
    q = {"faiss search": [], "astro_cl query(vectors=)": [], "astro_cl query(ids=)": []}
    for _ in range(args.repeats):
        q["faiss search"].append(_timed(lambda: index.search(Qn, args.k))[1:])
        q["astro_cl query(vectors=)"].append(_timed(lambda: task.query(vectors=Q))[1:])
        q["astro_cl query(ids=)"].append(_timed(lambda: task.query(ids=qids))[1:])
    print(f"{args.queries} queries, k={args.k} (load average now {_load()}):")
    for label, r in q.items():
        _report(label, r)
    ratio = min(w for w, _ in q["astro_cl query(vectors=)"]) / min(w for w, _ in q["faiss search"])
    print(f"  query(vectors=) / faiss search, best times: {ratio:.2f}x")
    _, wall, cpu = _timed(lambda: SimilaritySearch(backend="faiss").fit(table).query(ids=qids[:1]))
    print(f"fit + first query by id (sorts the ids once): {wall:.3f} s wall, {cpu:.3f} s CPU")
    return runs


if __name__ == "__main__":
    main()
