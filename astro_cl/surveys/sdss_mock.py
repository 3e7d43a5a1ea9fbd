"""``sdss-mock``: SDSS-like ugriz images of the physical mock galaxies, with truth maps.

See :mod:`astro_cl.surveys.mock` for the model. Images are in nanomaggies at
0.396"/px with per-band Gaussian PSFs (~1.4" FWHM) and SDSS-depth sky noise;
the paired truth maps (the PICASSSO targets: stellar mass, stellar metallicity,
age, SFR, gas mass, gas metallicity, plus EW(Ha) and A_V) lie on the same grid.
"""

import astropy.units as u
from astropy.nddata import NDData, StdDevUncertainty

from astro_cl.data.fits_maps import write_maps
from astro_cl.data.record import GalaxyRecord, ObservingMeta
from astro_cl.exceptions import ValidationError
from astro_cl.surveys.mock import io as mock_io
from astro_cl.surveys.mock.render import ImageRenderer
from astro_cl.surveys.mock.spectra import load_basis
from astro_cl.surveys.mock.survey import MockSurvey, _maps_nd
from astro_cl.surveys.mock.units import nanomaggy

__all__ = ["SDSSMockSurvey"]


class SDSSMockSurvey(MockSurvey):
    """Mock SDSS ugriz cutouts with paired truth maps, generated or read from disk.

    Parameters
    ----------
    n : int, optional
        Number of galaxies (ignored in twin mode).
    seed : int, optional
        Survey seed; galaxy ``i`` depends only on ``(seed, i)``.
    size : int, optional
        Cutout side in pixels (64; up to 256 as in PICASSSO).
    path : str or `~pathlib.Path`, optional
        Read a written mock (``<id>.fits`` + ``catalogue.ecsv``) with the ``sdss``
        reader instead of generating.
    twin : str, `~pathlib.Path` or `~astropy.table.Table`, optional
        Real catalogue to twin (one mock per row).
    noise : bool, optional
        Add sky and photon noise.
    star_rate : float, optional
        Mean number of foreground stars per cutout.
    bad_column_rate : float, optional
        Probability of a bad column per band.

    Examples
    --------
    >>> from astro_cl.surveys.sdss_mock import SDSSMockSurvey
    >>> survey = SDSSMockSurvey(n=3, seed=1, size=32)
    >>> survey[0].images.data.shape
    (5, 32, 32)
    """

    name = "sdss-mock"
    description = "Physical mock galaxies as SDSS ugriz images (nanomaggy) + truth maps."
    default_kind = "images"
    reader_class = ("astro_cl.surveys.sdss", "SDSSSurvey")
    pixel_scale = 0.396
    #: SDSS main sample: flux-limited (r < 17.77) at 0.005 < z < 0.08.
    selection = "flux"

    def __init__(self, *, n=100, seed=0, size=64, path=None, twin=None, noise=True,
                 star_rate=0.3, bad_column_rate=0.05):
        self.n = n
        self.seed = seed
        self.size = size
        self.path = path
        self.twin = twin
        self.noise = noise
        self.star_rate = star_rate
        self.bad_column_rate = bad_column_rate
        if not 8 <= int(size) <= 512:
            msg = f"size: expected 8-512 pixels, got {size!r}"
            raise ValidationError(msg)

    @property
    def renderer(self):
        """`~astro_cl.surveys.mock.render.ImageRenderer`: the configured renderer."""
        return ImageRenderer(pixel_scale=self.pixel_scale, noise=self.noise,
                             star_rate=self.star_rate, bad_column_rate=self.bad_column_rate)

    def _meta(self):
        r = self.renderer
        return {"survey": self.name, "seed": int(self.seed), "pixel_scale_arcsec": r.pixel_scale,
                "bands": list(r.bands), "psf_fwhm_arcsec": dict(r.psf_fwhm),
                "basis": load_basis().source.rsplit("/", 1)[-1]}

    def _render(self, params, index):
        state = self._state(params)
        out = self.renderer.render(state, self._rng(index))
        wcs = mock_io.celestial_wcs(params["ra"], params["dec"], state.shape, self.pixel_scale)
        return state, out, wcs

    def _record(self, params, state, out, wcs, row):
        r = self.renderer
        images = NDData(out["data"].astype("float32"), unit=nanomaggy,
                        uncertainty=StdDevUncertainty(out["std"].astype("float32")),
                        mask=out["mask"] | ~(out["std"] < float("inf")), wcs=wcs,
                        meta={"bands": tuple(r.bands)})
        obs = ObservingMeta(pixel_scale=r.pixel_scale * u.arcsec,
                            psf_fwhm=r.psf_fwhm["r"] * u.arcsec,
                            redshift=params["z"], bands=tuple(r.bands),
                            instrument="SDSS imaging (mock)")
        return GalaxyRecord(id=params["name"], survey=self.name, images=images,
                            maps=_maps_nd(state, wcs), properties=row, observing=obs,
                            star_mask=out["star_mask"], meta={"index": int(params["index"])})

    def _write_files(self, directory, params, state, out, wcs):
        r = self.renderer
        stem = params["name"]
        mock_io.write_image(directory / f"{stem}.fits", out, wcs, r.bands, redshift=params["z"],
                            psf_fwhm=r.psf_fwhm, name=stem)
        write_maps(directory / f"{stem}.maps.fits", _maps_nd(state, wcs),
                   header={"OBJECT": stem, "ORIGIN": "astro_cl sdss-mock"})
