"""Resolved structure: bulge + disc, radial gradients and dust, as per-pixel template weights.

A galaxy on a pixel grid becomes a `GalaxyState`: for every pixel the mass
formed in each basis template (``weights``), the stellar and gas V-band
attenuation and the attenuated emission-line fluxes. The truth maps and the
catalogue values are computed *from these arrays*, which are also what the
renderers turn into pixels, so the truth is what produced the data.

Model (per pixel, vectorised):

* stellar mass surface density: Sersic bulge (index n, axis ratio q_b) + exponential
  disc (q_d from the inclination), normalised analytically and integrated over
  3x3 sub-pixels;
* specific SFR: disc sSFR rising outwards by 0.15 dex per half-mass radius
  (inside-out growth; Perez et al. 2013, Gonzalez Delgado et al. 2016), bulge
  sSFR 1 dex below the disc's; scaled to the galaxy's SFR;
* stellar metallicity: log Z/Zsun = -0.65 + 0.75 / (1 + exp(-(log M - 9.8)/0.4))
  (shape of Gallazzi et al. 2005) with a -0.1 dex/Re gradient;
* gas metallicity: 12 + log(O/H) = 8.68 - 0.4 exp(-(log M - 8.5)/0.8) (N2 scale)
  with a -0.1 dex/Re gradient (Sanchez et al. 2014);
* gas surface density from the inverted Kennicutt (1998) law
  Sigma_SFR = 2.5e-4 Sigma_gas^1.4 (Msun/yr/kpc^2, Msun/pc^2);
* gas attenuation A_V = Sigma_gas / (15 Msun/pc^2) x (O/H)/(O/H)sun x
  (1/q_d)^0.5, capped at 3 mag (Milky Way dust-to-gas ratio, screen at half
  the column); stellar A_V = 0.44 A_V(gas) (Calzetti et al. 2000).

The per-pixel template mixture (see `compose`) is set by the sSFR, the
metallicity and an "old fraction" that sets the mean age.
"""

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.surveys.mock import spectra
from astro_cl.surveys.mock.population import sersic_b, sfms_class

__all__ = ["MAP_UNITS", "GalaxyState", "build_state", "compose", "state_from_maps"]

#: Units of the truth maps.
MAP_UNITS = {
    "stellar_mass": u.Msun / u.kpc**2, "sfr": u.Msun / u.yr / u.kpc**2, "age_lw": u.Gyr,
    "age_mw": u.Gyr, "metallicity": u.dex, "gas_mass": u.Msun / u.kpc**2,
    "gas_metallicity": u.dex, "ew_ha": u.AA, "av": u.mag, "av_stellar": u.mag,
}
_T_YOUNG = 3e8  # yr: the SFR is the mass formed in the last 300 Myr / 300 Myr
_LOG_OH_SUN = 8.69
_SUB = np.array([-1 / 3, 0.0, 1 / 3])


@dataclass
class GalaxyState:
    """One galaxy on a pixel grid: what the renderers paint and what the truth is made of.

    Attributes
    ----------
    params : dict
        Global parameters (from `~astro_cl.surveys.mock.population.draw_galaxy`).
    shape : tuple of int
        ``(ny, nx)``.
    pixel_scale : float
        Arcsec per pixel.
    kpc_per_pixel : float
    weights : `numpy.ndarray`
        Solar masses formed per pixel in each template, ``(n_pix, n_templates)``.
    av_stellar, av_gas : `numpy.ndarray`
        V-band attenuation of the continuum and of the lines, ``(n_pix,)``.
    lines10 : `numpy.ndarray`
        Attenuated emission-line fluxes at 10 pc (erg/s/cm^2), ``(n_pix, n_lines)``.
    truth : dict of str to `numpy.ndarray`
        Truth maps ``(ny, nx)`` in `MAP_UNITS`.
    summary : dict
        Integrated (catalogue) values.
    """

    params: dict
    shape: tuple
    pixel_scale: float
    kpc_per_pixel: float
    weights: np.ndarray
    av_stellar: np.ndarray
    av_gas: np.ndarray
    lines10: np.ndarray
    truth: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    @property
    def z(self):
        """float: redshift."""
        return float(self.params["z"])


def _sersic_eval(dx, dy, n, re, q, c, s):
    major = -dx * s + dy * c
    minor = dx * c + dy * s
    r = np.sqrt(major**2 + (minor / q) ** 2)
    return np.exp(-sersic_b(n) * ((r / re) ** (1 / n) - 1))


def _sersic_pixels(xx, yy, n, re, q, pa_rad):
    """Sersic profile of unit total mass integrated over pixels; radii in pixels.

    Every pixel is integrated on 3x3 sub-samples; pixels near the centre, where
    a compact or thin component varies within a pixel, on 15x15 sub-samples.
    """
    from scipy.special import gamma

    c, s = np.cos(pa_rad), np.sin(pa_rad)
    b = sersic_b(n)
    norm = 2 * np.pi * n * q * re**2 * np.exp(b) * b ** (-2 * n) * gamma(2 * n)
    prof = _sersic_eval(xx[..., None, None] + _SUB[None, None, :, None],
                        yy[..., None, None] + _SUB[None, None, None, :], n, re, q, c, s)
    prof = prof.mean(axis=(-2, -1))
    half = int(min(np.ceil(4 * re) + 2, 12))
    box = (np.abs(xx) <= half) & (np.abs(yy) <= half)
    if re * q < 4 and box.any():
        fine = (np.arange(15) - 7) / 15
        prof[box] = _sersic_eval(xx[box][:, None, None] + fine[None, :, None],
                                 yy[box][:, None, None] + fine[None, None, :],
                                 n, re, q, c, s).mean(axis=(-2, -1))
    r_ell = np.sqrt((-xx * s + yy * c) ** 2 + ((xx * c + yy * s) / q) ** 2)
    return prof / norm, r_ell


def compose(ssfr, log_z, old_fraction):
    """Per-pixel template mixture (per solar mass formed) for a sSFR, metallicity and age knob.

    The mixture is ``y * young + (1 - y) * old`` with ``young`` a blend of the
    metal-rich and metal-poor star-forming templates (blended by ``log_z``),
    ``old`` a blend of the old template (fraction ``old_fraction``) and the
    intermediate-age ones; ``y`` is solved in closed form so that the mass formed
    in the last 300 Myr over 300 Myr, divided by the surviving mass, is ``ssfr``.

    Parameters
    ----------
    ssfr : array_like
        Specific SFR (1/yr) per surviving stellar mass.
    log_z : array_like
        Target log10(Z/Zsun), sets the metal-rich/metal-poor blends.
    old_fraction : array_like
        Fraction (0-1) of the old template in the old block.

    Returns
    -------
    mix : `numpy.ndarray`
        Shape ``(n, n_templates)``, rows summing to 1.
    """
    b = spectra.load_basis()
    lz = b.log_z
    ssfr = np.atleast_1d(np.asarray(ssfr, float))
    log_z = np.broadcast_to(np.asarray(log_z, float), ssfr.shape)
    o = np.clip(np.broadcast_to(np.asarray(old_fraction, float), ssfr.shape), 0, 1)
    eye = np.eye(b.n_templates)
    p = np.clip((log_z - lz[4]) / (lz[1] - lz[4]) - 0.5, 0, 1)[:, None]
    r = np.clip(0.05 + 0.5 * log_z, 0, 0.3)[:, None]
    young = p * eye[1] + (1 - p) * eye[4]
    old = o[:, None] * ((1 - r) * eye[3] + r * eye[0]) + (1 - o[:, None]) * eye[2]
    c_y, c_o = young @ b.m300, old @ b.m300
    m_y, m_o = young @ b.mremain, old @ b.mremain
    s3 = ssfr * _T_YOUNG
    den = c_y - c_o - s3 * (m_y - m_o)
    y = np.clip(np.divide(s3 * m_o - c_o, den, out=np.zeros_like(den), where=den > 0), 0, 1)
    return y[:, None] * young + (1 - y[:, None]) * old


def _old_fraction_for_age(ssfr, log_z, age_gyr):
    """Old fraction giving a target formed-mass-weighted age (two fixed-point passes)."""
    b = spectra.load_basis()
    o = np.full(np.shape(ssfr), 0.8)
    for _ in range(3):
        a1 = compose(ssfr, log_z, np.ones_like(o)) @ b.age_mw
        a0 = compose(ssfr, log_z, np.zeros_like(o)) @ b.age_mw
        o = np.clip(np.divide(age_gyr - a0, a1 - a0, out=np.ones_like(a0),
                              where=np.abs(a1 - a0) > 1e-6), 0, 1)
    return o


def _stellar_mzr(logm):
    return -0.65 + 0.75 / (1 + np.exp(-(logm - 9.8) / 0.4))


def _gas_mzr(logm):
    return 8.68 - 0.4 * np.exp(-(logm - 8.5) / 0.8)


def _finish(params, shape, pixel_scale, kpc_pix, mass, sfr, log_z, oh, old, r_re, q_disc):
    """From per-pixel mass, SFR, metallicities and age knob to weights, dust, lines, truth."""
    b = spectra.load_basis()
    area = kpc_pix**2
    mass = np.clip(mass, 1e-12, None)
    ssfr = sfr / mass
    mix = compose(ssfr, log_z, old)
    formed = mass / (mix @ b.mremain)
    weights = formed[:, None] * mix
    surv = weights @ b.mremain
    sfr_true = weights @ b.m300 / _T_YOUNG
    sig_sfr = sfr_true / area
    sig_gas = (np.clip(sig_sfr, 0, None) / 2.5e-4) ** (1 / 1.4)  # Msun/pc^2
    av_gas = np.clip(sig_gas / 10.0 * 10 ** (oh - _LOG_OH_SUN) * min(1 / q_disc, 3.0) ** 0.5,
                     0, 3.0)
    av_star = 0.44 * av_gas
    wl = np.array(list(spectra.LINES.values()))
    k_lines = spectra.calzetti_k(wl) / 4.05
    lha = sfr_true / 10**spectra.KENNICUTT_HA / (4 * np.pi * spectra._PC10_CM**2)
    lines10 = (lha[:, None] * spectra.line_ratios(oh)
               * 10 ** (-0.4 * av_gas[:, None] * k_lines[None, :]))
    win = (b.wave > 6540) & (b.wave < 6590)
    f_ha = b.flux[:, win].mean(axis=1)
    cont_ha = (weights @ f_ha) * 10 ** (-0.4 * av_star * spectra.calzetti_k(6563.0) / 4.05)
    i_ha = list(spectra.LINES).index("Halpha")
    ew = -lines10[:, i_ha] / np.clip(cont_ha, 1e-300, None)
    mets = weights @ (b.mremain * b.metallicity) / surv
    light = weights * b.f5635[None, :]
    age_lw = light @ b.age_mw / light.sum(axis=1)
    age_mw = weights @ b.age_mw / weights.sum(axis=1)
    truth = {
        "stellar_mass": surv / area, "sfr": sig_sfr, "age_lw": age_lw, "age_mw": age_mw,
        "metallicity": np.log10(mets / spectra.Z_SUN), "gas_mass": sig_gas * 1e6,
        "gas_metallicity": oh, "ew_ha": ew, "av": av_gas, "av_stellar": av_star,
    }
    truth = {k: v.reshape(shape) for k, v in truth.items()}
    state = GalaxyState(params=params, shape=tuple(shape), pixel_scale=float(pixel_scale),
                        kpc_per_pixel=float(kpc_pix), weights=weights, av_stellar=av_star,
                        av_gas=av_gas, lines10=lines10, truth=truth)
    state.summary = _summarise(state, r_re.ravel(), light.sum(axis=1), cont_ha)
    return state


def _summarise(state, r_re, light, cont_ha):
    """Integrated and aperture values in eCALIFA catalogue style."""
    p, t = state.params, state.truth
    area = state.kpc_per_pixel**2
    mass = t["stellar_mass"].ravel() * area
    sfr = t["sfr"].ravel() * area
    ny, nx = state.shape
    yy, xx = np.indices(state.shape)
    rad = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2).ravel() * state.pixel_scale
    cen = rad <= max(1.25, 0.75 * state.pixel_scale)
    names = list(spectra.LINES)
    ha = state.lines10[:, names.index("Halpha")]
    nii = state.lines10[:, names.index("NII6584")]
    ring = np.abs(r_re - 1) < 0.15
    if not ring.any():
        ring = np.abs(r_re - 1) <= np.abs(r_re - 1).min() + 1e-9
    lw = light[ring]
    age_lw = np.sum(lw * t["age_lw"].ravel()[ring]) / lw.sum()
    mw = mass[ring]
    age_mw = np.sum(mw * t["age_mw"].ravel()[ring]) / mw.sum()
    zh_lw = np.sum(lw * t["metallicity"].ravel()[ring]) / lw.sum()
    log_mass = float(np.log10(mass.sum()))
    log_sfr = float(np.log10(max(sfr.sum(), 1e-30)))
    n2 = float(np.log10(nii[cen].sum() / max(ha[cen].sum(), 1e-300)))
    q_obs = p["q_bulge"] if p["bt"] >= 0.5 else p["q_disc"]
    dl = float(spectra.luminosity_distance(p["z"]))
    return {
        "log_Mass": log_mass, "log_Mass_total": p["log_mass_total"],
        "log_SFR_Ha": log_sfr, "EW_Ha_cen": float(-ha[cen].sum() / cont_ha[cen].sum()),
        "Age_LW_Re_fit": float(np.log10(age_lw * 1e9)),
        "Age_MW_Re_fit": float(np.log10(age_mw * 1e9)), "ZH_LW_Re_fit": float(zh_lw),
        "log_NII_Ha_cen": n2, "OH_N2_cen": float(8.90 + 0.57 * np.clip(n2, -2.5, -0.2)),
        "Sigma_Mass_cen": float(np.log10(np.mean(t["stellar_mass"].ravel()[cen]) / 1e6)),
        "Av_gas_Re": float(np.mean(t["av"].ravel()[ring])),
        "sfms_class": str(sfms_class(log_mass, log_sfr)), "DL": dl,
        "ellip": float(1 - q_obs),
    }


def build_state(params, shape, pixel_scale):
    """Lay a galaxy drawn by the population model on a pixel grid.

    Parameters
    ----------
    params : dict
        From `~astro_cl.surveys.mock.population.draw_galaxy`.
    shape : tuple of int
        ``(ny, nx)``.
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    state : `GalaxyState`
    """
    ny, nx = shape
    kpc_pix = float(spectra.kpc_per_arcsec(params["z"])) * pixel_scale
    yy, xx = np.indices(shape, dtype=float)
    yy -= (ny - 1) / 2
    xx -= (nx - 1) / 2
    pa = np.radians(params["pa"])
    re_d = params["re_disc_kpc"] / kpc_pix
    re_b = params["re_bulge_kpc"] / kpc_pix
    disc, r_disc = _sersic_pixels(xx, yy, 1.0, re_d, params["q_disc"], pa)
    bulge, _ = _sersic_pixels(xx, yy, params["n_bulge"], re_b, params["q_bulge"], pa)
    bt = params["bt"]
    unit_mass = (bt * bulge + (1 - bt) * disc).ravel()
    f_fov = unit_mass.sum()
    m_tot = 10 ** params["log_mass_total"]
    if params.get("match_fov"):
        m_tot = m_tot / f_fov
        params = {**params, "log_mass_total": float(np.log10(m_tot))}
    mass = m_tot * unit_mass
    r_re = r_disc.ravel() / (params["re_kpc"] / kpc_pix)
    grad = 10 ** (0.15 * (np.minimum(r_re, 3.0) - 1))
    sfr_shape = m_tot * ((1 - bt) * disc.ravel() * grad + bt * bulge.ravel() * 0.1)
    target = 10 ** params["log_sfr_total"]
    s_grid = sfr_shape.sum()
    scale = target / s_grid if params.get("match_fov") else target * f_fov / s_grid
    sfr = sfr_shape * scale
    logm = params["log_mass_total"]
    log_z = _stellar_mzr(logm) + params["dlogz_star"] - 0.1 * (np.minimum(r_re, 3) - 1)
    oh = np.clip(_gas_mzr(logm) + params["doh"] - 0.1 * (np.minimum(r_re, 3) - 1), 7.7, 9.1)
    ssfr = sfr / np.clip(mass, 1e-30, None)
    old = np.clip(1 - 2.0 * ssfr * 1e9 - params["gv_recency"], 0.05, 1.0)
    return _finish(params, shape, pixel_scale, kpc_pix, mass, sfr, log_z, oh, old,
                   r_re.reshape(shape), params["q_disc"])


def _map_values(maps, name, unit, shape):
    nd = maps.get(name)
    if nd is None:
        return None
    data = np.asarray(nd.data, float)
    if data.shape != shape:
        msg = f"maps[{name!r}]: shape {data.shape} differs from stellar_mass {shape}"
        raise ValidationError(msg)
    if nd.unit is None:
        msg = f"maps[{name!r}]: no unit; expected units convertible to {unit}"
        raise ValidationError(msg)
    try:
        return (data * nd.unit).to_value(unit)
    except u.UnitConversionError:
        msg = f"maps[{name!r}]: unit {nd.unit} is not convertible to {unit}"
        raise ValidationError(msg) from None


def state_from_maps(maps, *, z, pixel_scale, name="painted", q_disc=1.0):
    """Build a galaxy state from external truth maps (e.g. a hydrodynamical simulation).

    Parameters
    ----------
    maps : mapping of str to `~astropy.nddata.NDData`
        ``"stellar_mass"`` (surface density, required); optional ``"sfr"``
        (surface density), ``"metallicity"`` (log Z/Zsun), ``"age_mw"`` (Gyr),
        ``"gas_metallicity"`` (12+log O/H). Missing maps follow the model's
        relations for the galaxy's mass.
    z : float
        Redshift at which to place the galaxy.
    pixel_scale : float
        Arcsec per pixel of the maps (the renderer's pixel scale).
    name : str, optional
    q_disc : float, optional
        Disc axis ratio (sets the dust path length).

    Returns
    -------
    state : `GalaxyState`
        Its ``truth`` holds what was painted: ages outside the basis's range
        (0.15-7.35 Gyr mass-weighted) and metallicities outside it are clipped.
    """
    if "stellar_mass" not in maps:
        msg = f"maps: 'stellar_mass' is required to paint a galaxy; got {sorted(maps)}"
        raise ValidationError(msg)
    shape = np.shape(maps["stellar_mass"].data)
    kpc_pix = float(spectra.kpc_per_arcsec(z)) * pixel_scale
    area = kpc_pix**2
    sig = _map_values(maps, "stellar_mass", MAP_UNITS["stellar_mass"], shape).ravel()
    mass = np.clip(np.nan_to_num(sig, nan=0.0), 0, None) * area
    logm = float(np.log10(max(mass.sum(), 1.0)))
    sfr_map = _map_values(maps, "sfr", MAP_UNITS["sfr"], shape)
    sfr = (np.clip(np.nan_to_num(sfr_map.ravel()), 0, None) * area if sfr_map is not None
           else mass * 10 ** (spectra_sfms(logm) - logm))
    met = _map_values(maps, "metallicity", u.dex, shape)
    log_z = met.ravel() if met is not None else np.full(mass.shape, _stellar_mzr(logm))
    ohm = _map_values(maps, "gas_metallicity", u.dex, shape)
    oh = ohm.ravel() if ohm is not None else _gas_mzr(logm) + (log_z - _stellar_mzr(logm))
    mass = np.clip(mass, 1e-6 * max(mass.max(), 1e-30), None)
    ssfr = sfr / mass
    age = _map_values(maps, "age_mw", u.Gyr, shape)
    old = (_old_fraction_for_age(ssfr, log_z, age.ravel()) if age is not None
           else np.clip(1 - 2.0 * ssfr * 1e9, 0.05, 1.0))
    yy, xx = np.indices(shape, dtype=float)
    w = mass / mass.sum()
    cy, cx = (w * yy.ravel()).sum(), (w * xx.ravel()).sum()
    rad = np.hypot(yy.ravel() - cy, xx.ravel() - cx)
    order = np.argsort(rad)
    re_pix = float(rad[order][np.searchsorted(np.cumsum(w[order]), 0.5)])
    params = {"index": 0, "name": name, "z": float(z), "log_mass_total": logm,
              "log_sfr_total": float(np.log10(max(sfr.sum(), 1e-30))),
              "re_kpc": re_pix * kpc_pix, "bt": 0.0, "q_bulge": q_disc, "q_disc": q_disc,
              "type": "painted", "environment": "unknown", "pa": 0.0, "ra": 0.0, "dec": 0.0,
              "n_bulge": 1.0, "re_disc_kpc": re_pix * kpc_pix, "re_bulge_kpc": 0.0,
              "cos_i": q_disc, "sfms_state": "", "gv_recency": 0.0, "dlogz_star": 0.0,
              "doh": 0.0, "match_fov": True}
    return _finish(params, shape, pixel_scale, kpc_pix, mass, sfr, log_z,
                   np.clip(oh, 7.7, 9.1), old, (rad / max(re_pix, 1e-6)).reshape(shape), q_disc)


def spectra_sfms(logm):
    """Main-sequence log SFR used when a painted galaxy has no SFR map.

    Parameters
    ----------
    logm : float

    Returns
    -------
    log_sfr : float
    """
    from astro_cl.surveys.mock.population import sfms

    return float(sfms(logm))
