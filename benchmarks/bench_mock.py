"""Benchmark the mock surveys: galaxies (images + truth maps) and cubes per second on one core.

Targets (issue 3): >= 100 sdss-mock galaxies (5 x 64 x 64 + truth maps) per second per
core and >= 5 ecalifa-mock cubes (64 x 64 x 1877) per second per core.

It also times building an in-memory catalogue (every galaxy's maps are
simulated for its row; the rows are computed in threads) and loading the
spectral basis, once per process (the MaStar SSP grid: 54 spectra read,
normalised, broadened and extended).

Usage::

    python benchmarks/bench_mock.py [--n-images 200] [--n-cubes 20] [--size 64]
                                    [--n-catalogue 800]
"""

import argparse
import time

import numpy as np
from _clock import context_line, load_average

from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.sdss_mock import SDSSMockSurvey


def _rate(survey, n):
    """Return (per second of wall time, per second of CPU time)."""
    survey._render(survey._params(0), 0)  # warm caches (basis, filters, cosmology)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        state, out, _ = survey._render(survey._params(i), i)
        assert np.isfinite(out["model"]).all() and state.truth
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def _catalogue_rate(survey):
    len(SDSSMockSurvey(n=2, seed=survey.seed + 1, size=8).catalogue)  # warm caches
    start, cpu = time.perf_counter(), time.process_time()
    n = len(survey.catalogue)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def main(argv=None):
    """Run the benchmark and print galaxies per second.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    rates : dict
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--n-cubes", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n-catalogue", type=int, default=800)
    args = parser.parse_args(argv)
    print(context_line())
    from astro_cl.surveys.mock import spectra

    start, cpu = time.perf_counter(), time.process_time()
    spectra.load_basis()
    print(f"spectral basis, once per process: {time.perf_counter() - start:.2f} s "
          f"(CPU {time.process_time() - cpu:.2f} s)")
    rates = {
        "sdss-mock galaxies/s": _rate(SDSSMockSurvey(seed=1, size=args.size), args.n_images),
        "ecalifa-mock cubes/s": _rate(ECALIFAMockSurvey(seed=1, size=args.size), args.n_cubes),
        "sdss-mock catalogue rows/s": _catalogue_rate(
            SDSSMockSurvey(n=args.n_catalogue, seed=2, size=args.size)),
    }
    for key, (wall, cpu) in rates.items():
        print(f"{key} ({args.size}x{args.size}): {wall:.1f} (per CPU second: {cpu:.1f})")
    print(f"load average now {load_average()}")
    return {key: wall for key, (wall, _) in rates.items()}


if __name__ == "__main__":
    main()
