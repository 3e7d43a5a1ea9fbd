"""Paired mocks: one mock population seen both as eCALIFA-like cubes and SDSS-like images.

``ecalifa-mock`` and ``sdss-mock`` draw *different* populations for the same
seed: a diameter-selected one sized to the cube's field, and a flux-limited
one (see :mod:`astro_cl.surveys.mock.population`). Galaxy ``mock000003`` of
one is not galaxy ``mock000003`` of the other. Cross-modal work needs the
same galaxies in both, so `paired_mocks` draws one population (one set of
global parameters per galaxy, the same ids) and renders it with both
renderers:

* ``grid="native"`` (default): each instrument lays the galaxy on its own
  pixel grid (0.5" spaxels for the cube, 0.396" pixels for the image), as a
  real pair of surveys would. Both states are built by
  `~astro_cl.surveys.mock.structure.build_state` from the *same* parameters;
  they differ only in sampling and field of view, and each record carries the
  truth maps of the state that produced it.
* ``grid="shared"``: both are rendered from one grid (the cube's pixel scale
  and size), so image and cube come from one and the same galaxy state and
  carry identical truth maps.

The noise, foreground stars and bad pixels of the two renderings are drawn
from independent streams: a star at the same place in both would let a
cross-modal model match the pair by the star instead of by the galaxy.
"""

import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
from astro_cl.surveys.mock.population import SELECTIONS, galaxy_seed
from astro_cl.surveys.sdss_mock import SDSSMockSurvey

__all__ = ["PairedCubeMock", "PairedImageMock", "paired_mocks"]

#: Random streams of `~astro_cl.surveys.mock.population.galaxy_seed`: 0 draws the
#: population, 1 the cube's rendering (as in ``ecalifa-mock``), 3 the image's.
_IMAGE_STREAM = 3
_GRIDS = ("native", "shared")


def _check_population(selection, population_fov):
    if selection not in SELECTIONS:
        msg = f"selection: expected one of {SELECTIONS}, got {selection!r}"
        raise ValidationError(msg)
    if population_fov is not None and not float(population_fov) > 0:
        msg = f"population_fov: expected a positive field of view in arcsec, got {population_fov!r}"
        raise ValidationError(msg)


class _SharedPopulation:
    """Draws the galaxies from a population given by parameters, not by the survey class."""

    @property
    def fov_arcsec(self):
        """float: field of view (arcsec) the population's diameter selection is sized to."""
        if self.population_fov is not None:
            return float(self.population_fov)
        return self.size * self.pixel_scale


class PairedCubeMock(_SharedPopulation, ECALIFAMockSurvey):
    """eCALIFA-like cubes of a population shared with a `PairedImageMock`.

    ``ecalifa-mock`` with the population and the pixel grid as parameters;
    `paired_mocks` builds one of each with the same population. The records
    are those of ``ecalifa-mock`` (survey name, layout, truth maps).

    Parameters
    ----------
    n, seed, twin, noise, star_rate, hexagon, bad_fraction
        As for `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey`.
    size : int, optional
        Spaxels per side.
    pixel_scale : float, optional
        Arcsec per spaxel (eCALIFA: 0.5).
    population_fov : float, optional
        Field of view (arcsec) the diameter selection sizes the galaxies to
        (default: this survey's, ``size x pixel_scale``).
    selection : {"diameter", "flux"}, optional
        The population (`~astro_cl.surveys.mock.population.SELECTIONS`).
    """

    def __init__(self, *, n=100, seed=0, size=32, pixel_scale=0.5, population_fov=None,
                 selection="diameter", twin=None, noise=True, star_rate=0.3, hexagon=True,
                 bad_fraction=5e-4):
        super().__init__(n=n, seed=seed, size=size, pixel_scale=pixel_scale, path=None,
                         twin=twin, noise=noise, star_rate=star_rate, hexagon=hexagon,
                         bad_fraction=bad_fraction)
        _check_population(selection, population_fov)
        self.population_fov = population_fov
        self.selection = selection


class PairedImageMock(_SharedPopulation, SDSSMockSurvey):
    """SDSS-like ugriz images of a population shared with a `PairedCubeMock`.

    ``sdss-mock`` with the population and the pixel grid as parameters; the
    noise, stars and bad columns come from a stream of their own (independent
    of the cube's).

    Parameters
    ----------
    n, seed, twin, noise, star_rate, bad_column_rate
        As for `~astro_cl.surveys.sdss_mock.SDSSMockSurvey`.
    size : int, optional
        Pixels per side.
    pixel_scale : float, optional
        Arcsec per pixel (SDSS: 0.396).
    population_fov : float, optional
        Field of view (arcsec) the diameter selection sizes the galaxies to
        (default: this survey's).
    selection : {"diameter", "flux"}, optional
        The population.
    """

    def __init__(self, *, n=100, seed=0, size=48, pixel_scale=0.396, population_fov=None,
                 selection="diameter", twin=None, noise=True, star_rate=0.3,
                 bad_column_rate=0.05):
        super().__init__(n=n, seed=seed, size=size, path=None, twin=twin, noise=noise,
                         star_rate=star_rate, bad_column_rate=bad_column_rate)
        _check_population(selection, population_fov)
        self.pixel_scale = pixel_scale
        self.population_fov = population_fov
        self.selection = selection

    def _rng(self, index):
        return np.random.default_rng(galaxy_seed(self.seed, index, _IMAGE_STREAM))


def paired_mocks(n=100, seed=0, *, cube_size=32, image_size=48, grid="native",
                 selection="diameter", twin=None, noise=True, star_rate=0.3):
    """Render one mock population as eCALIFA-like cubes and SDSS-like ugriz images.

    The galaxies are drawn once (the eCALIFA-like diameter selection sized to
    the cube's field, by default) and rendered by both renderers: galaxy
    ``mock000007`` is the same galaxy in both surveys.

    Parameters
    ----------
    n : int, optional
        Number of galaxies (ignored with ``twin``).
    seed : int, optional
        Seed of the population and of the renderings.
    cube_size : int, optional
        Spaxels per side of the cubes (0.5" spaxels: 32 spaxels is 16").
    image_size : int, optional
        Pixels per side of the images (0.396" pixels: 48 px is 19"); ignored
        with ``grid="shared"``.
    grid : {"native", "shared"}, optional
        ``"native"``: each instrument's own pixel grid (the states of a galaxy
        differ only in sampling and field); ``"shared"``: one grid, the
        cube's, for both, so that image and cube come from one galaxy state
        and carry identical truth maps (the images then have 0.5" pixels).
    selection : {"diameter", "flux"}, optional
        The population: eCALIFA-like (sized to the cube's field) or SDSS-like.
    twin : str, `~pathlib.Path` or `~astropy.table.Table`, optional
        A real catalogue to twin, one galaxy per row, in both surveys.
    noise : bool, optional
        Add noise to both.
    star_rate : float, optional
        Mean number of foreground stars per cube and per image.

    Returns
    -------
    paired : `~astro_cl.surveys.paired.PairedSurvey`
        ``first``: the images (`PairedImageMock`, default kind ``"images"``);
        ``second``: the cubes (`PairedCubeMock`, default kind ``"cube"``).

    Raises
    ------
    astro_cl.exceptions.ValidationError
        If ``grid`` or ``selection`` is unknown.

    Examples
    --------
    >>> from astro_cl.surveys.mock import paired_mocks
    >>> paired = paired_mocks(n=2, seed=1, cube_size=16, image_size=20)
    >>> image, cube = paired[0]
    >>> image.id == cube.id, image.images.data.shape, cube.cube.flux.shape
    (True, (5, 20, 20), (1877, 16, 16))
    """
    from astro_cl.surveys.paired import PairedSurvey

    if grid not in _GRIDS:
        msg = f"grid: expected one of {_GRIDS}, got {grid!r}"
        raise ValidationError(msg)
    _check_population(selection, None)
    cube_scale = float(ECALIFAMockSurvey.pixel_scale)
    fov = int(cube_size) * cube_scale
    cubes = PairedCubeMock(n=n, seed=seed, size=cube_size, pixel_scale=cube_scale,
                           population_fov=fov, selection=selection, twin=twin, noise=noise,
                           star_rate=star_rate)
    if grid == "shared":
        image_size, image_scale = cube_size, cube_scale
    else:
        image_scale = float(SDSSMockSurvey.pixel_scale)
    images = PairedImageMock(n=n, seed=seed, size=image_size, pixel_scale=image_scale,
                             population_fov=fov, selection=selection, twin=twin, noise=noise,
                             star_rate=star_rate)
    return PairedSurvey(images, cubes)
