"""Resolved structure: bulge, bar, disc with arms, per-pixel star-formation histories and dust.

A galaxy on a pixel grid becomes a `GalaxyState`: for every pixel the mass
formed in each template of the spectral basis (``weights``), the stellar and
gas V-band attenuation and the attenuated emission-line fluxes. The truth maps
and the catalogue values are computed *from these arrays*, which are also what
the renderers turn into pixels, so the truth is what produced the data.

Model (per pixel, vectorised):

* stellar mass surface density: Sersic bulge (index n, axis ratio q_b) +
  exponential disc (q_d from the inclination) + optional bar (an elongated
  Gaussian in the disc plane), normalised analytically and integrated over
  3x3 sub-pixels; spiral arms modulate the disc mass by 5-20 per cent;
* star-formation rate: disc sSFR rising outwards by 0.15 dex per half-mass
  radius (inside-out growth; Perez et al. 2013, Gonzalez Delgado et al. 2016),
  concentrated in the spiral arms and clumps; bulge and bar sSFR 1 dex below
  the disc's; scaled to the galaxy's SFR;
* star-formation history of each component in each pixel, binned on the ages
  of the SSP grid (`~astro_cl.surveys.mock.ssp.SFH_EDGES`): a delayed-tau
  history ``(t0 - t) exp(-(t0 - t)/tau)`` from the formation lookback time
  ``t0``, whose tau (blue cloud; with a recent burst beyond the largest tau)
  or post-quenching e-folding time (green valley, red sequence: an exponential
  decline after the quenching lookback time) is solved per pixel so that the
  mass formed in the last 56 Myr matches the pixel's sSFR;
* stellar metallicity: the galaxy's mass-weighted [Z/H] (Gallazzi et al.
  2005) with a radial gradient and 0.3 dex of enrichment over each history;
  each age bin's Z is split linearly between the two grid metallicities
  around it;
* gas metallicity 12 + log(O/H) from the mass (N2 scale) with a -0.1 dex/Re
  gradient (Sanchez et al. 2014);
* gas surface density from the inverted Kennicutt (1998) law
  Sigma_SFR = 2.5e-4 Sigma_gas^1.4 (Msun/yr/kpc^2, Msun/pc^2);
* gas attenuation: the column A = Sigma_gas / (20 Msun/pc^2) x (O/H)/(O/H)sun x
  (1/q_d)^0.5 (Milky-Way A_V/N_H, Bohlin et al. 1978, helium included),
  saturating as A_V = 3 (1 - exp(-A/3)) mag; the normalisation puts the median
  A_V(gas) at 1 Re of blue-cloud galaxies near eCALIFA's (calibrated); stellar
  A_V = 0.44 A_V(gas) (Calzetti et al. 2000);
* emission lines of H II regions from the star-formation rate (see
  `~astro_cl.surveys.mock.spectra`) plus diffuse ionised gas of evolved stars
  (HOLMES), EW(H-alpha) 0.5-1.5 A of the old (> 1 Gyr) stellar continuum
  with LIER-like ratios (Cid Fernandes et al. 2011; Belfiore et al. 2016).

Truth maps: ``stellar_mass`` (surviving stars and remnants), ``sfr`` (mass
formed in the last 56 Myr / 56 Myr), ``age_mw`` (weighted by the present
stellar mass), ``age_lw`` (weighted by the intrinsic 5635 A flux),
``metallicity`` = log10 of the mass-weighted Z over ``Z_SUN`` = 0.02,
``gas_mass``, ``gas_metallicity``, ``ew_ha``, ``av``, ``av_stellar``.
"""

import functools
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np

from astro_cl.exceptions import ValidationError
from astro_cl.surveys.mock import spectra, ssp
from astro_cl.surveys.mock.population import (
    T_UNIVERSE,
    sersic_b,
    sfms,
    sfms_class,
    stellar_mzr,
)

__all__ = ["MAP_UNITS", "Z_SUN", "GalaxyState", "build_state", "history_table",
           "state_from_maps"]

#: Units of the truth maps.
MAP_UNITS = {
    "stellar_mass": u.Msun / u.kpc**2, "sfr": u.Msun / u.yr / u.kpc**2, "age_lw": u.Gyr,
    "age_mw": u.Gyr, "metallicity": u.dex, "gas_mass": u.Msun / u.kpc**2,
    "gas_metallicity": u.dex, "ew_ha": u.AA, "av": u.mag, "av_stellar": u.mag,
}
#: Solar metallicity of the ``metallicity`` truth maps (mass fraction).
Z_SUN = ssp.Z_SUN
_LOG_OH_SUN = 8.69
_SUB = np.array([-1 / 3, 0.0, 1 / 3])
_N_AGE, _N_ZH = ssp.SFH_AGES.size, ssp.SFH_ZH.size
#: Surviving mass per solar mass formed in each age bin.
_R_SURV = ssp.surviving_fraction(ssp.SFH_AGES)
_Z_GRID = 10**ssp.SFH_ZH  # Z / Zsun of the grid
_BURST = 0.1  # Gyr: duration of the recent bursts that lift the sSFR above a delayed-tau's


def _dig_ratios(log_n2=0.1, log_o3=0.1):
    """Line luminosities relative to H-alpha of gas ionised by evolved stars (LIER-like)."""
    n2, o3 = 10**log_n2, 10**log_o3
    ratios = {"OII3727": 1.2, "Hbeta": 1 / 2.86, "OIII4959": o3 / 2.86 / 2.98,
              "OIII5007": o3 / 2.86, "NII6548": n2 / 3.05, "Halpha": 1.0, "NII6584": n2,
              "SII6717": 0.6 * 1.4 / 2.4, "SII6731": 0.6 / 2.4}
    return np.array([ratios[k] for k in spectra.LINES])


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
    lines10_dig : `numpy.ndarray` or None
        The part of ``lines10`` from diffuse gas ionised by evolved stars.
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
    lines10_dig: np.ndarray | None = None

    @property
    def z(self):
        """float: redshift."""
        return float(self.params["z"])


# -- star-formation histories --------------------------------------------------------
@functools.cache
def _time_grid():
    """Lookback times (Gyr) with 40 steps per age bin, and the indices of the bin edges."""
    t = np.unique(np.concatenate([np.linspace(lo, hi, 41) for lo, hi in
                                  zip(ssp.SFH_EDGES[:-1], ssp.SFH_EDGES[1:], strict=True)]))
    idx = np.searchsorted(t, ssp.SFH_EDGES)
    t.flags.writeable = idx.flags.writeable = False
    return t, idx


def _bin_masses(psi, t, idx):
    """Mass formed in each age bin by star-formation histories sampled on ``t``."""
    cum = np.concatenate([np.zeros((*psi.shape[:-1], 1)),
                          np.cumsum(0.5 * (psi[..., 1:] + psi[..., :-1]) * np.diff(t), axis=-1)],
                         axis=-1)
    return np.diff(cum[..., idx], axis=-1)


def _burst_bins():
    """Mass per bin of a constant star-formation rate over the last `_BURST` Gyr (unit total)."""
    lo, hi = ssp.SFH_EDGES[:-1], ssp.SFH_EDGES[1:]
    return np.clip(np.minimum(hi, _BURST) - lo, 0, None) / _BURST


def _normalise(bins):
    """Scale histories to one solar mass surviving; return them and their sSFR (1/yr)."""
    bins = bins / np.clip(bins @ _R_SURV, 1e-300, None)[..., None]
    return bins, bins[..., :3].sum(axis=-1) / ssp.SFR_TIMESCALE


def history_table(t_form, tau, t_quench=0.0, kind="active"):
    """Return a one-parameter family of binned star-formation histories, ordered by sSFR.

    Parameters
    ----------
    t_form : float
        Lookback time (Gyr) at which star formation starts.
    tau : float
        e-folding time (Gyr) of the delayed-tau history (``"quenched"`` only; the
        ``"active"`` family varies it).
    t_quench : float, optional
        Lookback time (Gyr) of the quenching (``"quenched"`` only).
    kind : {"active", "quenched"}
        ``"active"``: delayed-tau with tau from 0.05 to 100 Gyr, then recent
        100 Myr bursts of up to 70 per cent of the mass. ``"quenched"``:
        delayed-tau whose rate, from ``t_quench`` on, declines from its value
        then as ``exp(-(t_quench - t)/tau_q)``, with tau_q from 5 Myr to 30 Gyr,
        then recent bursts (rejuvenation) on the slowest decline.

    Returns
    -------
    ssfr : `numpy.ndarray`
        Strictly increasing sSFR (1/yr: mass formed in the last 56 Myr per
        year and per solar mass surviving).
    bins : `numpy.ndarray`
        ``(len(ssfr), n_age)`` mass formed per age bin per solar mass surviving.
    """
    t, idx = _time_grid()
    x = np.clip(float(t_form) - t, 0, None)
    if kind == "active":
        taus = np.geomspace(0.05, 100.0, 56)
        psi = x[None, :] / taus[:, None] * np.exp(-x[None, :] / taus[:, None])
        base, _ = _normalise(_bin_masses(psi, t, idx))
        fb = np.geomspace(1e-3, 0.7, 28)
        bins = np.concatenate([base, base[-1][None, :] + fb[:, None] * _burst_bins()[None, :]])
    elif kind == "quenched":
        tq = np.geomspace(0.005, 30.0, 56)
        # the rate freezes at its value at quenching, then declines
        after = t < float(t_quench)
        xq = max(float(t_form) - float(t_quench), 0.0)
        delayed = np.where(after, xq / tau * np.exp(-xq / tau), x / tau * np.exp(-x / tau))
        decline = np.exp(-np.clip(float(t_quench) - t, 0, None)[None, :] / tq[:, None])
        base, _ = _normalise(_bin_masses(delayed[None, :] * decline, t, idx))
        # rejuvenation bursts reach pixels whose sSFR exceeds the frozen rate's
        fb = np.geomspace(1e-4, 0.7, 32)
        bins = np.concatenate([base, base[-1][None, :] + fb[:, None] * _burst_bins()[None, :]])
    else:
        msg = f"kind: expected 'active' or 'quenched', got {kind!r}"
        raise ValueError(msg)
    bins, ssfr = _normalise(bins)
    keep = np.concatenate([[True], ssfr[1:] > np.maximum.accumulate(ssfr)[:-1]])
    return ssfr[keep], bins[keep]


def _lookup(table, values):
    """Interpolate a table's histories linearly in its first column at ``values``."""
    x, rows = table
    i = np.clip(np.searchsorted(x, values) - 1, 0, x.size - 2)
    w = np.clip((values - x[i]) / (x[i + 1] - x[i]), 0, 1)[:, None]
    return rows[i] * (1 - w) + rows[i + 1] * w


def _cells(components, enrich):
    """Masses formed per (age, [Z/H]) cell, ``(n, n_age * n_zh)``, summed over components.

    Each component is ``(mass, bins, zh, t_form)``: surviving mass per pixel,
    histories per unit surviving mass ``(n, n_age)``, target mass-weighted
    [Z/H] and formation lookback time. Each age bin's [Z/H] is
    ``zh - enrich * age / t_form`` (older stars poorer), shifted so that the
    surviving-mass-weighted mean is the target; its Z is split linearly (in Z,
    so that the mixture's mean Z is exact) between the two grid values around it.
    """
    n = components[0][0].size
    base = (np.arange(n)[:, None] * (_N_AGE * _N_ZH) + np.arange(_N_AGE)[None, :] * _N_ZH)
    index, weight = [], []
    for mass, bins, zh_now, t_form in components:
        frac = np.clip(ssp.SFH_AGES / max(t_form, 1e-3), 0, 1)
        m = bins * _R_SURV
        mean_frac = (m @ frac) / np.clip(m.sum(axis=1), 1e-300, None)
        zh = zh_now[:, None] + enrich * (mean_frac[:, None] - frac[None, :])
        z = 10 ** np.clip(zh, ssp.SFH_ZH[0], ssp.SFH_ZH[-1])
        j = np.clip(np.searchsorted(_Z_GRID, z) - 1, 0, _N_ZH - 2)
        w = (z - _Z_GRID[j]) / (_Z_GRID[j + 1] - _Z_GRID[j])
        formed = bins * mass[:, None]
        index += [(base + j).ravel(), (base + j + 1).ravel()]
        weight += [(formed * (1 - w)).ravel(), (formed * w).ravel()]
    return np.bincount(np.concatenate(index), np.concatenate(weight),
                       minlength=n * _N_AGE * _N_ZH).reshape(n, -1)


# -- geometry ----------------------------------------------------------------------------
def _sersic_eval(dx, dy, n, re, q, c, s):
    major = -dx * s + dy * c
    minor = dx * c + dy * s
    minor /= q
    r2 = major * major
    r2 += minor * minor
    r2 /= re * re
    # (r/re)^(1/n) from r^2 without a square root unless n = 1 (the disc)
    x = np.sqrt(r2, out=r2) if n == 1 else np.power(r2, 0.5 / n, out=r2)
    x -= 1
    x *= -sersic_b(n)
    return np.exp(x, out=x)


def _sersic_pixels(xx, yy, n, re, q, pa_rad):
    """Sersic profile of unit total mass integrated over pixels; radii in pixels.

    Every pixel is integrated on 3x3 sub-samples; pixels near the centre, where
    a compact or thin component varies within a pixel, on 15x15 sub-samples.
    """
    from scipy.special import gamma

    c, s = np.cos(pa_rad), np.sin(pa_rad)
    b = sersic_b(n)
    norm = 2 * np.pi * n * q * re**2 * np.exp(b) * b ** (-2 * n) * gamma(2 * n)
    sx, sy = np.meshgrid(_SUB, _SUB, indexing="ij")
    prof = _sersic_eval(xx[..., None] + sx.ravel(), yy[..., None] + sy.ravel(),
                        n, re, q, c, s).mean(axis=-1)
    half = int(min(np.ceil(2 * re) + 2, 8))  # the steep core; 3x3 suffices further out
    box = (np.abs(xx) <= half) & (np.abs(yy) <= half)
    if re * q < 4 and box.any():
        fine = (np.arange(15) - 7) / 15
        prof[box] = _sersic_eval(xx[box][:, None, None] + fine[None, :, None],
                                 yy[box][:, None, None] + fine[None, None, :],
                                 n, re, q, c, s).mean(axis=(-2, -1))
    r_ell = np.sqrt((-xx * s + yy * c) ** 2 + ((xx * c + yy * s) / q) ** 2)
    return prof / norm, r_ell


def _disc_plane(xx, yy, q, pa_rad):
    """Disc-plane coordinates (pixels) of sky pixels: major-axis and de-projected minor-axis."""
    c, s = np.cos(pa_rad), np.sin(pa_rad)
    return -xx * s + yy * c, (xx * c + yy * s) / q


def _bar_pixels(xx, yy, params, re_pix, q, pa_rad):
    """Return a bar of unit mass: an elongated Gaussian in the disc plane, on 3x3 sub-pixels."""
    sig_a = max(0.5 * params["bar_len"] * re_pix, 0.3)
    sig_b = max(sig_a * params["bar_q"], 0.3)
    phi = np.radians(params["bar_angle"])
    u_, v_ = _disc_plane(xx[..., None, None] + _SUB[None, None, :, None],
                         yy[..., None, None] + _SUB[None, None, None, :], q, pa_rad)
    a = u_ * np.cos(phi) + v_ * np.sin(phi)
    b = -u_ * np.sin(phi) + v_ * np.cos(phi)
    prof = np.exp(-0.5 * ((a / sig_a) ** 2 + (b / sig_b) ** 2)).mean(axis=(-2, -1))
    return prof / (2 * np.pi * sig_a * sig_b * q)


def _arm_pattern(r, theta, params, re_pix):
    """Return logarithmic spiral arms minus one (mean zero; von Mises across the arms).

    They fade inside half a disc radius (the bulge and bar region); None without arms.
    """
    m = int(params.get("arms", 0))
    if m == 0:
        return None
    from scipy.special import i0e

    pitch = np.radians(params["arm_pitch"])
    phase = m * (theta - np.log(np.clip(r, 1e-3, None) / re_pix) / np.tan(pitch))
    kappa = 2.0
    arms = np.exp(kappa * (np.cos(phase + params["arm_phase"]) - 1)) / i0e(kappa)
    return (1 - np.exp(-((r / (0.5 * re_pix)) ** 2))) * (arms - 1)


def _clump_modulation(u_, v_, params, kpc_pix):
    mod = np.ones_like(u_)
    for x0, y0, sig, amp in params.get("clumps", []):
        x0, y0, sig = x0 / kpc_pix, y0 / kpc_pix, max(sig / kpc_pix, 0.5)
        mod += amp * np.exp(-0.5 * ((u_ - x0) ** 2 + (v_ - y0) ** 2) / sig**2)
    return mod


# -- from histories to weights, dust, lines and truth ----------------------------------------
def _finish(params, shape, pixel_scale, kpc_pix, cells, mass, oh, r_re, q_disc, ew_dig,
            sig_gas=None):
    """From per-pixel cells, mass and gas metallicity to template weights, dust, lines, truth.

    ``sig_gas`` (Msun/pc^2) replaces the gas inferred from the star formation when given.
    """
    b = spectra.load_basis()
    k = _basis_constants(b)
    area = kpc_pix**2
    weights = b.to_templates(cells)
    if b.cell_map is None:
        surv = mass  # the histories were normalised with the grid's own surviving fractions
    else:
        # the fallback's templates lose mass differently: rescale to the exact mass
        surv = weights @ b.mremain
        weights *= np.divide(mass, surv, out=np.zeros_like(surv), where=surv > 0)[:, None]
        surv = weights @ b.mremain
    sfr_true = weights @ b.young / b.sfr_timescale
    sig_sfr = sfr_true / area
    if sig_gas is None:
        sig_gas = (np.clip(sig_sfr, 0, None) / 2.5e-4) ** (1 / 1.4)  # Msun/pc^2
    column = sig_gas / 20.0 * 10 ** (oh - _LOG_OH_SUN) * min(1 / q_disc, 3.0) ** 0.5
    av_gas = 3.0 * -np.expm1(-column / 3.0)  # saturates towards 3 mag in dense gas
    av_star = 0.44 * av_gas
    names = list(spectra.LINES)
    wl = np.array(list(spectra.LINES.values()))
    ln10 = np.log(10)
    att = np.exp(-0.4 * ln10 / 4.05 * av_gas[:, None] * spectra.calzetti_k(wl)[None, :])
    lha = sfr_true / 10**spectra.KENNICUTT_HA / (4 * np.pi * spectra._PC10_CM**2)
    dig_ha = ew_dig * (weights @ k["f_ha_old"])  # erg/s/cm^2 at 10 pc
    dig = _dig_ratios(params.get("dig_n2", 0.1), params.get("dig_o3", 0.1))
    lines_dig = dig_ha[:, None] * dig[None, :] * att
    lines10 = lha[:, None] * spectra.line_ratios(oh) * att + lines_dig
    cont_ha = (weights @ k["f_ha"]) * np.exp(-0.4 * ln10 / 4.05 * spectra.calzetti_k(6563.0)
                                             * av_star)
    i_ha = names.index("Halpha")
    ew = -lines10[:, i_ha] / np.clip(cont_ha, 1e-300, None)
    props = weights @ k["per_template"]  # Z-mass, light, light-age, mass-age
    mets = props[:, 0] / np.clip(surv, 1e-300, None)
    lsum = props[:, 1]
    age_lw = props[:, 2] / np.clip(lsum, 1e-300, None)
    age_mw = props[:, 3] / np.clip(surv, 1e-300, None)
    truth = {
        "stellar_mass": surv / area, "sfr": sig_sfr, "age_lw": age_lw, "age_mw": age_mw,
        "metallicity": np.log10(np.clip(mets, 1e-12, None) / Z_SUN), "gas_mass": sig_gas * 1e6,
        "gas_metallicity": oh, "ew_ha": ew, "av": av_gas, "av_stellar": av_star,
    }
    truth = {k: v.reshape(shape) for k, v in truth.items()}
    state = GalaxyState(params=params, shape=tuple(shape), pixel_scale=float(pixel_scale),
                        kpc_per_pixel=float(kpc_pix), weights=weights, av_stellar=av_star,
                        av_gas=av_gas, lines10=lines10, truth=truth, lines10_dig=lines_dig)
    state.summary = _summarise(state, r_re.ravel(), lsum, cont_ha)
    return state


@functools.lru_cache(maxsize=4)
def _basis_constants(basis):
    """Per-template quantities of a basis used for every galaxy (cached per basis)."""
    win = (basis.wave > 6540) & (basis.wave < 6590)
    f_ha = basis.flux[:, win].mean(axis=1)
    per = np.stack([basis.mremain * basis.metallicity, basis.f5635, basis.f5635 * basis.age,
                    basis.mremain * basis.age], axis=1)
    return {"f_ha": f_ha, "f_ha_old": f_ha * (basis.age >= 1.0), "per_template": per}


def _summarise(state, r_re, light, cont_ha):
    """Integrated and aperture values in eCALIFA catalogue style."""
    b = spectra.load_basis()
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
    total = state.weights.sum(axis=0) * b.mremain
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
        "Age_MW_int": float(total @ b.age / total.sum()),
        "ZH_MW_int": float(np.log10(total @ b.metallicity / total.sum() / Z_SUN)),
        "log_NII_Ha_cen": n2, "OH_N2_cen": float(8.90 + 0.57 * np.clip(n2, -2.5, -0.2)),
        "Sigma_Mass_cen": float(np.log10(np.mean(t["stellar_mass"].ravel()[cen]) / 1e6)),
        "Av_gas_Re": float(np.mean(t["av"].ravel()[ring])),
        "sfms_class": str(sfms_class(log_mass, log_sfr)), "DL": dl,
        # as the eCALIFA catalogue writes it: the eccentricity, not 1 - b/a
        "ellip": float(np.sqrt(max(1.0 - q_obs**2, 0.0))),
    }


def _gas_mzr(logm):
    return 8.68 - 0.4 * np.exp(-(logm - 8.5) / 0.8)


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
    q_disc = params["q_disc"]
    re_d = params["re_disc_kpc"] / kpc_pix
    re_b = params["re_bulge_kpc"] / kpc_pix
    disc, r_disc = _sersic_pixels(xx, yy, 1.0, re_d, q_disc, pa)
    bulge, _ = _sersic_pixels(xx, yy, params["n_bulge"], re_b, params["q_bulge"], pa)
    u_, v_ = _disc_plane(xx, yy, q_disc, pa)
    theta = np.arctan2(v_, u_)
    bt, fbar = params["bt"], params.get("bar_frac", 0.0)
    bar = _bar_pixels(xx, yy, params, re_d, q_disc, pa) if fbar > 0 else np.zeros(shape)
    arms = _arm_pattern(r_disc, theta, params, re_d)
    if arms is not None:
        disc = disc * (1 + params["arm_amp_mass"] * arms)
    m_disc = ((1 - bt) * (1 - fbar) * disc).ravel()
    m_bulge = (bt * bulge + (1 - bt) * fbar * bar).ravel()
    f_fov = m_disc.sum() + m_bulge.sum()
    m_tot = 10 ** params["log_mass_total"]
    if params.get("match_fov"):
        m_tot = m_tot / f_fov
        params = {**params, "log_mass_total": float(np.log10(m_tot))}
    m_disc, m_bulge = m_tot * m_disc, m_tot * m_bulge
    mass = m_disc + m_bulge
    r_re = r_disc.ravel() / (params["re_kpc"] / kpc_pix)
    rc = np.minimum(r_re, 3.0) - 1
    # star formation: inside-out disc, arms and clumps, quiescent bulge and bar
    sf_mod = _clump_modulation(u_, v_, params, kpc_pix)
    if arms is not None:
        sf_mod = sf_mod * (1 + params["arm_amp_sf"] * arms)
    sf_mod = sf_mod.ravel()
    sfr_disc = m_disc * 10 ** (0.15 * rc) * sf_mod
    sfr_bulge = m_bulge * 0.1
    target = 10 ** params["log_sfr_total"]
    s_grid = sfr_disc.sum() + sfr_bulge.sum()
    scale = target / s_grid if params.get("match_fov") else target * f_fov / s_grid
    ssfr_disc = scale * np.divide(sfr_disc, m_disc, out=np.zeros_like(m_disc), where=m_disc > 0)
    ssfr_bulge = scale * 0.1 * np.ones_like(m_bulge)
    kind = "active" if params["sfms_state"] == "BC" else "quenched"
    tab_d = history_table(params["t_form_disc"], params["tau_disc"], params["t_quench"], kind)
    tab_b = history_table(params["t_form"], params["tau_bulge"], params["t_quench"], kind)
    bins_d, bins_b = _lookup(tab_d, ssfr_disc), _lookup(tab_b, ssfr_bulge)
    zh = params["zh_star"] + params["zh_grad"] * rc
    cells = _cells([(m_disc, bins_d, zh, params["t_form_disc"]),
                    (m_bulge, bins_b, zh, params["t_form"])], params["zh_enrich"])
    logm = params["log_mass_total"]
    oh = np.clip(_gas_mzr(logm) + params["doh"] - 0.1 * rc, 7.7, 9.1)
    return _finish(params, shape, pixel_scale, kpc_pix, cells, mass, oh, r_re.reshape(shape),
                   q_disc, params.get("ew_dig", 1.0))


# -- painting external maps --------------------------------------------------------------
def _age_sequence():
    """Return histories ordered by mass-weighted age.

    Delayed-tau from the Big Bang with tau rising from 0.02 to 100 Gyr, then
    tau = 100 Gyr starting later and later (to 20 Myr ago).
    """
    t, idx = _time_grid()
    rows = []
    for tau in np.geomspace(0.02, 100.0, 60):
        x = np.clip(T_UNIVERSE - t, 0, None)
        rows.append(x / tau * np.exp(-x / tau))
    for t0 in np.geomspace(T_UNIVERSE, 0.02, 80)[1:]:
        x = np.clip(t0 - t, 0, None)
        rows.append(x / 100.0 * np.exp(-x / 100.0))
    bins, _ = _normalise(_bin_masses(np.asarray(rows), t, idx))
    age = (bins * _R_SURV) @ ssp.SFH_AGES  # per solar mass surviving
    order = np.argsort(age)
    age, bins = age[order], bins[order]
    keep = np.concatenate([[True], age[1:] > np.maximum.accumulate(age)[:-1]])
    return age[keep], bins[keep]


def _set_ssfr(bins, ssfr):
    """Give histories an sSFR by scaling their last Gyr (bins younger than 1 Gyr) as a whole.

    A pixel that forms fewer stars than its age-matched history had its recent
    star formation suppressed (quenching), one that forms more had it raised;
    where the history has no young stars at all, a constant rate over the last
    56 Myr is added instead.
    """
    recent = ssp.SFH_AGES < 1.0
    young = np.arange(_N_AGE) < 3
    s = np.clip(ssfr * ssp.SFR_TIMESCALE, 0, None)  # young mass per unit surviving mass
    y_form = bins[:, young].sum(axis=1)
    r_surv = bins[:, recent] @ _R_SURV[recent]
    o_surv = bins[:, ~recent] @ _R_SURV[~recent]
    den = y_form - s * r_surv
    scalable = den > 1e-6 * np.maximum(y_form, 1e-300)
    k = np.divide(s * o_surv, den, out=np.zeros_like(den), where=scalable)
    out = bins.copy()
    out[:, recent] *= k[:, None]
    # no young stars to scale: a constant rate over the last 56 Myr instead
    flat = np.zeros(_N_AGE)
    flat[young] = np.diff(ssp.SFH_EDGES[:4])
    flat /= flat.sum()
    rho = flat @ _R_SURV
    s_add = np.minimum(s, 0.95 / rho)
    add = s_add * (bins @ _R_SURV) / (1 - s_add * rho)
    out[~scalable] = bins[~scalable] + add[~scalable, None] * flat[None, :]
    return _normalise(out)[0]


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


def _axis_ratio(mass):
    """Axis ratio b/a of a mass map from its second moments."""
    yy, xx = np.indices(mass.shape, dtype=float)
    w = mass / mass.sum()
    cy, cx = (w * yy).sum(), (w * xx).sum()
    cov = np.array([[(w * (xx - cx) ** 2).sum(), (w * (xx - cx) * (yy - cy)).sum()],
                    [(w * (xx - cx) * (yy - cy)).sum(), (w * (yy - cy) ** 2).sum()]])
    ev = np.linalg.eigvalsh(cov)
    return float(np.clip(np.sqrt(max(ev[0], 0) / max(ev[1], 1e-30)), 0.2, 1.0))


def state_from_maps(maps, *, z, pixel_scale, name="painted", q_disc=None,
                    solar_metallicity=Z_SUN, ew_dig=1.0):
    """Build a galaxy state from truth maps on the renderer's grid (e.g. a simulation's).

    Maps on a physical grid (kpc per pixel) are resampled onto the renderer's
    grid, conserving mass, by `~astro_cl.surveys.mock.paint.paint_galaxy`,
    which then calls this function.

    Parameters
    ----------
    maps : mapping of str to `~astropy.nddata.NDData`
        ``"stellar_mass"`` (surface density, required); optional ``"sfr"``
        (surface density), ``"metallicity"`` (log Z/Zsun with Zsun =
        ``solar_metallicity``), ``"age_mw"`` (mass-weighted age, Gyr),
        ``"gas_metallicity"`` (12 + log O/H), ``"gas_mass"`` (surface
        density; sets the dust instead of the gas inferred from the SFR).
    z : float
        Redshift at which to place the galaxy.
    pixel_scale : float
        Arcsec per pixel of the maps (the renderer's pixel scale).
    name : str, optional
    q_disc : float, optional
        Axis ratio of the disc (sets the dust path length); default the
        axis ratio of the stellar-mass map's second moments.
    solar_metallicity : float, optional
        The solar metallicity (mass fraction) of the ``metallicity`` map's
        scale (0.0127 for Illustris); the mocks' own scale is `Z_SUN` = 0.02.
    ew_dig : float, optional
        EW(H-alpha) (A) of the diffuse gas ionised by evolved stars.

    Returns
    -------
    state : `GalaxyState`
        Its ``truth`` holds what was painted: masses and (with an SFR map)
        SFRs exactly; ages and metallicities as the binned histories give
        them (ages within 3 Myr - 13.5 Gyr, [Z/H] within -1.35 ... +0.35).

    Warns
    -----
    astro_cl.exceptions.AstroCLWarning
        Without an SFR map: the star formation then follows from the age map
        (the recent bins of the history matching each pixel's age) or, with no
        age map either, from the star-forming main sequence.
    """
    import warnings

    from astro_cl.exceptions import AstroCLWarning

    if "stellar_mass" not in maps:
        msg = f"maps: 'stellar_mass' is required to paint a galaxy; got {sorted(maps)}"
        raise ValidationError(msg)
    if not 0 < float(solar_metallicity) < 0.1:
        msg = f"solar_metallicity: expected a mass fraction in (0, 0.1), got {solar_metallicity!r}"
        raise ValidationError(msg)
    shape = np.shape(maps["stellar_mass"].data)
    kpc_pix = float(spectra.kpc_per_arcsec(z)) * pixel_scale
    area = kpc_pix**2
    sig = _map_values(maps, "stellar_mass", MAP_UNITS["stellar_mass"], shape).ravel()
    mass = np.clip(np.nan_to_num(sig, nan=0.0), 0, None) * area
    if not mass.sum() > 0:
        msg = "maps['stellar_mass']: no positive mass to paint"
        raise ValidationError(msg)
    logm = float(np.log10(mass.sum()))
    floor = 1e-6 * mass.max()
    mass = np.clip(mass, floor, None)
    sfr_map = _map_values(maps, "sfr", MAP_UNITS["sfr"], shape)
    age = _map_values(maps, "age_mw", u.Gyr, shape)
    ssfr = (None if sfr_map is None
            else np.clip(np.nan_to_num(sfr_map.ravel()), 0, None) * area / mass)
    if age is not None:
        sequence = _age_sequence()
        target = np.clip(np.nan_to_num(age.ravel(), nan=5.0), sequence[0][0], sequence[0][-1])
        look = target.copy()
        for _ in range(4):  # setting the sSFR moves the age: correct the history looked up
            bins = _lookup(sequence, look)
            if ssfr is None:
                break
            bins = _set_ssfr(bins, ssfr)
            got = (bins * _R_SURV) @ ssp.SFH_AGES
            look = np.clip(look * target / got, sequence[0][0], sequence[0][-1])
        rule = "the last Gyr of the history that matches each pixel's mass-weighted age"
    else:
        ssfr_ms = 10 ** (sfms(logm) - logm)
        bins = _lookup(history_table(T_UNIVERSE, 1.0), np.full(mass.shape, ssfr_ms))
        rule = f"the star-forming main sequence (sSFR {ssfr_ms:.2e}/yr everywhere)"
        if ssfr is not None:
            bins = _set_ssfr(bins, ssfr)
    if ssfr is None:
        warnings.warn(f"painting {name!r} without an SFR map: its star formation follows from "
                      f"{rule}", AstroCLWarning, stacklevel=2)
    met = _map_values(maps, "metallicity", u.dex, shape)
    offset = np.log10(float(solar_metallicity) / Z_SUN)
    zh = (np.nan_to_num(met.ravel(), nan=float(stellar_mzr(logm))) + offset if met is not None
          else np.full(mass.shape, float(stellar_mzr(logm))))
    gas = _map_values(maps, "gas_mass", u.Msun / u.pc**2, shape)
    if gas is not None:
        gas = np.clip(np.nan_to_num(gas.ravel()), 0, None)
    ohm = _map_values(maps, "gas_metallicity", u.dex, shape)
    oh = ohm.ravel() if ohm is not None else _gas_mzr(logm) + (zh - float(stellar_mzr(logm)))
    cells = _cells([(mass, bins, zh, T_UNIVERSE)], 0.0)
    m2 = mass.reshape(shape)
    q = _axis_ratio(m2) if q_disc is None else float(q_disc)
    yy, xx = np.indices(shape, dtype=float)
    w = mass / mass.sum()
    cy, cx = (w * yy.ravel()).sum(), (w * xx.ravel()).sum()
    rad = np.hypot(yy.ravel() - cy, xx.ravel() - cx)
    order = np.argsort(rad)
    re_pix = float(rad[order][np.searchsorted(np.cumsum(w[order]), 0.5)])
    sfr_tot = float((cells @ np.repeat(ssp.SFH_AGES * 1e9 < ssp.SFR_TIMESCALE, _N_ZH)).sum()
                    / ssp.SFR_TIMESCALE)
    params = {"index": 0, "name": name, "z": float(z), "log_mass_total": logm,
              "log_sfr_total": float(np.log10(max(sfr_tot, 1e-30))),
              "re_kpc": re_pix * kpc_pix, "bt": 0.0, "q_bulge": q, "q_disc": q,
              "type": "painted", "environment": "unknown", "pa": 0.0, "ra": 0.0, "dec": 0.0,
              "n_bulge": 1.0, "re_disc_kpc": re_pix * kpc_pix, "re_bulge_kpc": 0.0,
              "cos_i": float(np.sqrt(np.clip((q**2 - 0.04) / 0.96, 0, 1))), "sfms_state": "",
              "doh": 0.0, "ew_dig": float(ew_dig), "match_fov": True,
              "solar_metallicity_input": float(solar_metallicity)}
    return _finish(params, shape, pixel_scale, kpc_pix, cells, mass, np.clip(oh, 7.7, 9.1),
                   (rad / max(re_pix, 1e-6)).reshape(shape), q, float(ew_dig), sig_gas=gas)
