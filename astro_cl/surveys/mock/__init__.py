"""Physically grounded mock galaxies rendered as SDSS-like images and eCALIFA-like cubes.

One galaxy model, two renderers:

* :mod:`~astro_cl.surveys.mock.population` draws global properties (mass, SFR,
  star-formation history, morphology, size, environment, redshift) from
  published relations, or twins a real catalogue;
* :mod:`~astro_cl.surveys.mock.structure` lays the galaxy on a pixel grid as
  per-pixel star-formation histories on the SSP grid, dust and emission lines,
  and computes the truth maps from them;
* :mod:`~astro_cl.surveys.mock.ssp` holds the stellar-population basis (the
  MaStar SSP grid of sdss-mangadap, BSD-3; kcorrect's templates as fallback);
* :mod:`~astro_cl.surveys.mock.spectra` holds the Calzetti dust curve, the
  emission-line model and the SDSS filters;
* :mod:`~astro_cl.surveys.mock.render` turns a state into ugriz images or V500
  cubes;
* :mod:`~astro_cl.surveys.mock.paint` paints external maps (kpc grid) into
  either survey;
* :mod:`~astro_cl.surveys.mock.io` writes the real file formats;
* :mod:`~astro_cl.surveys.mock.paired` renders one population with both
  renderers (`paired_mocks`: the same galaxies as cubes and as images).

The surveys are `~astro_cl.surveys.sdss_mock.SDSSMockSurvey` (``"sdss-mock"``)
and `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey` (``"ecalifa-mock"``).
"""

from astro_cl.surveys.mock.paint import paint_galaxy, resample_maps
from astro_cl.surveys.mock.population import draw_galaxy, draw_population, twin_population
from astro_cl.surveys.mock.render import CubeRenderer, ImageRenderer
from astro_cl.surveys.mock.ssp import load_basis
from astro_cl.surveys.mock.structure import GalaxyState, build_state, state_from_maps

__all__ = [
    "CubeRenderer",
    "GalaxyState",
    "ImageRenderer",
    "PairedCubeMock",
    "PairedImageMock",
    "build_state",
    "draw_galaxy",
    "draw_population",
    "load_basis",
    "paint_galaxy",
    "paired_mocks",
    "resample_maps",
    "state_from_maps",
    "twin_population",
]


def __getattr__(name):
    # lazy: the paired mocks import the survey classes, which import this package
    if name in ("PairedCubeMock", "PairedImageMock", "paired_mocks"):
        from astro_cl.surveys.mock import paired

        return getattr(paired, name)
    msg = f"module 'astro_cl.surveys.mock' has no attribute {name!r}"
    raise AttributeError(msg)
