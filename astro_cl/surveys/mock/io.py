"""Writers of the mock surveys in the real file formats (all writes atomic).

* eCALIFA: ``<name>.V500.drscube.fits`` with PRIMARY (flux, 1e-16 erg/s/cm^2/A,
  celestial + spectral WCS, ``CTYPE3 = 'AWAV'``), ERROR, ERRWEIGHT, BADPIX
  (uint8, 1 = bad), FLAT, GAIA_MASK (uint8, non-zero = foreground star);
* SDSS: ``<id>.fits`` with one ImageHDU per band (``EXTNAME`` = band, ``BUNIT``
  nanomaggy, celestial WCS, ``PSF_FWHM``, ``Z``) and ``<BAND>_IVAR`` HDUs;
* truth maps ``<stem>.maps.fits`` via `astro_cl.data.fits_maps.write_maps`;
* ``catalogue.ecsv``.
"""

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from astro_cl.utils.io import atomic_path

__all__ = ["califa_wcs_header", "celestial_wcs", "cube_wcs", "write_catalogue", "write_cube",
           "write_image"]


def celestial_wcs(ra, dec, shape, pixel_scale):
    """Tangent-plane WCS centred on the galaxy, north up, east left.

    Parameters
    ----------
    ra, dec : float
        Centre in degrees.
    shape : tuple of int
        ``(ny, nx)``.
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    wcs : `~astropy.wcs.WCS`
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    w.wcs.cdelt = [-pixel_scale / 3600, pixel_scale / 3600]
    return w


def cube_wcs(ra, dec, shape, pixel_scale, wave_start, wave_step):
    """Celestial + spectral (air wavelength, Angstrom) WCS of a cube ``(n_wave, ny, nx)``.

    Parameters
    ----------
    ra, dec : float
    shape : tuple of int
        ``(n_wave, ny, nx)``.
    pixel_scale : float
    wave_start, wave_step : float
        First wavelength and step, Angstrom.

    Returns
    -------
    wcs : `~astropy.wcs.WCS`
    """
    w = WCS(naxis=3)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN", "AWAV"]
    w.wcs.cunit = ["deg", "deg", "Angstrom"]
    w.wcs.crval = [ra, dec, wave_start]
    w.wcs.crpix = [(shape[2] + 1) / 2, (shape[1] + 1) / 2, 1]
    w.wcs.cdelt = [-pixel_scale / 3600, pixel_scale / 3600, wave_step]
    return w


def califa_wcs_header(wcs):
    """Return the cube WCS as header cards in CALIFA's layout: the spectral axis in Angstrom.

    `astropy.wcs.WCS.to_header` writes wavelength axes in metres
    (``CRVAL3 = 3.749E-07``); CALIFA V500 cubes carry ``CRVAL3 = 3749``,
    ``CDELT3 = 2``, ``CUNIT3 = 'Angstrom'``, which tools read without units.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        3-D WCS (`cube_wcs`).

    Returns
    -------
    header : `~astropy.io.fits.Header`
    """
    import astropy.units as u

    hdr = wcs.to_header()
    factor = u.Unit(str(hdr.get("CUNIT3", "m")).strip() or "m").to(u.AA)
    comments = {"CRVAL3": "[Angstrom] wavelength at CRPIX3", "CDELT3": "[Angstrom] step",
                "CD3_3": "[Angstrom] step"}
    for key, comment in comments.items():
        if key in hdr:
            hdr[key] = (round(float(hdr[key]) * factor, 9), comment)
    hdr["CUNIT3"] = "Angstrom"
    return hdr


def _write_hdus(path, hdus):
    # NEXTEND lets readers detect a file cut at an extension boundary.
    hdus[0].header["NEXTEND"] = (len(hdus) - 1, "number of extensions")
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + (".gz" if str(path).endswith(".gz") else ".fits"))
        fits.HDUList(hdus).writeto(target, overwrite=True)
        target.replace(tmp)


def write_cube(path, out, wcs, *, name, redshift, psf_fwhm, header=None):
    """Write a rendered cube in the CALIFA V500 layout.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    out : dict
        From `~astro_cl.surveys.mock.render.CubeRenderer.render`.
    wcs : `~astropy.wcs.WCS`
        3-D WCS (`cube_wcs`).
    name : str
        Galaxy name (``OBJECT``).
    redshift : float
    psf_fwhm : float
        Arcsec.
    header : dict, optional
        Extra primary-header cards.
    """
    hdr = califa_wcs_header(wcs)
    hdr["BUNIT"] = "1E-16 erg/s/cm^2/Angstrom"
    hdr["OBJECT"] = name
    hdr["PSF_FWHM"] = (float(psf_fwhm), "PSF FWHM [arcsec]")
    hdr["Z"] = (float(redshift), "redshift")
    hdr["ORIGIN"] = "astro_cl ecalifa-mock"
    for k, v in (header or {}).items():
        hdr[k] = v
    ext = califa_wcs_header(wcs)
    hdus = [fits.PrimaryHDU(out["flux"], header=hdr),
            fits.ImageHDU(out["error"], header=ext, name="ERROR"),
            fits.ImageHDU(out["errweight"], name="ERRWEIGHT"),
            fits.ImageHDU(out["badpix"].astype(np.uint8), header=ext, name="BADPIX"),
            fits.ImageHDU(out["flat"], name="FLAT"),
            fits.ImageHDU(out["gaia_mask"].astype(np.uint8),
                          header=wcs.celestial.to_header(), name="GAIA_MASK")]
    _write_hdus(path, hdus)


def write_image(path, out, wcs, bands, *, redshift, psf_fwhm, name):
    """Write a rendered ugriz cutout, one ImageHDU per band plus inverse variances.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    out : dict
        From `~astro_cl.surveys.mock.render.ImageRenderer.render`.
    wcs : `~astropy.wcs.WCS`
        Celestial WCS.
    bands : sequence of str
    redshift : float
    psf_fwhm : mapping of str to float
        Per-band PSF FWHM (arcsec).
    name : str
    """
    primary = fits.PrimaryHDU()
    primary.header["OBJECT"] = name
    primary.header["Z"] = float(redshift)
    primary.header["PSF_FWHM"] = (float(psf_fwhm["r"]), "r-band PSF FWHM [arcsec]")
    primary.header["BANDS"] = ",".join(bands)
    primary.header["ORIGIN"] = "astro_cl sdss-mock"
    hdus = [primary]
    base = wcs.to_header()
    ivar = np.where(np.isfinite(out["std"]) & (out["std"] > 0),
                    1 / np.where(out["std"] > 0, out["std"], 1) ** 2, 0.0)
    for b, band in enumerate(bands):
        h = base.copy()
        h["BUNIT"] = "nanomaggy"
        h["PSF_FWHM"] = (float(psf_fwhm[band]), "PSF FWHM [arcsec]")
        h["Z"] = float(redshift)
        hdus.append(fits.ImageHDU(out["data"][b].astype(np.float32), header=h, name=band))
        hv = base.copy()
        hv["BUNIT"] = "nanomaggy-2"
        hdus.append(fits.ImageHDU(ivar[b].astype(np.float32), header=hv,
                                  name=f"{band.upper()}_IVAR"))
    if out["star_mask"].any():
        hdus.append(fits.ImageHDU(out["star_mask"].astype(np.uint8), header=base.copy(),
                                  name="STAR_MASK"))
    _write_hdus(path, hdus)


def write_catalogue(path, table):
    """Write a catalogue as ECSV, atomically.

    Parameters
    ----------
    path : str or `~pathlib.Path`
    table : `~astropy.table.Table`
    """
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + ".ecsv")
        table.write(target, format="ascii.ecsv", overwrite=True)
        target.replace(tmp)
