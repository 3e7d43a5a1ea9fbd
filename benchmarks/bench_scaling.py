"""Benchmark: preprocessing a MaNGA-like survey into the store, serial vs threads vs Dask.

A MaNGA-like mock survey is rendered on the fly (nothing is written to disk,
so the disk does not limit the rate): ``--n`` galaxies, cubes of 4563
log-spaced wavelengths (3622-10354 A) x ``--size`` x ``--size`` spaxels
(MaNGA: 74 x 74 for the largest bundles), an exponential disc whose spectrum
mixes an old and a young continuum with emission lines, a noise model, an
error cube and the hexagonal bundle mask. `~astro_cl.preprocess.CubePCA` is
fitted once on ``--fit-sample`` galaxies, then every galaxy is transformed
into a `~astro_cl.preprocess.store.PreprocessedStore`:

* serially (``executor="threads", workers=1``);
* on a thread pool of ``--workers`` threads;
* on worker processes (``executor="processes"``);
* on a Dask `~distributed.LocalCluster` of ``--workers`` single-threaded
  worker processes (started before the clock starts).

For each: wall time, galaxies/s, user and system (kernel) CPU time of this
process and of the worker processes, minor page faults, the peak resident
memory per worker, the load average. ``--rounds`` repeats every run, the
order reversed every other round, and gives each run's rate relative to the
serial one of the same round (on a shared machine, a slow spell then hits
both sides). ``--compare-allocator`` adds a second LocalCluster whose
workers keep Dask's allocator settings (``ASTRO_CL_RETAIN_MEMORY=0``), to
measure what `~astro_cl.utils.memory.retain_freed_memory` saves them. Then
the CPU seconds per cube of rendering alone (measured serially) and of the
preprocessing (the rest), and the projected hours for the 10,010 MaNGA DR17
cubes on 100 cores.

Goal: the 2-worker LocalCluster at >= 1.7x the serial rate (on 2 free cores)
and no worker above 2 GiB.

Usage::

    python benchmarks/bench_scaling.py [--n 1000] [--size 74] [--workers 2]
        [--rounds 3] [--skip processes] [--compare-allocator]
"""

import argparse
import contextlib
import os
import resource
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from _clock import context_line, load_average
from astropy.nddata import StdDevUncertainty
from astropy.table import QTable

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.surveys.base import Survey

FLUX_UNIT = u.Unit("1e-17 erg / (s cm2 Angstrom)")
MANGA_CUBES = 10_010


class MangaLikeMock(Survey):
    """MaNGA-like cubes rendered on the fly from (seed, index); thread-safe."""

    name = "manga-like-bench"
    default_kind = "cube"
    thread_safe = True

    def __init__(self, *, n=1000, size=74, seed=0):
        self.n = n
        self.size = size
        self.seed = seed

    def fingerprint(self):
        return {"survey": self.name, "n": self.n, "size": self.size, "seed": self.seed,
                "version": 1}

    def _open(self):
        z = np.random.default_rng(self.seed).uniform(0.01, 0.08, self.n)
        return QTable({"id": [f"{8000 + i // 100}-{12700 + i % 100}" for i in range(self.n)],
                       "z": z})

    def _read_record(self, index):
        from specutils import Spectrum

        rng = np.random.default_rng([self.seed, index])
        wave = 10 ** (np.log10(3621.6) + 1e-4 * np.arange(4563))
        z = float(self.catalogue["z"][index])
        rest = wave / (1 + z)
        frac = rng.uniform(0, 1)
        line = (np.exp(-0.5 * ((rest - 6563) / 3) ** 2)
                + 0.4 * np.exp(-0.5 * ((rest - 5007) / 3) ** 2))
        spec = ((1 - frac) * (rest / 5500) ** 2 + frac * (rest / 5500) ** -1.5
                + 3 * frac * line).astype(np.float32)
        s = self.size
        yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
        r = np.hypot(yy, xx)
        disc = (20 * np.exp(-r / rng.uniform(4, 10))).astype(np.float32)
        sigma = np.float32(0.2)
        # the noise drawn into the cube, then the model added a slab at a time: one
        # cube-sized array instead of three (model, noise, scaled noise); the same numbers
        flux = rng.standard_normal((wave.size, s, s), dtype=np.float32)
        flux *= sigma
        for lo in range(0, wave.size, 256):
            flux[lo:lo + 256] += disc[None] * spec[lo:lo + 256, None, None]
        err = np.full(flux.shape, sigma, np.float32)
        # the hexagonal bundle: spaxels outside it are masked at every wavelength
        outside = (np.abs(xx) > 0.48 * s) | (np.abs(xx) * 0.5 + np.abs(yy) * 0.866 > 0.48 * s)
        mask = np.broadcast_to(outside[None], flux.shape)
        cube = Spectrum(flux=u.Quantity(flux, FLUX_UNIT, copy=False), spectral_axis=wave * u.AA,
                        spectral_axis_index=0,
                        uncertainty=StdDevUncertainty(err, unit=FLUX_UNIT, copy=False),
                        mask=mask)
        return GalaxyRecord(id=str(self.catalogue["id"][index]), cube=cube,
                            observing=ObservingMeta(redshift=z))


def _peak_rss_mib():
    """Peak resident memory of this process (MiB).

    ``VmHWM`` of ``/proc/self/status`` where there is one: ``ru_maxrss`` of a
    spawned worker also counts its parent's memory at the fork.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _usage(who):
    """User and system CPU seconds and minor page faults of this process or its reaped children."""
    r = resource.getrusage(who)
    return {"user": r.ru_utime, "sys": r.ru_stime, "faults": r.ru_minflt}


def _worker_stats():
    """In a Dask worker: its CPU times, minor page faults and peak resident memory."""
    return {**_usage(resource.RUSAGE_SELF), "peak_mib": _peak_rss_mib()}


def _diff(after, before):
    return {k: after[k] - before.get(k, 0) for k in ("user", "sys", "faults")}


def _run(label, store_dir, survey, pca, **kwargs):
    from astro_cl.preprocess.store import PreprocessedStore

    load0 = load_average()
    here0, kids0 = _usage(resource.RUSAGE_SELF), _usage(resource.RUSAGE_CHILDREN)
    client = kwargs.get("client")
    w0 = client.run(_worker_stats) if client is not None else {}
    t0 = time.perf_counter()
    src = PreprocessedStore(store_dir, verify="size").get_or_build(
        survey, preprocessor=pca, progress=False, **kwargs)
    wall = time.perf_counter() - t0
    here = _diff(_usage(resource.RUSAGE_SELF), here0)
    workers = _diff(_usage(resource.RUSAGE_CHILDREN), kids0)
    peak = f"{_peak_rss_mib():.0f} MiB (this process)"
    if client is not None:
        w1 = client.run(_worker_stats)
        per = [_diff(w1[a], w0.get(a, {})) for a in w1]
        workers = {k: sum(w[k] for w in per) for k in ("user", "sys", "faults")}
        peak = ", ".join(f"{w['peak_mib']:.0f}" for w in w1.values()) + " MiB (per worker)"
    n = src.summary.done
    total = {k: here[k] + workers[k] for k in here}
    print(f"{label:<34}: {wall:7.1f} s wall, {n / wall:6.3f} galaxies/s; CPU user "
          f"{total['user']:6.1f} s + sys {total['sys']:5.1f} s ({workers['user']:.1f} + "
          f"{workers['sys']:.1f} s of it in workers), {total['faults'] / max(n, 1):,.0f} minor "
          f"page faults per galaxy; peak RSS {peak}; load {load0} -> {load_average()}",
          flush=True)
    return {"wall": wall, "rate": n / wall, "cpu": total["user"] + total["sys"], **total,
            "n": n}


def _cluster(n_workers, environ=None):
    """A LocalCluster of single-threaded worker processes, with extra worker environment."""
    import dask
    from distributed import LocalCluster

    spawn = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    spawn.update(environ or {})
    with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            dashboard_address=None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=74)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fit-sample", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every run this many times, the order reversed every "
                        "other round; ratios are taken within a round")
    parser.add_argument("--skip", default="", help="comma-separated runs to skip "
                        "(serial,threads,processes,dask)")
    parser.add_argument("--compare-allocator", action="store_true",
                        help="also run a second LocalCluster whose workers keep the "
                        "allocator settings Dask gives them (ASTRO_CL_RETAIN_MEMORY=0)")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    from astro_cl.preprocess import CubePCA
    from astro_cl.preprocess.store import fit_preprocessor

    print(context_line())
    survey = MangaLikeMock(n=args.n, size=args.size)
    print(f"{args.n} MaNGA-like cubes of 4563 x {args.size} x {args.size} rendered on the fly "
          f"({4563 * args.size**2 * 4 / 2**20:.0f} MiB of float32 flux each)")
    pca = fit_preprocessor(survey, CubePCA(), fit_sample=args.fit_sample)

    # rendering alone, serially: the part of a galaxy's cost that is not preprocessing
    k = min(args.n, 6)
    c0 = time.process_time()
    for i in range(k):
        survey[i]
    render = (time.process_time() - c0) / k

    w = args.workers
    runs = {}
    if "serial" not in skip:
        runs["serial"] = ("serial (1 thread)", {"executor": "threads", "workers": 1})
    if "threads" not in skip:
        runs["threads"] = (f"threads ({w})", {"executor": "threads", "workers": w})
    if "processes" not in skip:
        runs["processes"] = (f"processes ({w})", {"executor": "processes", "workers": w})
    clusters = {}
    if "dask" not in skip:
        clusters["dask"] = (f"Dask LocalCluster ({w})", {})
        if args.compare_allocator:
            clusters["dask-defaults"] = (f"Dask LocalCluster ({w}), allocator defaults",
                                         {"ASTRO_CL_RETAIN_MEMORY": "0"})
    results = {name: [] for name in [*runs, *clusters]}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        from distributed import Client

        tmp = Path(tmp)
        for name, (label, environ) in clusters.items():
            cluster = stack.enter_context(_cluster(w, environ))
            client = stack.enter_context(Client(cluster))
            # the workers' start-up (imports, first calls) once, outside the clock: a
            # fixed cost per worker that a survey of thousands of galaxies amortises
            t0 = time.perf_counter()
            _run(f"  (warm-up {name}, 2 galaxies)", tmp / f"warm-{name}",
                 MangaLikeMock(n=2, size=args.size, seed=99), pca, executor="dask",
                 client=client)
            print(f"  worker start-up: {time.perf_counter() - t0:.1f} s wall")
            runs[name] = (label, {"executor": "dask", "client": client})
        for r in range(args.rounds):
            # alternating the order, so that a slow spell of a shared machine hits every run
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            if args.rounds > 1:
                print(f"round {r + 1} of {args.rounds}")
            for name in order:
                label, kwargs = runs[name]
                results[name].append(_run(label, tmp / f"{name}-{r}", survey, pca, **kwargs))
    base = results.get("serial")
    if base:
        per_cube = float(np.median([b["cpu"] for b in base])) / args.n
        print(f"CPU per cube: {per_cube:.2f} s, of which rendering {render:.2f} s and "
              f"preprocessing {per_cube - render:.2f} s")
        hours = MANGA_CUBES * (per_cube - render) / (100 * 3600)
        print(f"projected: {MANGA_CUBES} MaNGA cubes of this size on 100 cores: {hours:.3f} h "
              f"({60 * hours:.1f} min; {100 * hours:.1f} CPU-hours) of preprocessing, plus "
              "reading and decompressing the files")
    for name, res in results.items():
        if not res:
            continue
        user = np.median([x["user"] for x in res]) / args.n
        system = np.median([x["sys"] for x in res]) / args.n
        faults = np.median([x["faults"] for x in res]) / args.n
        line = (f"{name:<14} median per galaxy: CPU user {user:.3f} s, sys {system:.3f} s "
                f"({100 * system / (user + system):.0f} % kernel), {faults:,.0f} minor faults")
        if base and name != "serial":
            ratios = [x["rate"] / b["rate"] for x, b in zip(res, base, strict=True)]
            line += (f"; rate vs serial in the same round: "
                     f"{', '.join(f'{q:.2f}x' for q in ratios)} (median "
                     f"{np.median(ratios):.2f}x; goal for dask on 2 free cores: >= 1.7x)")
        print(line)
    print(f"pid {os.getpid()} done; load average {load_average()}")
    return results


if __name__ == "__main__":
    main()
