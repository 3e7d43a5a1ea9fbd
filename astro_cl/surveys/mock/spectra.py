"""Spectral model of the mock galaxies: dust, emission lines, filters, cosmology.

The stellar continuum comes from the basis of `~astro_cl.surveys.mock.ssp`
(the MaStar SSP grid; `load_basis` here returns it). The emission lines
(`LINES`) have fluxes that follow from the local SFR and gas metallicity:

* H-alpha luminosity from the SFR (Kennicutt & Evans 2012, ARA&A 50, 531;
  Kroupa IMF): ``L(Ha) = SFR / 10**-41.27 erg/s``;
* H-beta = H-alpha / 2.86 (case B, 10^4 K);
* [NII]6584/H-alpha from 12+log(O/H) through the N2 calibration of Pettini &
  Pagel (2004, MNRAS 348, L59): ``12+log(O/H) = 8.90 + 0.57 N2``;
* [OIII]5007/H-beta through their O3N2 calibration:
  ``12+log(O/H) = 8.73 - 0.32 O3N2``;
* [OII]3727/H-alpha = 0.56 (ratio of the Kennicutt 1998 SFR calibrations);
* [SII]6717+6731/H-alpha = 0.30 with 6717/6731 = 1.4 (low density);
* [NII]6548 = [NII]6584 / 3.05 and [OIII]4959 = [OIII]5007 / 2.98.

Dust follows Calzetti et al. (2000, ApJ 533, 682), R_V = 4.05, with the
stellar continuum attenuated by 0.44 times the gas (line) attenuation.
Filters are the SDSS ugriz response curves shipped with kcorrect (1.3 airmass).
"""

import functools

import numpy as np
from scipy.special import erf

from astro_cl.surveys.mock.ssp import kcorrect_data_dir

__all__ = [
    "KENNICUTT_HA",
    "LINES",
    "Z_SUN",
    "attenuation",
    "attenuation_nodes",
    "band_grid",
    "band_weights",
    "calzetti_k",
    "cosmology_tables",
    "kpc_per_arcsec",
    "line_band_response",
    "line_profiles",
    "line_ratios",
    "load_basis",
    "load_filter",
    "luminosity_distance",
    "maggies_matrix",
    "observed_templates",
    "photometric_basis",
    "rest_frame_weights",
    "sdss_bands",
]

#: log10 of the H-alpha SFR calibration (Msun/yr per erg/s), Kennicutt & Evans (2012).
KENNICUTT_HA = -41.27
#: Solar metallicity (mass fraction) of the mocks' [Z/H] scale (Maraston 2005; BC03).
Z_SUN = 0.02
#: Emission lines: name -> rest air wavelength in Angstrom.
LINES = {
    "OII3727": 3727.42, "Hbeta": 4861.33, "OIII4959": 4958.91, "OIII5007": 5006.84,
    "NII6548": 6548.05, "Halpha": 6562.80, "NII6584": 6583.45, "SII6717": 6716.44,
    "SII6731": 6730.82,
}
_PC10_CM = 3.0856775814913673e19  # 10 pc in cm
_C_AA = 2.99792458e18  # speed of light in Angstrom/s
_MAGGY_FNU = 3631e-23  # erg/s/cm^2/Hz of zero AB magnitude


def load_basis():
    """Return the spectral basis of the mocks (see `astro_cl.surveys.mock.ssp.load_basis`).

    Returns
    -------
    basis : `~astro_cl.surveys.mock.ssp.SpectralBasis`
    """
    from astro_cl.surveys.mock import ssp

    return ssp.load_basis()


@functools.lru_cache(maxsize=8)
def load_filter(band):
    """Load an SDSS response curve shipped with kcorrect (photon response, 1.3 airmass).

    Parameters
    ----------
    band : {"u", "g", "r", "i", "z"}

    Returns
    -------
    wave : `numpy.ndarray`
        Wavelength in Angstrom.
    response : `numpy.ndarray`
        Response per photon.
    """
    if band not in "ugriz" or len(band) != 1:
        msg = f"band: expected one of u, g, r, i, z, got {band!r}"
        raise ValueError(msg)
    path = kcorrect_data_dir() / "responses" / f"sdss_{band}0.dat"
    rows = []
    for line in path.read_text().splitlines():
        parts = [p for p in line.strip().strip("|").split("|")]
        if line.startswith("#") or len(parts) < 4:
            continue
        try:
            rows.append((float(parts[0]), float(parts[3])))
        except ValueError:
            continue
    arr = np.asarray(rows)
    return arr[:, 0], np.clip(arr[:, 1], 0, None)


def sdss_bands():
    """Return the SDSS band names in wavelength order.

    Returns
    -------
    bands : tuple of str
    """
    return ("u", "g", "r", "i", "z")


def calzetti_k(wave):
    """Calzetti et al. (2000) attenuation curve k(lambda) = A(lambda)/E(B-V), R_V = 4.05.

    Parameters
    ----------
    wave : array_like
        Rest wavelength in Angstrom (extrapolated linearly outside 0.12-2.2 micron).

    Returns
    -------
    k : `numpy.ndarray`
    """
    x = 1e4 / np.asarray(wave, dtype=float)  # inverse micron
    lam = 1.0 / x
    blue = 2.659 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + 4.05
    red = 2.659 * (-1.857 + 1.040 * x) + 4.05
    return np.clip(np.where(lam < 0.63, blue, red), 0.0, None)


def line_ratios(oh):
    """Emission-line luminosities relative to H-alpha for a gas metallicity.

    Parameters
    ----------
    oh : array_like
        12 + log(O/H).

    Returns
    -------
    ratios : `numpy.ndarray`
        Shape ``oh.shape + (len(LINES),)``, in the order of `LINES`.
    """
    oh = np.asarray(oh, dtype=float)
    n2 = np.clip((oh - 8.90) / 0.57, -2.5, -0.2)  # Pettini & Pagel (2004)
    nii_ha = 10**n2
    o3n2 = (8.73 - oh) / 0.32
    oiii_hb = np.clip(10 ** (o3n2 + n2), 0.05, 10.0)
    hb = 1 / 2.86
    cols = {
        "OII3727": np.full_like(oh, 0.56), "Hbeta": np.full_like(oh, hb),
        "OIII4959": oiii_hb * hb / 2.98, "OIII5007": oiii_hb * hb,
        "NII6548": nii_ha / 3.05, "Halpha": np.ones_like(oh), "NII6584": nii_ha,
        "SII6717": np.full_like(oh, 0.30 * 1.4 / 2.4), "SII6731": np.full_like(oh, 0.30 / 2.4),
    }
    return np.stack([cols[k] for k in LINES], axis=-1)


@functools.lru_cache(maxsize=1)
def cosmology_tables():
    """Luminosity distance and angular scale on a redshift grid (flat LCDM, H0=70, Om0=0.3).

    Returns
    -------
    z : `numpy.ndarray`
    dl_mpc : `numpy.ndarray`
        Luminosity distance in Mpc.
    kpc_per_arcsec : `numpy.ndarray`
        Proper transverse scale.
    """
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    z = np.linspace(0.0005, 0.5, 4000)
    dl = cosmo.luminosity_distance(z).value
    da = dl / (1 + z) ** 2
    return z, dl, da * 1e3 * np.pi / 180 / 3600


def luminosity_distance(z):
    """Luminosity distance in Mpc (flat LCDM, H0=70, Om0=0.3).

    Parameters
    ----------
    z : array_like

    Returns
    -------
    dl : `numpy.ndarray`
    """
    zz, dl, _ = cosmology_tables()
    return np.interp(z, zz, dl)


def kpc_per_arcsec(z):
    """Proper kpc per arcsec at redshift z (flat LCDM, H0=70, Om0=0.3).

    Parameters
    ----------
    z : array_like

    Returns
    -------
    scale : `numpy.ndarray`
    """
    zz, _, scale = cosmology_tables()
    return np.interp(z, zz, scale)


def _dimming(z):
    """Factor from flux at 10 pc to observed flux (bolometric), i.e. (10 pc / D_L)^2."""
    return (_PC10_CM / (luminosity_distance(z) * 3.0856775814913673e24)) ** 2


def attenuation_nodes(av_max, step=0.1):
    """Return the grid of V-band attenuations on which the continuum is tabulated.

    Parameters
    ----------
    av_max : float
        Largest attenuation needed.
    step : float, optional

    Returns
    -------
    nodes : `numpy.ndarray`
    """
    return np.arange(0.0, max(av_max, 0.0) + step + 1e-9, step)


def observed_templates(z, wave_obs):
    """Return the basis templates redshifted and dimmed onto an observed wavelength grid.

    Parameters
    ----------
    z : float
        Redshift.
    wave_obs : `numpy.ndarray`
        Observed wavelengths (Angstrom).

    Returns
    -------
    flux : `numpy.ndarray`
        ``(n_templates, n_wave)`` observed flux density (erg/s/cm^2/A) per
        solar mass formed, without dust.
    """
    basis = load_basis()
    rest = np.asarray(wave_obs, float) / (1 + z)
    step = basis.wave[1] - basis.wave[0]
    if np.allclose(np.diff(basis.wave), step):
        # uniform grid: one gather for every template (np.interp per template is slower)
        pos = np.clip((rest - basis.wave[0]) / step, 0, basis.wave.size - 1 - 1e-9)
        i = pos.astype(int)
        w = pos - i
        flux = basis.flux[:, i] * (1 - w) + basis.flux[:, i + 1] * w
    else:
        flux = np.stack([np.interp(rest, basis.wave, f) for f in basis.flux])
    return flux * (_dimming(z) / (1 + z))


@functools.lru_cache(maxsize=1)
def photometric_basis(step=4.0):
    """Return the basis binned to ``step`` Angstrom (block means), for broad-band fluxes.

    Parameters
    ----------
    step : float, optional
        A multiple of the basis's own uniform step.

    Returns
    -------
    wave : `numpy.ndarray`
    flux : `numpy.ndarray`
        ``(n_templates, n_wave)``.
    """
    basis = load_basis()
    native = basis.wave[1] - basis.wave[0]
    k = max(round(step / native), 1)
    n = basis.wave.size // k * k
    wave = basis.wave[:n].reshape(-1, k).mean(axis=1)
    flux = basis.flux[:, :n].reshape(basis.n_templates, -1, k).mean(axis=2)
    wave.flags.writeable = flux.flags.writeable = False
    return wave, flux


def rest_frame_weights(z, wave_obs, weights, grid):
    """Move weights on an observed grid onto a uniform rest-frame grid.

    ``sum_i weights_i F(wave_obs_i / (1 + z))``, with ``F`` linearly
    interpolated on ``grid``, equals ``F[start:start + len(rest)] @ rest``:
    the interpolation, transposed.

    Parameters
    ----------
    z : float
    wave_obs : `numpy.ndarray`
        Observed wavelengths (Angstrom).
    weights : `numpy.ndarray`
        One weight per observed wavelength.
    grid : `numpy.ndarray`
        Uniform rest-frame wavelength grid.

    Returns
    -------
    start : int
        First grid pixel that the weights touch.
    rest : `numpy.ndarray`
        Weights on the grid pixels ``start, start + 1, ...``.
    """
    step = grid[1] - grid[0]
    pos = np.clip((np.asarray(wave_obs, float) / (1 + z) - grid[0]) / step,
                  0, grid.size - 1 - 1e-9)
    i = pos.astype(int)
    f = pos - i
    start = int(i.min())
    n = int(i.max()) - start + 2
    rest = (np.bincount(i - start, weights * (1 - f), minlength=n)
            + np.bincount(i + 1 - start, weights * f, minlength=n))
    return start, rest


def attenuation(z, wave_obs, nodes):
    """Transmission of the stellar continuum for each V-band attenuation node.

    Parameters
    ----------
    z : float
    wave_obs : `numpy.ndarray`
        Observed wavelengths (Angstrom).
    nodes : `numpy.ndarray`
        Stellar A_V (mag).

    Returns
    -------
    transmission : `numpy.ndarray`
        ``(n_nodes, n_wave)``, Calzetti et al. (2000) curve in the rest frame.
    """
    rest = np.asarray(wave_obs, float) / (1 + z)
    return np.exp(-0.4 * np.log(10) / 4.05 * np.outer(nodes, calzetti_k(rest)))


def line_profiles(z, wave_edges, fwhm):
    """Gaussian line profiles integrated over pixels (Angstrom^-1, unit area).

    Parameters
    ----------
    z : float
        Redshift.
    wave_edges : `numpy.ndarray`
        Pixel edges (Angstrom), ``n_wave + 1`` values.
    fwhm : float
        Observed line FWHM in Angstrom.

    Returns
    -------
    profiles : `numpy.ndarray`
        Shape ``(n_lines, n_wave)``: mean flux density per unit line flux.
    """
    centres = np.array(list(LINES.values())) * (1 + z)
    sigma = fwhm / 2.3548200450309493
    cdf = 0.5 * (1 + erf((wave_edges[None, :] - centres[:, None]) / (np.sqrt(2) * sigma)))
    return np.diff(cdf, axis=1) / np.diff(wave_edges)[None, :]


def maggies_matrix(spectra, wave, band):
    """Integrate spectra through an SDSS band into AB maggies.

    Parameters
    ----------
    spectra : `numpy.ndarray`
        Flux densities (erg/s/cm^2/A), shape ``(..., n_wave)``.
    wave : `numpy.ndarray`
        Wavelength grid (Angstrom), increasing.
    band : str

    Returns
    -------
    maggies : `numpy.ndarray`
        Shape ``spectra.shape[:-1]``.
    """
    return spectra @ band_weights(wave, band)


def band_weights(wave, band):
    """Weights that turn a spectrum into AB maggies in an SDSS band: ``maggies = f @ weights``.

    Parameters
    ----------
    wave : `numpy.ndarray`
        Wavelength grid (Angstrom), increasing.
    band : str

    Returns
    -------
    weights : `numpy.ndarray`
        Per wavelength, maggies per erg/s/cm^2/A.
    """
    fw, fr = load_filter(band)
    resp = np.interp(wave, fw, fr, left=0.0, right=0.0)
    dw = np.gradient(wave)
    den = np.sum(_MAGGY_FNU * _C_AA / wave**2 * resp * wave * dw)
    return resp * wave * dw / den


def band_grid(band, step=2.0):
    """Wavelength grid covering an SDSS band (Angstrom).

    Parameters
    ----------
    band : str
    step : float, optional

    Returns
    -------
    wave : `numpy.ndarray`
    """
    fw, fr = load_filter(band)
    good = fw[fr > 0]
    return np.arange(good.min() - step, good.max() + step, step)


def line_band_response(z, band):
    """Maggies of a unit (1 erg/s/cm^2) observed line flux in an SDSS band, per line.

    Parameters
    ----------
    z : float
    band : str

    Returns
    -------
    response : `numpy.ndarray`
        Shape ``(n_lines,)``.
    """
    fw, fr = load_filter(band)
    centres = np.array(list(LINES.values())) * (1 + z)
    resp = np.interp(centres, fw, fr, left=0.0, right=0.0)
    wave = band_grid(band, 1.0)
    r = np.interp(wave, fw, fr, left=0.0, right=0.0)
    den = np.sum(_MAGGY_FNU * _C_AA / wave**2 * r * wave)
    return resp * centres / den
