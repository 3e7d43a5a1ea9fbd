"""Property maps as multi-extension FITS: one image HDU per map, units and WCS kept.

The layout (shared by the mock surveys' truth files and the readers):

* PRIMARY: empty data; header holds ``NEXTEND`` (the number of extensions, so
  that a file cut at an extension boundary is detected), ``OBJECT`` and any
  provenance cards;
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
from astropy.wcs import WCS

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
    # Readers compare NEXTEND with the extensions found: a file cut at an HDU
    # boundary is otherwise a valid FITS file with fewer maps.
    primary.header["NEXTEND"] = (len(hdus) - 1, "number of extensions")
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

    Every failure names this file (never the cutout or cube it sits beside):
    the file goes through the survey readers' guarded FITS open, so a truncated
    or structurally impossible file is an error, never a partial set of maps.

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
        If the file is not FITS, is truncated, has duplicate extension or map
        names, a map that is not 2-D, lacks ``BUNIT`` or has an unparseable one,
        or an ``_ERR``/``_MASK`` extension whose shape differs from its map.
    """
    from astro_cl.data import fits_io

    path = Path(path)
    with fits_io.reading(path, "property maps"), fits_io.open_fits(path, memmap=False) as hdul:
        try:
            hdus = list(hdul)
        except fits_io.READ_ERRORS as exc:
            msg = f"{path}: cannot list extensions ({type(exc).__name__}: {exc})"
            raise SurveyError(msg) from exc
        ext = hdus[1:]
        names = [h.name for h in ext]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            msg = f"{path}: duplicate extension names {dup} (expected one EXTNAME per map)"
            raise SurveyError(msg)
        by_name = dict(zip(names, ext, strict=True))
        maps = {}
        for hdu in ext:
            if hdu.name.endswith(("_ERR", "_MASK")) and hdu.name.rsplit("_", 1)[0] in by_name:
                continue
            data = fits_io.hdu_data(hdu, path, ndim=2, dtype=np.float32)
            header = hdu.header
            if "BUNIT" not in header:
                msg = f"{path}: extension {hdu.name!r} has no BUNIT keyword (unit expected)"
                raise SurveyError(msg)
            bunit = header["BUNIT"]
            if not isinstance(bunit, str):
                msg = (f"{path}: extension {hdu.name!r} has BUNIT = {bunit!r}, expected a "
                       "unit string")
                raise SurveyError(msg)
            # write_maps writes a dimensionless map as BUNIT = ''
            unit = (u.dimensionless_unscaled if not bunit.strip() else
                    fits_io.parse_unit(bunit, path=path, keyword=f"BUNIT of {hdu.name!r}"))
            name = str(header.get("MAPNAME", "")).strip() or hdu.name.lower()
            if name in maps:
                msg = f"{path}: two extensions hold the map {name!r} (MAPNAME cards)"
                raise SurveyError(msg)
            wcs = fits_io.header_wcs(header, path) if "CTYPE1" in header else None
            err = _companion(by_name.get(f"{hdu.name}_ERR"), data.shape, path, hdu.name, name)
            msk = _companion(by_name.get(f"{hdu.name}_MASK"), data.shape, path, hdu.name, name)
            maps[name] = NDData(
                data, unit=unit, wcs=wcs,
                uncertainty=None if err is None else StdDevUncertainty(err),
                mask=None if msk is None else msk != 0,
            )
    if not maps:
        msg = f"{path}: no map extensions (expected one ImageHDU per map after the primary)"
        raise SurveyError(msg)
    return maps


def _companion(hdu, shape, path, owner, map_name):
    """Return an ``_ERR``/``_MASK`` extension's data, checked against its map.

    `write_maps` copies the map's ``MAPNAME`` card into both companions; a
    different one means a renamed extension (another map would be lost).
    """
    if hdu is None:
        return None
    from astro_cl.data import fits_io

    other = str(hdu.header.get("MAPNAME", map_name)).strip()
    if other != map_name:
        msg = (f"{path}: extension {hdu.name!r} has MAPNAME = {other!r}, expected "
               f"{map_name!r} (the map of {owner!r})")
        raise SurveyError(msg)
    data = fits_io.hdu_data(hdu, path, ndim=2)
    if data.shape != shape:
        msg = (f"{path}: extension {hdu.name!r} has shape {data.shape}, expected the shape "
               f"{shape} of {owner!r}")
        raise SurveyError(msg)
    return np.array(data)
