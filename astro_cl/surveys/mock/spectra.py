"""Spectral model of the mock galaxies: a real template basis, dust, emission lines, filters.

Basis
-----
The stellar continuum is a non-negative combination of the five templates of
kcorrect v5 (``kcorrect/data/templates/kcorrect-default-v4.fits``; Blanton &
Roweis 2007, AJ 133, 734; BSD-3 licence). Each template is a fixed mixture of
Bruzual & Charlot (2003) simple stellar populations, normalised to one solar
mass *formed*, given as the flux density (erg/s/cm^2/A) seen from 10 pc. The
file gives, per template, the surviving stellar mass (``MREMAIN``), the
metallicity (``METS``, mass fraction Z) and the fraction of the mass formed in
the last 300 Myr (``M300``) and 1 Gyr (``M1000``).

kcorrect's templates carry no ages. We define them from the star-formation
history bins the file does give, assuming a constant star-formation rate inside
each bin ([0, 0.3], [0.3, 1] and [1, 13.7] Gyr ago): the mass-weighted age of a
template is ``sum(f_bin * mid_bin)`` with bin mid-points 0.15, 0.65 and 7.35 Gyr.
The star-formation rate of a mixture is the mass formed in the last 300 Myr
divided by 300 Myr. The light-weighted age weights the template ages by each
template's intrinsic 5635 A flux density (Pipe3D's normalisation window).
These definitions are applied to the weights that produce the pixels, so the
truth is exactly what made the data.

The templates contain nebular emission lines; they are clipped to the
surrounding continuum (absorption features are kept) and replaced by our own
lines (`LINES`), whose fluxes follow from the local SFR and gas metallicity:

* H-alpha luminosity from the SFR (Kennicutt & Evans 2012, ARA&A 50, 531;
  Kroupa IMF, close to the Chabrier IMF of the templates):
  ``L(Ha) = SFR / 10**-41.27 erg/s``;
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

__all__ = [
    "AGE_BIN_MIDPOINTS",
    "KENNICUTT_HA",
    "LINES",
    "SpectralBasis",
    "calzetti_k",
    "cosmology_tables",
    "line_ratios",
    "load_basis",
    "load_filter",
    "sdss_bands",
]

#: Mid-points (Gyr) of the star-formation history bins [0, 0.3], [0.3, 1], [1, 13.7] Gyr.
AGE_BIN_MIDPOINTS = np.array([0.15, 0.65, 7.35])
#: log10 of the H-alpha SFR calibration (Msun/yr per erg/s), Kennicutt & Evans (2012).
KENNICUTT_HA = -41.27
#: Solar metallicity (mass fraction) of the Bruzual & Charlot (2003) tracks.
Z_SUN = 0.02
#: Emission lines: name -> rest air wavelength in Angstrom.
LINES = {
    "OII3727": 3727.42, "Hbeta": 4861.33, "OIII4959": 4958.91, "OIII5007": 5006.84,
    "NII6548": 6548.05, "Halpha": 6562.80, "NII6584": 6583.45, "SII6717": 6716.44,
    "SII6731": 6730.82,
}
_NEBULAR = (3727.4, 3869.0, 3968.5, 4101.7, 4340.5, 4861.3, 4958.9, 5006.8, 5875.6, 6300.3,
            6548.0, 6562.8, 6583.4, 6716.4, 6730.8, 7135.8, 9068.6, 9530.6)
_PC10_CM = 3.0856775814913673e19  # 10 pc in cm
_C_AA = 2.99792458e18  # speed of light in Angstrom/s
_MAGGY_FNU = 3631e-23  # erg/s/cm^2/Hz of zero AB magnitude


def _kcorrect_data():
    import kcorrect

    return Path(kcorrect.__file__).resolve().parent / "data"


def _clip_emission(wave, flux, half_width=14.0):
    """Clip nebular emission lines to the interpolated continuum, keeping absorption."""
    out = flux.copy()
    for line in _NEBULAR:
        inside = np.abs(wave - line) < half_width
        if not inside.any():
            continue
        idx = np.flatnonzero(inside)
        lo, hi = max(idx[0] - 1, 0), min(idx[-1] + 1, wave.size - 1)
        frac = (wave[idx] - wave[lo]) / (wave[hi] - wave[lo])
        cont = out[:, lo, None] * (1 - frac) + out[:, hi, None] * frac
        out[:, idx] = np.minimum(out[:, idx], cont)
    return out


@dataclass(frozen=True)
class SpectralBasis:
    """The template basis and the per-template quantities the truth is computed from.

    Attributes
    ----------
    wave : `numpy.ndarray`
        Rest-frame air wavelength in Angstrom, shape ``(n_wave,)``.
    flux : `numpy.ndarray`
        Continuum flux density at 10 pc per solar mass formed, erg/s/cm^2/A,
        shape ``(n_templates, n_wave)``, emission lines removed.
    mremain : `numpy.ndarray`
        Surviving stellar mass per solar mass formed.
    metallicity : `numpy.ndarray`
        Metallicity Z (mass fraction).
    m300, m1000 : `numpy.ndarray`
        Fractions of the formed mass formed in the last 300 Myr and 1 Gyr.
    age_mw : `numpy.ndarray`
        Formed-mass-weighted age of each template, Gyr.
    f5635 : `numpy.ndarray`
        Intrinsic flux density at 5635 A (mean over 5585-5685 A) per solar mass formed.
    source : str
        File the basis was read from.
    """

    wave: np.ndarray
    flux: np.ndarray
    mremain: np.ndarray
    metallicity: np.ndarray
    m300: np.ndarray
    m1000: np.ndarray
    age_mw: np.ndarray
    f5635: np.ndarray
    source: str

    @property
    def n_templates(self):
        """int: number of templates."""
        return self.flux.shape[0]

    @property
    def log_z(self):
        """`numpy.ndarray`: log10(Z / Zsun) of each template."""
        return np.log10(self.metallicity / Z_SUN)


@functools.lru_cache(maxsize=1)
def load_basis():
    """Load the kcorrect template basis (cached).

    Returns
    -------
    basis : `SpectralBasis`
    """
    from astropy.io import fits

    path = _kcorrect_data() / "templates" / "kcorrect-default-v4.fits"
    with fits.open(path, memmap=False) as hdul:
        wave = np.asarray(hdul["FLUX"].data["wave"][0], dtype=float)
        flux = np.asarray(hdul["FLUX"].data["flux"][0], dtype=float)
        mremain = np.asarray(hdul["MREMAIN"].data, float) / np.asarray(hdul["INTSFH"].data, float)
        mets = np.asarray(hdul["METS"].data, float)
        m300 = np.clip(np.asarray(hdul["M300"].data, float), 0, 1)
        m1000 = np.clip(np.asarray(hdul["M1000"].data, float), 0, 1)
    keep = (wave > 2500) & (wave < 12000)
    wave, flux = wave[keep], flux[:, keep]
    flux = _clip_emission(wave, flux)
    fractions = np.stack([m300, np.clip(m1000 - m300, 0, 1), 1 - np.maximum(m1000, m300)])
    age = AGE_BIN_MIDPOINTS @ fractions
    win = (wave > 5585) & (wave < 5685)
    f5635 = flux[:, win].mean(axis=1)
    return SpectralBasis(wave=wave, flux=flux, mremain=mremain, metallicity=mets, m300=m300,
                         m1000=m1000, age_mw=age, f5635=f5635, source=str(path))


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
    path = _kcorrect_data() / "responses" / f"sdss_{band}0.dat"
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


def continuum_components(z, wave_obs, nodes):
    """Observed continuum of every (template, attenuation node) pair on a wavelength grid.

    Parameters
    ----------
    z : float
        Redshift.
    wave_obs : `numpy.ndarray`
        Observed wavelengths (Angstrom).
    nodes : `numpy.ndarray`
        Stellar V-band attenuations.

    Returns
    -------
    comps : `numpy.ndarray`
        Shape ``(n_templates * n_nodes, n_wave)``, erg/s/cm^2/A per solar mass
        formed, template-major (row ``k * n_nodes + j``).
    """
    basis = load_basis()
    rest = wave_obs / (1 + z)
    flux = np.stack([np.interp(rest, basis.wave, f) for f in basis.flux])
    flux *= _dimming(z) / (1 + z)
    att = 10 ** (-0.4 * np.outer(nodes, calzetti_k(rest) / 4.05))
    return (flux[:, None, :] * att[None]).reshape(-1, wave_obs.size)


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
    fw, fr = load_filter(band)
    resp = np.interp(wave, fw, fr, left=0.0, right=0.0)
    dw = np.gradient(wave)
    num = spectra @ (resp * wave * dw)
    den = np.sum(_MAGGY_FNU * _C_AA / wave**2 * resp * wave * dw)
    return num / den


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
