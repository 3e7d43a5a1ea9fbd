"""``ecalifa-mock``: eCALIFA V500-like cubes of the physical mock galaxies, with truth maps.

See :mod:`astro_cl.surveys.mock` for the model. Cubes cover 3749-7501 A in
2 A steps (1877 pixels) at ~6 A FWHM on 0.5" spaxels with a 2.5" PSF, a
per-spaxel noise model, bad pixels (outside the PPak hexagon and random
voxels) and foreground-star masks; written with the CALIFA extensions.
"""

import astropy.units as u
import numpy as np
from astropy.nddata import StdDevUncertainty

from astro_cl.data.fits_maps import write_maps
from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import ValidationError
from astro_cl.surveys.mock import io as mock_io
from astro_cl.surveys.mock.render import CubeRenderer
from astro_cl.surveys.mock.spectra import load_basis
from astro_cl.surveys.mock.survey import MockSurvey, _maps_nd
from astro_cl.surveys.mock.units import CALIFA_FLUX_UNIT

__all__ = ["ECALIFAMockSurvey"]


class ECALIFAMockSurvey(MockSurvey):
    """Mock eCALIFA V500 cubes with truth maps, generated or read from disk.

    Parameters
    ----------
    n : int, optional
        Number of galaxies (ignored in twin mode).
    seed : int, optional
        Survey seed; galaxy ``i`` depends only on ``(seed, i)``.
    size : int, optional
        Spaxels per side (48; real cubes are 192 x 184).
    pixel_scale : float, optional
        Arcsec per spaxel (0.5, the eCALIFA cubes'). The field of view is
        ``size * pixel_scale``: at small sizes a coarser scale keeps the
        CALIFA field (74 arcsec; e.g. 32 spaxels of 2 arcsec), so that twinned
        galaxies, whose real sizes and redshifts are kept, fit in it.
    path : str or `~pathlib.Path`, optional
        Read a written mock with the ``ecalifa`` reader instead of generating.
    twin : str, `~pathlib.Path` or `~astropy.table.Table`, optional
        Real catalogue (e.g. ``ecalifa_global.csv``) to twin, one mock per row.
    noise : bool, optional
        Add noise.
    star_rate : float, optional
        Mean number of foreground stars per cube.
    hexagon : bool, optional
        Flag spaxels outside the hexagonal PPak field.
    bad_fraction : float, optional
        Fraction of randomly flagged voxels.

    Examples
    --------
    >>> from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    >>> survey = ECALIFAMockSurvey(n=2, seed=1, size=16)
    >>> survey[0].cube.flux.shape
    (1877, 16, 16)
    """

    name = "ecalifa-mock"
    description = "Physical mock galaxies as eCALIFA V500 cubes (CALIFA FITS layout) + truth maps."
    default_kind = "cube"
    reader_class = ("astro_cl.surveys.ecalifa", "ECALIFASurvey")
    #: Default arcsec per spaxel (the eCALIFA cubes'); a survey may set its own.
    pixel_scale = 0.5

    def __init__(self, *, n=100, seed=0, size=48, pixel_scale=0.5, path=None, twin=None,
                 noise=True, star_rate=0.3, hexagon=True, bad_fraction=5e-4):
        self.n = n
        self.seed = seed
        self.size = size
        self.pixel_scale = pixel_scale
        self.path = path
        self.twin = twin
        self.noise = noise
        self.star_rate = star_rate
        self.hexagon = hexagon
        self.bad_fraction = bad_fraction
        if not 8 <= int(size) <= 256:
            msg = f"size: expected 8-256 spaxels, got {size!r}"
            raise ValidationError(msg)
        if isinstance(pixel_scale, bool) or not isinstance(pixel_scale, (int, float)) or not (
                0.1 <= pixel_scale <= 5):
            msg = f"pixel_scale: expected 0.1-5 arcsec per spaxel, got {pixel_scale!r}"
            raise ValidationError(msg)

    @property
    def renderer(self):
        """`~astro_cl.surveys.mock.render.CubeRenderer`: the configured renderer."""
        return CubeRenderer(pixel_scale=self.pixel_scale, noise=self.noise,
                            star_rate=self.star_rate, hexagon=self.hexagon,
                            bad_fraction=self.bad_fraction)

    def _meta(self):
        r = self.renderer
        return {"survey": self.name, "seed": int(self.seed), "pixel_scale_arcsec": r.pixel_scale,
                "psf_fwhm_arcsec": r.psf_fwhm, "wave_start": r.wave_start,
                "wave_step": r.wave_step, "n_wave": r.n_wave, "instrument": "PMAS/PPak V500",
                "basis": load_basis().source.rsplit("/", 1)[-1]}

    def _render(self, params, index):
        r = self.renderer
        state = self._state(params)
        out = r.render(state, self._rng(index))
        wcs = mock_io.cube_wcs(params["ra"], params["dec"], out["flux"].shape, r.pixel_scale,
                               r.wave_start, r.wave_step)
        return state, out, wcs

    def _record(self, params, state, out, wcs, row):
        from specutils import Spectrum

        r = self.renderer
        gaia = out["gaia_mask"] != 0
        mask = (out["badpix"] != 0) | gaia[None] | ~np.isfinite(out["flux"])
        unit = CALIFA_FLUX_UNIT
        cube = Spectrum(flux=u.Quantity(out["flux"], unit, copy=False), wcs=wcs,
                        uncertainty=StdDevUncertainty(out["error"], unit=unit, copy=False),
                        mask=mask, meta={"name": params["name"]})
        obs = ObservingMeta(pixel_scale=r.pixel_scale * u.arcsec, psf_fwhm=r.psf_fwhm * u.arcsec,
                            redshift=params["z"],
                            wavelength_range=u.Quantity([r.wave[0], r.wave[-1]], u.AA),
                            instrument="PMAS/PPak V500 (mock)")
        return GalaxyRecord(id=params["name"], survey=self.name, cube=cube,
                            maps=_maps_nd(state, wcs.celestial), properties=row, observing=obs,
                            star_mask=gaia, meta={"index": int(params["index"])})

    def _write_files(self, directory, params, state, out, wcs):
        r = self.renderer
        stem = params["name"]
        mock_io.write_cube(directory / f"{stem}.V500.drscube.fits", out, wcs, name=stem,
                           redshift=params["z"], psf_fwhm=r.psf_fwhm)
        write_maps(directory / f"{stem}.maps.fits", _maps_nd(state, wcs.celestial),
                   header={"OBJECT": stem, "ORIGIN": "astro_cl ecalifa-mock"})
