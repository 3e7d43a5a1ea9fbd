"""Property maps as multi-extension FITS: one image HDU per map, units and WCS kept.

The layout (shared by the mock surveys' truth files and the readers):

* PRIMARY: empty data; header holds ``OBJECT`` and any provenance cards;
* one ImageHDU per map, ``EXTNAME`` = map name, ``BUNIT`` = unit string,
  celestial WCS keywords;
* optionally ``<NAME>_ERR`` (1-sigma uncertainty) and ``<NAME>_MASK``
  (uint8, non-zero = bad) extensions.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import NDData, StdDevUncertainty
from astropy.wcs import WCS, FITSFixedWarning

from astro_cl.data.record import uncertainty_as_std
from astro_cl.exceptions import SurveyError
from astro_cl.utils.io import atomic_path

__all__ = ["read_maps", "write_maps"]


def write_maps(path, maps, *, header=None, overwrite=True):
    """Write property maps to a multi-extension FITS file, atomically.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Destination (``.fits`` or ``.fits.gz``).
    maps : mapping of str to `~astropy.nddata.NDData`
        2-D maps with units; WCS, uncertainty and mask are written when present.
    header : `~astropy.io.fits.Header` or dict, optional
        Cards for the primary header.
    overwrite : bool, optional
        Replace an existing file.
    """
    primary = fits.PrimaryHDU()
    for key, value in dict(header or {}).items():
        primary.header[key] = value
    hdus = [primary]
    for name, nd in maps.items():
        hdr = nd.wcs.to_header() if isinstance(nd.wcs, WCS) else fits.Header()
        hdr["EXTNAME"] = name.upper()
        hdr["MAPNAME"] = (name, "astro_cl map name")
        hdr["BUNIT"] = (nd.unit or u.dimensionless_unscaled).to_string()
        hdus.append(fits.ImageHDU(np.asarray(nd.data, dtype=np.float32), header=hdr))
        std = uncertainty_as_std(nd.uncertainty)
        if std is not None:
            ehdr = hdr.copy()
            ehdr["EXTNAME"] = f"{name.upper()}_ERR"
            hdus.append(fits.ImageHDU(std.astype(np.float32), header=ehdr))
        if nd.mask is not None:
            mhdr = hdr.copy()
            mhdr["EXTNAME"] = f"{name.upper()}_MASK"
            del mhdr["BUNIT"]
            hdus.append(fits.ImageHDU(np.asarray(nd.mask, dtype=np.uint8), header=mhdr))
    if not overwrite and Path(path).exists():
        msg = f"{path}: exists and overwrite=False"
        raise FileExistsError(msg)
    suffix = "".join(Path(path).suffixes[-2:])
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + (".gz" if suffix.endswith(".gz") else ".fits"))
        fits.HDUList(hdus).writeto(target, overwrite=True)
        target.replace(tmp)


def read_maps(path):
    """Read property maps written by `write_maps`.

    Parameters
    ----------
    path : str or `~pathlib.Path`

    Returns
    -------
    maps : dict of str to `~astropy.nddata.NDData`
        In file order, with unit, WCS, uncertainty and mask.

    Raises
    ------
    astro_cl.exceptions.SurveyError
        If the file is not FITS or a map lacks ``BUNIT``.
    """
    import warnings

    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        msg = f"{path}: cannot read as FITS maps ({exc})"
        raise SurveyError(msg) from exc
    with hdul:
        by_name = {h.name: h for h in hdul[1:]}
        maps = {}
        for hdu in hdul[1:]:
            if hdu.name.endswith(("_ERR", "_MASK")) and hdu.name.rsplit("_", 1)[0] in by_name:
                continue
            if hdu.data is None or hdu.data.ndim != 2:
                msg = f"{path}: extension {hdu.name!r} is not a 2-D map"
                raise SurveyError(msg)
            if "BUNIT" not in hdu.header:
                msg = f"{path}: extension {hdu.name!r} has no BUNIT keyword (unit expected)"
                raise SurveyError(msg)
            name = hdu.header.get("MAPNAME", hdu.name.lower())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                wcs = WCS(hdu.header) if "CTYPE1" in hdu.header else None
            err = by_name.get(f"{hdu.name}_ERR")
            msk = by_name.get(f"{hdu.name}_MASK")
            maps[name] = NDData(
                np.asarray(hdu.data, dtype=np.float32), unit=u.Unit(hdu.header["BUNIT"]),
                wcs=wcs,
                uncertainty=None if err is None else StdDevUncertainty(np.asarray(err.data)),
                mask=None if msk is None else np.asarray(msk.data) != 0,
            )
    return maps
