"""Standard spectral diagnostics, to compare mock spectra with real ones.

* D4000_n: ratio of the mean flux density per unit frequency in 4000-4100 A
  and 3850-3950 A (Balogh et al. 1999);
* H-delta_A: equivalent width (A, positive in absorption) in 4083.50-4122.25 A
  against the straight line through the mean fluxes of 4041.60-4079.75 A and
  4128.50-4161.00 A (Worthey & Ottaviani 1997);
* emission-line equivalent widths and fluxes from a spectrum and its stellar
  continuum (the difference, integrated over +-10 A), as a full-spectrum
  fitting code measures them once it has subtracted the continuum;
* the BPT diagram's demarcations of Kauffmann et al. (2003) and Kewley et al.
  (2001).

Wavelengths are rest-frame air Angstrom; spectra are flux densities per unit
wavelength, ``(..., n_wave)``.
"""

import numpy as np

__all__ = ["bpt_class", "d4000n", "hdelta_a", "line_fluxes", "to_rest_frame"]

_D4000_BLUE, _D4000_RED = (3850.0, 3950.0), (4000.0, 4100.0)
_HDA = {"blue": (4041.60, 4079.75), "band": (4083.50, 4122.25), "red": (4128.50, 4161.00)}


def _mean(wave, flux, band):
    sel = (wave >= band[0]) & (wave <= band[1])
    if sel.sum() < 2:
        msg = (f"wave: fewer than two pixels in {band[0]}-{band[1]} A "
               f"(the grid covers {wave[0]:.0f}-{wave[-1]:.0f} A)")
        raise ValueError(msg)
    return np.trapezoid(flux[..., sel], wave[sel], axis=-1) / (wave[sel][-1] - wave[sel][0])


def to_rest_frame(wave, z):
    """Rest-frame wavelengths of an observed grid.

    Parameters
    ----------
    wave : array_like
        Observed wavelengths.
    z : float

    Returns
    -------
    rest : `numpy.ndarray`
    """
    return np.asarray(wave, float) / (1 + float(z))


def d4000n(wave, flux):
    """Narrow 4000 A break D4000_n (Balogh et al. 1999).

    Parameters
    ----------
    wave : `numpy.ndarray`
        Rest-frame wavelengths (A).
    flux : `numpy.ndarray`
        Flux densities per unit wavelength, ``(..., n_wave)``.

    Returns
    -------
    d4000n : `numpy.ndarray`
    """
    wave = np.asarray(wave, float)
    fnu = np.asarray(flux, float) * wave**2  # F_nu up to a constant
    return _mean(wave, fnu, _D4000_RED) / _mean(wave, fnu, _D4000_BLUE)


def hdelta_a(wave, flux):
    """H-delta_A Lick index in Angstrom (Worthey & Ottaviani 1997).

    Parameters
    ----------
    wave : `numpy.ndarray`
        Rest-frame wavelengths (A).
    flux : `numpy.ndarray`
        ``(..., n_wave)``.

    Returns
    -------
    ew : `numpy.ndarray`
        Positive in absorption.
    """
    wave = np.asarray(wave, float)
    flux = np.asarray(flux, float)
    fb, fr = _mean(wave, flux, _HDA["blue"]), _mean(wave, flux, _HDA["red"])
    wb, wr = np.mean(_HDA["blue"]), np.mean(_HDA["red"])
    sel = (wave >= _HDA["band"][0]) & (wave <= _HDA["band"][1])
    w = wave[sel]
    cont = fb[..., None] + (fr - fb)[..., None] * (w - wb) / (wr - wb)
    return np.trapezoid(1 - flux[..., sel] / cont, w, axis=-1)


def line_fluxes(wave, flux, continuum, lines, half_width=10.0):
    """Emission-line fluxes and equivalent widths from a spectrum and its stellar continuum.

    Parameters
    ----------
    wave : `numpy.ndarray`
        Rest-frame wavelengths (A).
    flux, continuum : `numpy.ndarray`
        ``(..., n_wave)``: the spectrum and its stellar continuum.
    lines : mapping of str to float
        Line name -> rest wavelength.
    half_width : float, optional
        Half-width of the integration window (A).

    Returns
    -------
    fluxes : dict of str to `numpy.ndarray`
        Line fluxes (flux-density unit x A).
    ews : dict of str to `numpy.ndarray`
        Equivalent widths (A, negative in emission, as Pipe3D and the eCALIFA
        catalogue give them).
    """
    wave = np.asarray(wave, float)
    diff = np.asarray(flux, float) - np.asarray(continuum, float)
    fluxes, ews = {}, {}
    for name, centre in lines.items():
        sel = np.abs(wave - centre) <= half_width
        fluxes[name] = np.trapezoid(diff[..., sel], wave[sel], axis=-1)
        cont = np.mean(np.asarray(continuum, float)[..., sel], axis=-1)
        ews[name] = -fluxes[name] / np.where(cont > 0, cont, np.nan)
    return fluxes, ews


def bpt_class(log_nii_ha, log_oiii_hb):
    """Classify points of the [NII] BPT diagram.

    Parameters
    ----------
    log_nii_ha, log_oiii_hb : array_like
        log10([NII]6584/H-alpha) and log10([OIII]5007/H-beta).

    Returns
    -------
    classes : `numpy.ndarray` of str
        ``"SF"`` below Kauffmann et al. (2003), ``"composite"`` between it and
        Kewley et al. (2001), ``"AGN/LINER"`` above.
    """
    x = np.asarray(log_nii_ha, float)
    y = np.asarray(log_oiii_hb, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        kauff = np.where(x < 0.05, 0.61 / (x - 0.05) + 1.3, -np.inf)
        kewley = np.where(x < 0.47, 0.61 / (x - 0.47) + 1.19, -np.inf)
    return np.where(y < kauff, "SF", np.where(y < kewley, "composite", "AGN/LINER"))
