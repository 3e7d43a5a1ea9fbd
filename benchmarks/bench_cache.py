"""Benchmark: a cached epoch of preprocessed galaxies vs re-reading and re-preprocessing FITS.

Writes ``--n`` small cubes in the real eCALIFA layout (``<name>.V500.drscube.fits``
with PRIMARY flux, ERROR and BADPIX HDUs and a spectral WCS) into a temporary
directory, fits the `~astro_cl.preprocess.cube_pca.CubePCA` preprocessing once,
then times

* one epoch without a cache: read every FITS cube, build its record, preprocess;
* one epoch from `~astro_cl.preprocess.cache.PreprocessedCache`: memory-mapped
  batches of 64 in a shuffled order.

Usage::

    python benchmarks/bench_cache.py [--n 900] [--size 24] [--n-wave 900]
"""

import argparse
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from _clock import Clock, context_line, load_average
from astropy.io import fits
from astropy.nddata import StdDevUncertainty
from astropy.table import QTable
from specutils import Spectrum

from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.surveys.base import Survey

FLUX_UNIT = u.Unit("1e-16 erg / (s cm2 Angstrom)")


def write_cubes(directory, n, size, n_wave, seed=0):
    rng = np.random.default_rng(seed)
    wave = 3700.0 + np.arange(n_wave) * (3800.0 / n_wave)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    rows = []
    for i in range(n):
        z = rng.uniform(0.005, 0.03)
        rest = wave / (1 + z)
        frac = rng.uniform(0, 1)
        young = (rest / 5500) ** -1.5 + 2 * np.exp(-0.5 * ((rest - 6563) / 4) ** 2)
        spec = (1 - frac) * (rest / 5500) ** 2 + frac * young
        flux = 50 * np.exp(-r / 3)[None] * spec[:, None, None]
        err = np.full(flux.shape, 0.3, np.float32)
        flux = (flux + err * rng.standard_normal(flux.shape)).astype(np.float32)
        hdr = fits.Header()
        hdr.update(CTYPE3="AWAV", CRVAL3=wave[0], CDELT3=wave[1] - wave[0], CRPIX3=1.0,
                   CUNIT3="Angstrom", BUNIT="1E-16 erg/s/cm^2/Angstrom")
        name = f"GAL{i:04d}"
        fits.HDUList([fits.PrimaryHDU(flux, hdr), fits.ImageHDU(err, name="ERROR"),
                      fits.ImageHDU(np.zeros(flux.shape, np.uint8), name="BADPIX")]).writeto(
            directory / f"{name}.V500.drscube.fits")
        rows.append((name, z))
    return QTable(rows=rows, names=("id", "z"))


class CubeFiles(Survey):
    """Minimal reader of the cubes written above (stands in for the eCALIFA reader)."""

    name = "bench-cubes"
    default_kind = "cube"

    def __init__(self, *, path, catalogue_table=None):
        self.path = path
        self.catalogue_table = catalogue_table

    def _open(self):
        return QTable(self.catalogue_table)

    def _read_record(self, index):
        row = self.catalogue[index]
        with fits.open(Path(self.path) / f"{row['id']}.V500.drscube.fits") as hdul:
            hdr = hdul[0].header
            flux = hdul[0].data.astype(np.float32)
            err = hdul["ERROR"].data.astype(np.float32)
            bad = hdul["BADPIX"].data.astype(bool)
        wave = hdr["CRVAL3"] + (np.arange(flux.shape[0]) + 1 - hdr["CRPIX3"]) * hdr["CDELT3"]
        cube = Spectrum(flux=flux * FLUX_UNIT, spectral_axis=wave * u.AA, spectral_axis_index=0,
                        uncertainty=StdDevUncertainty(err), mask=bad)
        return GalaxyRecord(id=str(row["id"]), cube=cube,
                            observing=ObservingMeta(redshift=float(row["z"])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=900)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--n-wave", type=int, default=900)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)

    from astro_cl.preprocess import CubePCA, PreprocessedCache

    print(context_line())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cubes").mkdir()
        t0 = time.perf_counter()
        cat = write_cubes(tmp / "cubes", args.n, args.size, args.n_wave)
        print(f"wrote {args.n} cubes ({args.n_wave} x {args.size} x {args.size}) "
              f"in {time.perf_counter() - t0:.1f} s")
        survey = CubeFiles(path=str(tmp / "cubes"), catalogue_table=cat)
        pca = CubePCA(fit_snr=30.0).fit([survey[i] for i in range(min(args.n, 50))])

        cache = PreprocessedCache(tmp / "cache")
        with Clock() as build:
            source = cache.get_or_build(survey, preprocessor=pca, progress=False)

        order = np.random.default_rng(0).permutation(args.n)
        source.batch(order[:1])  # warm-up (imports torch)
        with Clock() as cached:
            for start in range(0, args.n, args.batch):
                source.batch(order[start:start + args.batch])

        with Clock() as fits_epoch:
            for start in range(0, args.n, args.batch):
                pca.transform([survey[int(i)] for i in order[start:start + args.batch]])

    print(f"cache build (once)            : {build}")
    print(f"epoch from FITS + preprocess  : {fits_epoch}")
    print(f"epoch from the cache          : {cached}")
    print(f"speed-up                      : {fits_epoch.wall / cached.wall:8.0f}x wall, "
          f"{fits_epoch.cpu / max(cached.cpu, 1e-9):.0f}x CPU (target >= 20x); "
          f"load average now {load_average()}")
    return fits_epoch.wall / cached.wall


if __name__ == "__main__":
    main()
