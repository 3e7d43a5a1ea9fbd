"""Benchmark: survey readers - opening a large cube directory, and reading one record.

Two targets from the readers' issue:

1. opening an `~astro_cl.surveys.ecalifa.ECALIFASurvey` directory of ``--n-cubes``
   cube files plus a catalogue (listing + catalogue join only): < 5 s for 1,000;
2. reading one eCALIFA record (flux, error, BADPIX, GAIA_MASK into a
   `specutils.Spectrum` with WCS, uncertainty, combined mask and star mask) vs a
   bare `astropy.io.fits` read of the same four arrays: ratio <= 1.5.
   Both sides touch every value (the bare side copies the arrays out of the
   file, the record side reduces flux and uncertainty), for an uncompressed and
   a gzip-compressed cube of shape ``--shape`` (default: a real V500 cube,
   1877 x 78 x 73).

Usage::

    python benchmarks/bench_readers.py [--n-cubes 1000] [--shape 1877 78 73] [--repeats 5]
"""

import argparse
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from _clock import Clock, context_line, load_average
from astropy.io import fits
from astropy.table import QTable

from astro_cl.exceptions import AstroCLWarning
from astro_cl.surveys.ecalifa import ECALIFASurvey


def write_cube(path, shape, seed=0):
    """Write one cube in the eCALIFA V500 layout."""
    rng = np.random.default_rng(seed)
    _, ny, nx = shape
    flux = rng.lognormal(size=shape).astype(np.float32)
    hdr = fits.Header()
    for key, value in {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "AWAV",
                       "CRVAL1": 180.0, "CRVAL2": 40.0, "CRVAL3": 3749.0,
                       "CDELT1": -0.5 / 3600, "CDELT2": 0.5 / 3600, "CDELT3": 2.0,
                       "CRPIX1": nx / 2, "CRPIX2": ny / 2, "CRPIX3": 1.0,
                       "CUNIT1": "deg", "CUNIT2": "deg", "CUNIT3": "Angstrom",
                       "BUNIT": "10**(-16)erg s-1 cm-2 A-1"}.items():
        hdr[key] = value
    badpix = (rng.random(shape) < 0.01).astype(np.uint8)
    gaia = np.zeros((ny, nx), np.uint8)
    gaia[: ny // 8, : nx // 8] = 1
    fits.HDUList([
        fits.PrimaryHDU(flux, hdr),
        fits.ImageHDU((0.1 * flux).astype(np.float32), name="ERROR"),
        fits.ImageHDU(np.ones(shape, np.float32), name="ERRWEIGHT"),
        fits.ImageHDU(badpix, name="BADPIX"),
        fits.ImageHDU(np.ones(shape, np.float32), name="FLAT"),
        fits.ImageHDU(gaia, name="GAIA_MASK"),
    ]).writeto(path, overwrite=True)


def bench_open(folder, n_cubes):
    """Time opening a directory of n_cubes cubes with a catalogue of n_cubes rows."""
    src = folder / "template.fits"
    write_cube(src, (20, 8, 7))
    data = src.read_bytes()
    src.unlink()
    names = [f"GAL{i:05d}" for i in range(n_cubes)]
    for name in names:
        (folder / f"{name}.V500.drscube.fits").write_bytes(data)
    QTable({"Name": names, "z": np.full(n_cubes, 0.02)}).write(folder / "catalogue.ecsv")
    with Clock() as clock:
        survey = ECALIFASurvey(path=folder).open()
    assert len(survey) == n_cubes
    return clock


def _bare(path):
    with fits.open(path, memmap=True) as hdul:
        arrays = [np.array(hdul[k].data) for k in ("PRIMARY", "ERROR", "BADPIX", "GAIA_MASK")]
    return sum(float(a.sum(dtype=np.float64)) for a in arrays)


def _record(survey):
    rec = survey[0]
    cube = rec.cube
    return (float(np.sum(cube.flux.value, dtype=np.float64))
            + float(np.sum(cube.uncertainty.array, dtype=np.float64)) + float(rec.star_mask.sum()))


def _best(fn, repeats):
    """Return the `Clock` of the fastest (wall time) of ``repeats`` runs."""
    clocks = []
    for _ in range(repeats):
        with Clock() as clock:
            fn()
        clocks.append(clock)
    return min(clocks, key=lambda c: c.wall)


def bench_read(folder, shape, repeats, gz):
    """Return (record time, bare astropy time) for one cube."""
    folder.mkdir()
    path = folder / ("G.V500.drscube.fits.gz" if gz else "G.V500.drscube.fits")
    write_cube(path, shape)
    survey = ECALIFASurvey(path=folder).open()
    _record(survey), _bare(path)  # warm the page cache
    t_rec = _best(lambda: _record(survey), repeats)
    t_bare = _best(lambda: _bare(path), repeats)
    return t_rec, t_bare


def main(argv=None):
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cubes", type=int, default=1000)
    parser.add_argument("--shape", type=int, nargs=3, default=[1877, 78, 73])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="astro_cl-bench-readers-"))
    print(context_line())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstroCLWarning)
            (tmp / "open").mkdir()
            t_open = bench_open(tmp / "open", args.n_cubes)
            print(f"open {args.n_cubes} cubes + catalogue: {t_open} (target < 5 s)")
            for gz in (False, True):
                t_rec, t_bare = bench_read(tmp / f"read-{gz}", tuple(args.shape), args.repeats,
                                           gz)
                kind = "gzip" if gz else "uncompressed"
                print(f"read one {kind} cube {tuple(args.shape)}: record {t_rec}, "
                      f"bare astropy.io.fits {t_bare}, ratio {t_rec.wall / t_bare.wall:.2f} "
                      f"wall, {t_rec.cpu / max(t_bare.cpu, 1e-9):.2f} CPU (target <= 1.5)")
        print(f"load average now {load_average()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
