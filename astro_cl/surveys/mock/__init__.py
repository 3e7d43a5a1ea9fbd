"""Physically grounded mock galaxies rendered as SDSS-like images and eCALIFA-like cubes.

One galaxy model, two renderers:

* :mod:`~astro_cl.surveys.mock.population` draws global properties (mass, SFR,
  morphology, size, environment, redshift) from published relations, or twins
  a real catalogue;
* :mod:`~astro_cl.surveys.mock.structure` lays the galaxy on a pixel grid as
  per-pixel template weights, dust and emission lines, and computes the truth
  maps from them;
* :mod:`~astro_cl.surveys.mock.spectra` holds the spectral basis (kcorrect's
  templates, BSD-3), the Calzetti dust curve, the emission-line model and the
  SDSS filters;
* :mod:`~astro_cl.surveys.mock.render` turns a state into ugriz images or V500
  cubes through the same linear decomposition;
* :mod:`~astro_cl.surveys.mock.io` writes the real file formats.

The surveys are `~astro_cl.surveys.sdss_mock.SDSSMockSurvey` (``"sdss-mock"``)
and `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey` (``"ecalifa-mock"``).
"""

from astro_cl.surveys.mock.population import draw_galaxy, draw_population, twin_population
from astro_cl.surveys.mock.render import CubeRenderer, ImageRenderer
from astro_cl.surveys.mock.structure import GalaxyState, build_state, state_from_maps

__all__ = [
    "CubeRenderer",
    "GalaxyState",
    "ImageRenderer",
    "build_state",
    "draw_galaxy",
    "draw_population",
    "state_from_maps",
    "twin_population",
]
