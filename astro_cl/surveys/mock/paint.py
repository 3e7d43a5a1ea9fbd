"""Paint external galaxies (e.g. a hydrodynamical simulation's maps) into the mock surveys.

`paint_galaxy` takes property maps on a physical grid (kpc per pixel, with
units) and a redshift, and returns the `~astro_cl.data.record.GalaxyRecord`
that a mock survey (``sdss-mock`` or ``ecalifa-mock``) would make of that
galaxy: the image or cube on the instrument's grid with its noise and
artefacts, and the truth maps that produced it. The steps are public too:

1. `resample_maps` moves the maps onto the instrument's grid (the angular
   pixel at the redshift, flat LCDM H0 = 70, Om0 = 0.3) by exact pixel-overlap
   rebinning of extensive quantities (stellar mass, SFR, gas mass, metal
   mass, mass x age), so every map's total inside the field is conserved;
   intensive maps (metallicity, age, gas metallicity) are the ratios of the
   rebinned extensive ones;
2. `~astro_cl.surveys.mock.structure.state_from_maps` turns them into per-pixel
   star-formation histories on the SSP grid (see its notes for the rules used
   when the SFR or age map is missing);
3. the survey's renderer makes the pixels and the survey's record layout
   holds them.

Metallicities are mass fractions (a dimensionless map) or log10(Z/Zsun) (a
``dex`` map) on the scale given by ``solar_metallicity`` (0.0127 for
Illustris; the mocks use 0.02).
"""

import astropy.units as u
import numpy as np
from astropy.nddata import NDData

from astro_cl.exceptions import ValidationError
from astro_cl.surveys.mock import spectra
from astro_cl.surveys.mock.structure import Z_SUN, state_from_maps

__all__ = ["MAP_INPUTS", "paint_galaxy", "record_from_state", "resample_maps"]

#: Maps `paint_galaxy` reads: name -> (unit per pixel, unit per area) it accepts.
MAP_INPUTS = {
    "stellar_mass": (u.Msun, u.Msun / u.kpc**2),
    "sfr": (u.Msun / u.yr, u.Msun / u.yr / u.kpc**2),
    "gas_mass": (u.Msun, u.Msun / u.kpc**2),
    "metallicity": (u.dimensionless_unscaled, u.dex),
    "age_mw": (u.Gyr, u.Gyr),
    "gas_metallicity": (u.dex, u.dex),
}


def _quantity(name, value):
    """Return a map as a float Quantity, whatever the container (NDData, Quantity)."""
    if isinstance(value, NDData):
        if value.unit is None:
            msg = f"maps[{name!r}]: no unit; expected one of {MAP_INPUTS[name]}"
            raise ValidationError(msg)
        return u.Quantity(np.asarray(value.data, float), value.unit)
    if isinstance(value, u.Quantity):
        return value.astype(float)
    msg = (f"maps[{name!r}]: expected an astropy Quantity or NDData with a unit, "
           f"got {type(value).__name__}")
    raise ValidationError(msg)


def _overlap(n_in, step_in, n_out, step_out):
    """Fraction of each input pixel falling in each output pixel (both grids centred)."""
    e_in = (np.arange(n_in + 1) - n_in / 2) * step_in
    e_out = (np.arange(n_out + 1) - n_out / 2) * step_out
    lo = np.maximum(e_out[:-1, None], e_in[None, :-1])
    hi = np.minimum(e_out[1:, None], e_in[None, 1:])
    return np.clip(hi - lo, 0, None) / step_in


def _kpc(value, name):
    if isinstance(value, u.Quantity):
        try:
            return float(value.to_value(u.kpc / u.pix if value.unit.physical_type != "length"
                                        else u.kpc))
        except u.UnitConversionError:
            msg = f"{name}: expected kpc per pixel, got {value}"
            raise ValidationError(msg) from None
    return float(value)


def resample_maps(maps, *, kpc_per_pixel, z, pixel_scale, shape, solar_metallicity=Z_SUN):
    """Resample maps on a physical grid onto an instrument's grid, conserving mass.

    Parameters
    ----------
    maps : mapping of str to `~astropy.units.Quantity` or `~astropy.nddata.NDData`
        2-D maps with units (see `MAP_INPUTS`): ``stellar_mass`` (required;
        mass per pixel or surface density), ``sfr``, ``gas_mass`` (same),
        ``metallicity`` (mass fraction, or log10(Z/Zsun) as ``dex``),
        ``age_mw`` (mass-weighted age), ``gas_metallicity`` (12 + log O/H).
    kpc_per_pixel : float or `~astropy.units.Quantity`
        Pixel size of the maps (kpc).
    z : float
        Redshift at which the galaxy is observed.
    pixel_scale : float
        Instrument pixel (arcsec).
    shape : tuple of int
        Instrument grid ``(ny, nx)``; both grids share their centre.
    solar_metallicity : float, optional
        Zsun of a ``dex`` metallicity map.

    Returns
    -------
    maps : dict of str to `~astropy.nddata.NDData`
        Surface densities (per kpc^2) and intensive maps on the instrument grid,
        metallicity as log10(Z/Zsun) on the ``solar_metallicity`` scale, ready
        for `~astro_cl.surveys.mock.structure.state_from_maps`.
    kpc_per_pixel : float
        Pixel size of the instrument grid at ``z``.

    Raises
    ------
    astro_cl.exceptions.ValidationError
        On a missing stellar-mass map, unknown names, wrong units or shapes.
    """
    unknown = sorted(set(maps) - set(MAP_INPUTS))
    if unknown:
        msg = f"maps: unknown names {unknown}; expected some of {sorted(MAP_INPUTS)}"
        raise ValidationError(msg)
    if "stellar_mass" not in maps:
        msg = f"maps: 'stellar_mass' is required to paint a galaxy; got {sorted(maps)}"
        raise ValidationError(msg)
    step_in = _kpc(kpc_per_pixel, "kpc_per_pixel")
    if not (np.isfinite(step_in) and step_in > 0):
        msg = f"kpc_per_pixel: expected a positive pixel size, got {kpc_per_pixel!r}"
        raise ValidationError(msg)
    if not 0 < float(z) < 1:
        msg = f"z: expected a redshift in (0, 1), got {z!r}"
        raise ValidationError(msg)
    step_out = float(spectra.kpc_per_arcsec(float(z))) * float(pixel_scale)
    q = {name: _quantity(name, value) for name, value in maps.items()}
    ref = q["stellar_mass"].shape
    if len(ref) != 2:
        msg = f"maps['stellar_mass']: expected a 2-D map, got shape {ref}"
        raise ValidationError(msg)
    for name, value in q.items():
        if value.shape != ref:
            msg = f"maps[{name!r}]: shape {value.shape} differs from stellar_mass {ref}"
            raise ValidationError(msg)
    area_in = step_in**2

    def per_pixel(name):
        """Extensive map as an amount per input pixel."""
        value = q[name]
        per_pix, per_area = MAP_INPUTS[name]
        if value.unit.is_equivalent(per_pix):
            return np.nan_to_num(value.to_value(per_pix))
        if value.unit.is_equivalent(per_area):
            return np.nan_to_num(value.to_value(per_area)) * area_in
        msg = f"maps[{name!r}]: unit {value.unit} is neither {per_pix} nor {per_area}"
        raise ValidationError(msg)

    ry = _overlap(ref[0], step_in, shape[0], step_out)
    rx = _overlap(ref[1], step_in, shape[1], step_out)

    def rebin(amount):
        return ry @ amount @ rx.T

    mass_in = np.clip(per_pixel("stellar_mass"), 0, None)
    mass = rebin(mass_in)
    area_out = step_out**2
    out = {"stellar_mass": mass / area_out * (u.Msun / u.kpc**2)}
    safe = np.where(mass > 0, mass, 1.0)
    for name in ("sfr", "gas_mass"):
        if name in q:
            out[name] = rebin(np.clip(per_pixel(name), 0, None)) / area_out * MAP_INPUTS[name][1]
    if "metallicity" in q:
        met = q["metallicity"]
        if met.unit.is_equivalent(u.dex) and met.unit != u.dimensionless_unscaled:
            z_frac = float(solar_metallicity) * 10 ** met.to_value(u.dex)
        elif met.unit.is_equivalent(u.dimensionless_unscaled):
            z_frac = met.to_value(u.dimensionless_unscaled)
        else:
            msg = f"maps['metallicity']: unit {met.unit} is neither a mass fraction nor dex"
            raise ValidationError(msg)
        metal = rebin(np.nan_to_num(z_frac) * mass_in)
        out["metallicity"] = np.log10(np.clip(metal / safe, 1e-8, None)
                                      / float(solar_metallicity)) * u.dex
    if "age_mw" in q:
        try:
            age = q["age_mw"].to_value(u.Gyr)
        except u.UnitConversionError:
            msg = f"maps['age_mw']: unit {q['age_mw'].unit} is not a time"
            raise ValidationError(msg) from None
        out["age_mw"] = rebin(np.nan_to_num(age) * mass_in) / safe * u.Gyr
    if "gas_metallicity" in q:
        oh = q["gas_metallicity"]
        oh = oh.to_value(u.dex) if oh.unit.is_equivalent(u.dex) else oh.value
        weight = (per_pixel("gas_mass") if "gas_mass" in q
                  else per_pixel("sfr") if "sfr" in q else mass_in)
        weight = np.clip(weight, 0, None) + 1e-30 * mass_in.max()
        o_abund = rebin(10 ** (np.nan_to_num(oh, nan=8.7) - 12) * weight)
        ratio = np.clip(o_abund / rebin(weight), 1e-6, None)
        out["gas_metallicity"] = (np.log10(ratio) + 12) * u.dex
    nd = {k: NDData(v.value, unit=v.unit) for k, v in out.items()}
    if "gas_mass" in nd:
        nd["gas_mass"] = NDData(out["gas_mass"].to_value(u.Msun / u.pc**2),
                                unit=u.Msun / u.pc**2)
    return nd, step_out


def _survey(survey):
    if isinstance(survey, str):
        from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
        from astro_cl.surveys.sdss_mock import SDSSMockSurvey

        classes = {"sdss-mock": SDSSMockSurvey, "ecalifa-mock": ECALIFAMockSurvey}
        if survey not in classes:
            msg = f"survey: expected one of {sorted(classes)} or a mock survey, got {survey!r}"
            raise ValidationError(msg)
        return classes[survey](n=1)
    if not hasattr(survey, "renderer") or not hasattr(survey, "_record"):
        msg = f"survey: expected a mock survey (sdss-mock, ecalifa-mock), got {survey!r}"
        raise ValidationError(msg)
    return survey


def paint_galaxy(maps, *, kpc_per_pixel, z, survey="sdss-mock", size=None, name="painted",
                 inclination=None, q_disc=None, solar_metallicity=Z_SUN, seed=0, noise=True,
                 ew_dig=1.0, ra=180.0, dec=0.0):
    """Render maps of a galaxy on a physical grid as a mock survey would observe it.

    Parameters
    ----------
    maps : mapping of str to `~astropy.units.Quantity` or `~astropy.nddata.NDData`
        See `resample_maps` (``stellar_mass`` required; ``sfr``, ``gas_mass``,
        ``metallicity``, ``age_mw``, ``gas_metallicity`` optional).
    kpc_per_pixel : float or `~astropy.units.Quantity`
        Pixel size of the maps (kpc).
    z : float
        Redshift of the observation.
    survey : str or mock survey, optional
        ``"sdss-mock"`` (ugriz images), ``"ecalifa-mock"`` (V500 cubes), or a
        configured `~astro_cl.surveys.sdss_mock.SDSSMockSurvey` /
        `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey` (its renderer settings
        and ``size`` are used).
    size : int, optional
        Instrument pixels per side (default: the survey's ``size``).
    name : str, optional
        Record id.
    inclination : float or `~astropy.units.Quantity`, optional
        Disc inclination (deg; 0 = face-on); sets the dust path length through
        the axis ratio ``sqrt(0.2**2 + 0.96 cos(i)**2)`` of a disc 0.2 thick.
    q_disc : float, optional
        The axis ratio directly. Default (neither given): the axis ratio of the
        stellar-mass map's second moments.
    solar_metallicity : float, optional
        Zsun of a ``dex`` metallicity map (0.0127 for Illustris; the mocks: 0.02).
    seed : int, optional
        Seed of the noise, foreground stars and artefacts.
    noise : bool, optional
        False: the noise-free model (also no stars or artefacts).
    ew_dig : float, optional
        EW(H-alpha) in A of the gas ionised by evolved stars.
    ra, dec : float, optional
        Sky position written in the WCS (deg).

    Returns
    -------
    record : `~astro_cl.data.record.GalaxyRecord`
        Images or cube, truth maps on the instrument grid (``record.maps``),
        and catalogue-style ``properties``.

    Warns
    -----
    astro_cl.exceptions.AstroCLWarning
        Without an SFR map (see `~astro_cl.surveys.mock.structure.state_from_maps`).

    Examples
    --------
    >>> import astropy.units as u, numpy as np
    >>> from astro_cl.surveys.mock.paint import paint_galaxy
    >>> yy, xx = np.indices((64, 64)) - 31.5
    >>> r = np.hypot(xx, yy) * 0.25                     # kpc, 0.25 kpc pixels
    >>> maps = {"stellar_mass": 2e9 * np.exp(-r / 2.0) * u.Msun / u.kpc**2,
    ...         "sfr": 0.02 * np.exp(-r / 3.0) * u.Msun / u.yr / u.kpc**2,
    ...         "age_mw": (9.0 - 0.8 * r) * u.Gyr,
    ...         "metallicity": (0.1 - 0.05 * r) * u.dex}
    >>> rec = paint_galaxy(maps, kpc_per_pixel=0.25, z=0.03, size=48, inclination=40)
    >>> rec.images.data.shape
    (5, 48, 48)
    """
    survey = _survey(survey)
    renderer = survey.renderer
    if not noise:
        renderer.noise = False
        for attr in ("star_rate", "bad_column_rate", "bad_fraction"):
            if hasattr(renderer, attr):
                setattr(renderer, attr, 0.0)
    n = int(size if size is not None else survey.size)
    if not 8 <= n <= 512:
        msg = f"size: expected 8-512 instrument pixels, got {size!r}"
        raise ValidationError(msg)
    if inclination is not None and q_disc is None:
        inc = inclination.to_value(u.deg) if isinstance(inclination, u.Quantity) else inclination
        if not 0 <= float(inc) <= 90:
            msg = f"inclination: expected 0-90 deg, got {inclination!r}"
            raise ValidationError(msg)
        q_disc = float(np.sqrt(0.2**2 + (1 - 0.2**2) * np.cos(np.radians(float(inc))) ** 2))
    grid, _ = resample_maps(maps, kpc_per_pixel=kpc_per_pixel, z=z,
                            pixel_scale=renderer.pixel_scale, shape=(n, n),
                            solar_metallicity=solar_metallicity)
    state = state_from_maps(grid, z=float(z), pixel_scale=renderer.pixel_scale, name=name,
                            q_disc=q_disc, solar_metallicity=solar_metallicity, ew_dig=ew_dig)
    return record_from_state(survey, state, seed=seed, renderer=renderer, ra=ra, dec=dec)


def record_from_state(survey, state, *, seed=0, renderer=None, ra=None, dec=None):
    """Render a galaxy state with a mock survey's renderer and wrap it as that survey's record.

    Parameters
    ----------
    survey : mock survey
        `~astro_cl.surveys.sdss_mock.SDSSMockSurvey` or
        `~astro_cl.surveys.ecalifa_mock.ECALIFAMockSurvey`.
    state : `~astro_cl.surveys.mock.structure.GalaxyState`
        On the renderer's pixel scale.
    seed : int, optional
        Seed of the noise and artefacts.
    renderer : optional
        A renderer to use instead of ``survey.renderer``.
    ra, dec : float, optional
        Sky position (deg); default the state's.

    Returns
    -------
    record : `~astro_cl.data.record.GalaxyRecord`
    """
    from astro_cl.surveys.mock import io as mock_io
    from astro_cl.surveys.mock.survey import _row

    renderer = renderer if renderer is not None else survey.renderer
    if abs(state.pixel_scale - renderer.pixel_scale) > 1e-9:
        msg = (f"state: pixel scale {state.pixel_scale} arcsec differs from the renderer's "
               f"{renderer.pixel_scale}")
        raise ValidationError(msg)
    params = dict(state.params)
    params["ra"] = float(params.get("ra", 0.0) if ra is None else ra)
    params["dec"] = float(params.get("dec", 0.0) if dec is None else dec)
    state.params = params
    out = renderer.render(state, np.random.default_rng(seed))
    if survey.default_kind == "cube":
        wcs = mock_io.cube_wcs(params["ra"], params["dec"], out["flux"].shape,
                               renderer.pixel_scale, renderer.wave_start, renderer.wave_step)
    else:
        wcs = mock_io.celestial_wcs(params["ra"], params["dec"], state.shape,
                                    renderer.pixel_scale)
    return survey._record(params, state, out, wcs, _row(params, state))
